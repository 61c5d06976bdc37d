#!/usr/bin/python3
"""labctl-vm-status: print this VM's health as ONE JSON object on stdout, always exit 0.

Installed as /usr/local/sbin/labctl-vm-status by cloud-init; labctl runs it with
`multipass exec VM -- sudo /usr/local/sbin/labctl-vm-status`. Schema:

    {"cloud_init": {"status": "done|error|degraded done|running|not started|...|unknown",
                    "errors": [str, ...]},
     "app": null | {"pm2_daemon": bool, "processes": [{"name", "status", "restarts", "pid",
                    "memory"}], "port_open": bool, "error": null | str},
     "nginx": null | {"active": bool, "config_ok": bool, "config_error": str,
                      "site_enabled": bool, "error": null | str}}

`app`/`nginx` are null when the VM lacks that role (from /etc/labctl/config.json, or env
LABCTL_CONFIG). Each part is checked on its own and never crashes the script: a failure shows up
as an error string. Python 3 standard library only: it runs on the stock Ubuntu image.
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
        status = extended  # >= 23.4: "done" + recoverable errors = "degraded done" (stack.md §4.2)
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


def parse_jlist(text: str) -> list[dict[str, Any]]:
    """Processes from `pm2 jlist`, tolerating a banner before the JSON (stack.md §3).

    Only whitelisted fields: pm2_env.env holds the whole environment, secrets included.
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = _last_json_array(text)
        if data is None:
            raise ValueError(f"no JSON array in pm2 jlist output ({len(text)} bytes)") from None
    processes = []
    for proc in data:
        env = proc.get("pm2_env") or {}
        monit = proc.get("monit") or {}
        processes.append(
            {
                "name": proc.get("name"),
                "status": env.get("status"),
                "restarts": env.get("restart_time"),
                "pid": proc.get("pid"),
                "memory": monit.get("memory"),
            }
        )
    return processes


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


def app_status(conf: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "pm2_daemon": False,
        "processes": [],
        "port_open": False,
        "error": None,
    }
    errors = []
    try:
        result["port_open"] = port_open(int(conf["port"]))
    except Exception as exc:
        errors.append(f"port check: {exc}")
    try:
        home = Path(conf.get("pm2_home", "/home/ubuntu/.pm2"))
        result["pm2_daemon"] = pm2_daemon_alive(home / "pm2.pid")
        # Only ask a live daemon: `pm2 jlist` would otherwise spawn one (stack.md §3).
        if result["pm2_daemon"]:
            user = conf.get("user", "ubuntu")
            user_home = str(home.parent)
            argv = ["runuser", "-u", user, "--", "env", f"HOME={user_home}", f"PM2_HOME={home}"]
            proc = run([*argv, "pm2", "jlist"])
            if proc.returncode != 0:
                raise RuntimeError(
                    f"pm2 jlist exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
                )
            result["processes"] = parse_jlist(proc.stdout)
    except Exception as exc:
        errors.append(f"pm2: {exc}")
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
