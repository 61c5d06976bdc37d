#!/usr/bin/python3
"""labctl-vm-status: print this VM's health as ONE JSON object on stdout, always exit 0.

Installed as /usr/local/sbin/labctl-vm-status by cloud-init; labctl runs it with
`multipass exec VM -- sudo /usr/local/sbin/labctl-vm-status`. Schema:

    {"cloud_init": {"status": "done|error|degraded done|running|not started|...|unknown",
                    "errors": [str, ...]},
     "app": null | {"pm2_daemon": bool, "processes": [{"name", "status", "restarts", "pid",
                    "memory"}], "port_open": bool, "error": null | str,
                    "listeners": null | [{"pid": int, "command": str, "pm2": [str, ...]}]},
     "nginx": null | {"active": bool, "config_ok": bool, "config_error": str,
                      "site_enabled": bool, "error": null | str}}

`app`/`nginx` are null when the VM lacks that role (from /etc/labctl/config.json, or env
LABCTL_CONFIG). Each part is checked on its own and never crashes the script: a failure shows up
as an error string. Python 3 standard library only: it runs on the stock Ubuntu image.

`listeners` are the processes holding a listening TCP socket on the app's port (from /proc, as
root), each with the names of the pm2 processes it belongs to: the pm2 process itself or an
ancestor, or the pm2 daemon, which holds the port for a cluster-mode app. `labctl check` needs
it to tell pm2's app from any other listener; null when /proc could not be read.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT = 30
MAX_ERRORS = 20
MAX_LISTENERS = 16
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env
    )


def parse_cloud_init(text: str) -> dict[str, Any]:
    """`cloud-init status --format json` (its exit code says little: 1/2 on error/degraded)."""
    try:
        data = json.loads(text)
    except ValueError:
        # Old cloud-init without --format: the plain `status: done` line.
        for line in text.splitlines():
            if line.startswith("status:"):
                return {"status": line.split(":", 1)[1].strip(), "errors": []}
        raise
    status = str(data.get("status", "unknown"))
    extended = data.get("extended_status")
    if isinstance(extended, str) and extended.startswith("degraded"):
        status = extended  # >= 23.4: "done" + recoverable errors = "degraded done"
    errors = [str(e) for e in data.get("errors") or []]
    recoverable = data.get("recoverable_errors") or {}
    if isinstance(recoverable, dict):
        for level, messages in recoverable.items():
            errors += [f"{level}: {m}" for m in messages or []]
    return {"status": status, "errors": errors[:MAX_ERRORS]}


def cloud_init_status() -> dict[str, Any]:
    try:
        proc = run(["cloud-init", "status", "--format", "json"])
        return parse_cloud_init(proc.stdout)
    except Exception as exc:  # never crash: report it
        return {"status": "unknown", "errors": [f"cloud-init status: {exc}"]}


def jlist_entries(text: str) -> list[dict[str, Any]]:
    """The raw entries of `pm2 jlist`, tolerating a banner before the JSON (printed when the call starts the daemon)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = _last_json_array(text)
        if data is None:
            raise ValueError(f"no JSON array in pm2 jlist output ({len(text)} bytes)") from None
    if not isinstance(data, list):
        raise ValueError("pm2 jlist did not answer a JSON array")
    return [proc for proc in data if isinstance(proc, dict)]


def parse_jlist(text: str) -> list[dict[str, Any]]:
    """Processes from `pm2 jlist`, tolerating a banner before the JSON (printed when the call starts the daemon).

    Only whitelisted fields: pm2_env.env holds the whole environment, secrets included.
    """
    return [_process(proc) for proc in jlist_entries(text)]


def _process(proc: dict[str, Any]) -> dict[str, Any]:
    env = proc.get("pm2_env") or {}
    monit = proc.get("monit") or {}
    return {
        "name": proc.get("name"),
        "status": env.get("status"),
        "restarts": env.get("restart_time"),
        "pid": proc.get("pid"),
        "memory": monit.get("memory"),
    }


def _last_json_array(text: str) -> list[Any] | None:
    # The banner has lines starting with "[" too ("[PM2] Spawning ..."): take the last that parses.
    for line in reversed(text.splitlines()):
        if line.lstrip().startswith("["):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, list):
                return data
    return None


def pm2_daemon_alive(pid_file: Path) -> bool:
    """True if the pid file names a live PM2 daemon (a stale file after reboot does not count)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return b"PM2" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """Socket inodes listening on TCP `port` (IPv4 and IPv6) in this network namespace."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6 on this kernel
        for line in lines:
            fields = line.split()  # sl local_address rem_address st ... uid timeout inode
            listening = len(fields) > 9 and fields[3] == TCP_LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def socket_holders(inodes: set[str], proc: Path = Path("/proc")) -> list[int]:
    """The pids holding any of these socket inodes open (root sees every process)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in proc.iterdir() if wanted else []:
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                if str(fd.readlink()) in wanted:
                    holders.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(holders)


def parent_pid(pid: int, proc: Path = Path("/proc")) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def lineage(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """`pid` and its ancestors up to init (bounded: a pid table has no cycles, /proc may race)."""
    chain = [pid]
    for _ in range(64):
        parent = parent_pid(chain[-1], proc)
        if not parent or parent in chain:
            break
        chain.append(parent)
    return chain


def port_listeners(
    port: int,
    entries: list[dict[str, Any]],
    daemon_pid: int | None,
    proc: Path = Path("/proc"),
) -> list[dict[str, Any]]:
    """Who holds the app's port, and which pm2 processes (from `pm2 jlist`) it belongs to."""
    by_pid: dict[int, list[str]] = {}
    cluster: list[str] = []
    for entry in entries:
        pid, name = entry.get("pid"), str(entry.get("name"))
        if isinstance(pid, int) and pid > 0:
            by_pid.setdefault(pid, []).append(name)
        if (entry.get("pm2_env") or {}).get("exec_mode") == "cluster_mode":
            cluster.append(name)
    listeners = []
    for pid in socket_holders(listening_inodes(port, proc), proc)[:MAX_LISTENERS]:
        owners = [name for ancestor in lineage(pid, proc) for name in by_pid.get(ancestor, [])]
        if pid == daemon_pid:  # node's cluster: the primary (pm2's daemon) holds the port
            owners += cluster
        try:
            command = (proc / str(pid) / "comm").read_text().strip()[:32]
        except OSError:
            command = "?"
        listeners.append({"pid": pid, "command": command, "pm2": sorted(set(owners))})
    return listeners


def daemon_pid_of(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def app_status(conf: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "pm2_daemon": False,
        "processes": [],
        "port_open": False,
        "error": None,
        "listeners": None,
    }
    errors = []
    try:
        result["port_open"] = port_open(int(conf["port"]))
    except Exception as exc:
        errors.append(f"port check: {exc}")
    entries: list[dict[str, Any]] = []
    try:
        home = Path(conf.get("pm2_home", "/home/ubuntu/.pm2"))
        result["pm2_daemon"] = pm2_daemon_alive(home / "pm2.pid")
        # Only ask a live daemon: `pm2 jlist` would otherwise spawn one.
        if result["pm2_daemon"]:
            user = conf.get("user", "ubuntu")
            user_home = str(home.parent)
            argv = ["runuser", "-u", user, "--", "env", f"HOME={user_home}", f"PM2_HOME={home}"]
            proc = run([*argv, "pm2", "jlist"])
            if proc.returncode != 0:
                raise RuntimeError(
                    f"pm2 jlist exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
                )
            entries = jlist_entries(proc.stdout)
            result["processes"] = [_process(entry) for entry in entries]
    except Exception as exc:
        errors.append(f"pm2: {exc}")
    try:
        home = Path(conf.get("pm2_home", "/home/ubuntu/.pm2"))
        daemon = daemon_pid_of(home / "pm2.pid") if result["pm2_daemon"] else None
        result["listeners"] = port_listeners(int(conf["port"]), entries, daemon)
    except Exception as exc:
        errors.append(f"listeners: {exc}")
    result["error"] = "; ".join(errors) or None
    return result


def nginx_status(conf: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "active": False,
        "config_ok": False,
        "config_error": "",
        "site_enabled": False,
        "error": None,
    }
    errors = []
    try:
        result["active"] = run(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    except Exception as exc:
        errors.append(f"systemctl: {exc}")
    try:
        test = run(["nginx", "-q", "-t"])
        result["config_ok"] = test.returncode == 0
        if test.returncode != 0:
            result["config_error"] = (test.stderr or test.stdout).strip()[-2000:]
    except Exception as exc:
        result["config_error"] = f"nginx -t: {exc}"
    try:
        enabled, site = Path(conf["enabled"]), Path(conf["site"])
        result["site_enabled"] = enabled.exists() and enabled.resolve() == site.resolve()
    except Exception as exc:
        errors.append(f"site check: {exc}")
    result["error"] = "; ".join(errors) or None
    return result


def build_report(cloud_init: Any = None) -> dict[str, Any]:
    """The whole report; `cloud_init` replaces cloud_init_status (labctl-status-agent caches it)."""
    report: dict[str, Any] = {
        "cloud_init": (cloud_init or cloud_init_status)(),
        "app": None,
        "nginx": None,
    }
    try:
        path = Path(os.environ.get("LABCTL_CONFIG", "/etc/labctl/config.json"))
        conf = json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:
        report["cloud_init"]["errors"].append(f"labctl config: {exc}")
        conf = {}
    if conf.get("app"):
        report["app"] = app_status(conf["app"])
    if conf.get("lb"):
        report["nginx"] = nginx_status(conf["lb"])
    return report


def main() -> int:
    sys.stdout.write(json.dumps(build_report()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
