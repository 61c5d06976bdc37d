#!/usr/bin/python3
"""systemctl shim for simvm: bind-mounted over /usr/bin/systemctl inside a simulated VM.

There is no systemd in a network namespace, so this runs unit files itself:
Type=simple|exec|notify|forking|oneshot, User=, Group=, Environment=, EnvironmentFile=,
WorkingDirectory=, PIDFile=, ExecStartPre/ExecStart/ExecStartPost/ExecReload/ExecStop.
Enabled state = the VM's /etc/systemd/system/*.wants symlinks (persist across stop/boot);
runtime state = /run/simvm/units/<unit>.json (a VM power-off clears /run).
Host units from /lib/systemd/system are visible only if a package the VM "installed"
listed them in /etc/simvm/available-units. Restart= is not supervised.
Stdlib only, Python >= 3.10 (runs under the host's /usr/bin/python3).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time

ETC = "/etc/systemd/system"
LIB_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system")
AVAILABLE = "/etc/simvm/available-units"
RUNTIME = "/run/simvm/units"
LOGS = "/var/log/simvm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 5.0
Unit = dict[str, dict[str, list[str]]]


class UnitError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def norm(name: str) -> str:
    return name if "." in name else f"{name}.service"


def find_unit(name: str) -> str | None:
    path = os.path.join(ETC, name)
    if os.path.lexists(path):
        return path
    try:
        with open(AVAILABLE) as fh:
            available = fh.read().split()
    except OSError:
        available = []
    if name in available:
        for base in LIB_DIRS:
            if os.path.exists(os.path.join(base, name)):
                return os.path.join(base, name)
    return None


def require(name: str) -> str:
    path = find_unit(name)
    if path is None:
        raise UnitError(f"Unit {name} not found.", 5)
    if os.path.realpath(path) == "/dev/null":
        raise UnitError(f"Unit {name} is masked.", 1)
    return path


def parse_unit(path: str) -> Unit:
    unit: Unit = {}
    section = ""
    with open(path) as fh:
        text = fh.read().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        values = unit.setdefault(section, {}).setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return unit


def get(unit: Unit, key: str, default: str = "", section: str = "Service") -> str:
    values = unit.get(section, {}).get(key, [])
    return values[-1] if values else default


def wants_links(name: str) -> list[str]:
    links = []
    for entry in sorted(os.listdir(ETC)) if os.path.isdir(ETC) else []:
        if entry.endswith((".wants", ".requires")):
            link = os.path.join(ETC, entry, name)
            if os.path.lexists(link):
                links.append(link)
    return links


# -- runtime state ------------------------------------------------------------------------
def state_path(name: str) -> str:
    return os.path.join(RUNTIME, f"{name}.json")


def load_state(name: str) -> dict[str, object]:
    try:
        with open(state_path(name)) as fh:
            data: dict[str, object] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {"state": "inactive"}


def save_state(name: str, **state: object) -> None:
    os.makedirs(RUNTIME, exist_ok=True)
    state["since"] = time.time()
    with open(state_path(name), "w") as fh:
        json.dump(state, fh)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def main_pid(name: str, unit: Unit) -> int | None:
    pidfile = get(unit, "PIDFile")
    pid = read_pidfile(pidfile) if pidfile else None
    if pid is None:
        recorded = load_state(name).get("main_pid")
        pid = recorded if isinstance(recorded, int) else None
    return pid if pid is not None and alive(pid) else None


def unit_pids(name: str, root: int | None) -> list[int]:
    """Processes of this unit: tagged with SIMVM_UNIT in this VM, plus root's descendants."""
    netns = os.environ.get("SIMVM_NETNS", "")
    tag = f"SIMVM_UNIT={name}".encode()
    tagged, parents = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parents[pid] = int(fh.read().rsplit(")", 1)[-1].split()[1])
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if tag in env and f"SIMVM_NETNS={netns}".encode() in env:
            tagged.add(pid)
    found = set(tagged)
    if root is not None:
        found.add(root)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(p for p in found if alive(p) and p != os.getpid())


def active_state(name: str, unit: Unit) -> str:
    state = load_state(name)
    if state.get("state") != "active":
        return str(state.get("state", "inactive"))
    if get(unit, "Type", "simple") == "oneshot":
        return "active"
    if main_pid(name, unit) is not None or unit_pids(name, None):
        return "active"
    return "failed"


# -- executing commands -------------------------------------------------------------------
def service_env(name: str, unit: Unit) -> tuple[dict[str, str], pwd.struct_passwd | None]:
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "SIMVM_UNIT": name}
    if "SIMVM_NETNS" in os.environ:
        env["SIMVM_NETNS"] = os.environ["SIMVM_NETNS"]
    user = get(unit, "User")
    pw = pwd.getpwnam(user) if user else None
    if pw is not None:
        env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name, SHELL=pw.pw_shell)
    for spec in unit.get("Service", {}).get("EnvironmentFile", []):
        optional, path = spec.startswith("-"), spec.lstrip("-")
        try:
            with open(path) as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#") and "=" in line:
                        key, _, value = line.partition("=")
                        env[key.strip()] = value.strip().strip("\"'")
        except OSError:
            if not optional:
                raise UnitError(f"Failed to load environment files: {path}") from None
    for spec in unit.get("Service", {}).get("Environment", []):
        for item in shlex.split(spec):
            key, _, value = item.partition("=")
            env[key] = value
    return env, pw


def expand(argv: list[str], env: dict[str, str], name: str, home: str) -> list[str]:
    spec = {"%n": name, "%N": name.rsplit(".", 1)[0], "%h": home, "%%": "%"}
    out = []
    for arg in argv:
        arg = re.sub(r"%[nNh%]", lambda m: spec[m.group(0)], arg)
        arg = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), arg)
        out.append(arg)
    return out


def run_exec(
    name: str, unit: Unit, line: str, *, wait: bool, extra: dict[str, str] | None = None
) -> tuple[int, int]:
    """Run one Exec*= line; returns (exit code or 0 if not waited, pid)."""
    ignore = False
    while line and line[0] in "-@:+!":
        ignore = ignore or line[0] == "-"
        line = line[1:]
    env, pw = service_env(name, unit)
    env.update(extra or {})
    argv = expand(shlex.split(line), env, name, pw.pw_dir if pw else "/root")
    group = get(unit, "Group")
    gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else None)
    cwd = get(unit, "WorkingDirectory", "/").lstrip("-")
    cwd = (pw.pw_dir if pw else "/root") if cwd == "~" else cwd
    os.makedirs(LOGS, exist_ok=True)
    with open(os.path.join(LOGS, f"{name}.log"), "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            user=pw.pw_uid if pw else None,
            group=gid,
            extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid) if pw else None,
            start_new_session=True,
        )
    if not wait:
        return 0, proc.pid
    try:
        rc = proc.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = 124
    return (0 if ignore else rc), proc.pid


def fail(name: str, verb: str = "start") -> UnitError:
    save_state(name, state="failed")
    return UnitError(
        f"Job for {name} failed because the control process exited with error code.\n"
        f'See "systemctl status {name}" and "journalctl -xeu {name}" for details.'
    )


def start(name: str) -> None:
    unit = parse_unit(require(name))
    if active_state(name, unit) == "active":
        return
    kind = get(unit, "Type", "simple")
    svc = unit.get("Service", {})
    for line in svc.get("ExecStartPre", []):
        if run_exec(name, unit, line, wait=True)[0] != 0:
            raise fail(name)
    pid: int | None = None
    for line in svc.get("ExecStart", []):
        rc, pid = run_exec(name, unit, line, wait=kind in ("forking", "oneshot"))
        if rc != 0:
            raise fail(name)
    if kind == "forking":
        pidfile = get(unit, "PIDFile")
        deadline = time.monotonic() + 5
        while pidfile and read_pidfile(pidfile) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = read_pidfile(pidfile) if pidfile else None
    for line in svc.get("ExecStartPost", []):
        if run_exec(name, unit, line, wait=True)[0] != 0:
            raise fail(name)
    if kind == "oneshot" and get(unit, "RemainAfterExit", "no") not in ("yes", "true", "1"):
        save_state(name, state="inactive")
    else:
        save_state(name, state="active", main_pid=pid, type=kind)


def stop(name: str) -> None:
    unit = parse_unit(require(name))
    pid = main_pid(name, unit)
    pids = unit_pids(name, pid)
    if pid is not None or pids or load_state(name).get("state") == "active":
        extra = {"MAINPID": str(pid or "")}
        for line in unit.get("Service", {}).get("ExecStop", []):
            run_exec(name, unit, line, wait=True, extra=extra)
        for sig, grace in ((None, STOP_TIMEOUT), (signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
            pids = [p for p in pids if alive(p)]
            for p in pids:
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, sig)
            deadline = time.monotonic() + grace
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
    save_state(name, state="inactive")


def reload(name: str) -> None:
    unit = parse_unit(require(name))
    if active_state(name, unit) != "active":
        raise UnitError(f"{name} is not active, cannot reload.")
    lines = unit.get("Service", {}).get("ExecReload", [])
    if not lines:
        raise UnitError(
            f"Failed to reload {name}: Job type reload is not applicable for unit {name}."
        )
    extra = {"MAINPID": str(main_pid(name, unit) or "")}
    for line in lines:
        if run_exec(name, unit, line, wait=True, extra=extra)[0] != 0:
            raise UnitError(f"Job for {name} failed.")


def enable(name: str) -> None:
    path = require(name)
    unit = parse_unit(path)
    install = unit.get("Install", {})
    targets = install.get("WantedBy", []) + install.get("RequiredBy", [])
    if not targets:
        print(f"The unit files have no installation config (WantedBy=, RequiredBy=...) ({name}).")
        return
    for target in " ".join(targets).split():
        kind = "wants" if target in " ".join(install.get("WantedBy", [])).split() else "requires"
        link = os.path.join(ETC, f"{target}.{kind}", name)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(path, link)
            print(f"Created symlink {link} \u2192 {path}.", file=sys.stderr)


def disable(name: str) -> None:
    require(name)
    for link in wants_links(name):
        os.unlink(link)
        print(f'Removed "{link}".', file=sys.stderr)


def enabled_state(name: str) -> str:
    path = find_unit(name)
    if path is None:
        raise UnitError(f"Failed to get unit file state for {name}: No such file or directory")
    if os.path.realpath(path) == "/dev/null":
        return "masked"
    if wants_links(name):
        return "enabled"
    install = parse_unit(path).get("Install", {})
    return "disabled" if install.get("WantedBy") or install.get("RequiredBy") else "static"


def status(name: str) -> int:
    path = find_unit(name)
    if path is None:
        print(f"Unit {name} could not be found.", file=sys.stderr)
        return 4
    unit = parse_unit(path)
    state = active_state(name, unit)
    pid = main_pid(name, unit)
    since = load_state(name).get("since")
    when = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(float(str(since or 0))))
    sub = {"active": "running", "failed": "failed", "inactive": "dead"}.get(state, state)
    if state == "active" and get(unit, "Type") == "oneshot":
        sub = "exited"
    print(f"\u25cf {name} - {get(unit, 'Description', name, 'Unit')}")
    print(f"     Loaded: loaded ({path}; {enabled_state(name)}; preset: enabled)")
    print(f"     Active: {state} ({sub})" + (f" since {when}" if since else ""))
    if pid is not None:
        print(f"   Main PID: {pid}")
    return 0 if state == "active" else 3


def boot() -> int:
    """simvm-only verb: start every unit wanted by a target, as systemd does at boot."""
    names: list[str] = []
    for entry in sorted(os.listdir(ETC)):
        if entry.endswith((".wants", ".requires")) and os.path.isdir(os.path.join(ETC, entry)):
            names += [n for n in sorted(os.listdir(os.path.join(ETC, entry))) if n not in names]
    rc = 0
    for name in names:
        if not name.endswith(".service"):
            continue
        try:
            start(name)
            print(f"simvm-boot: started {name}")
        except UnitError as exc:
            print(f"simvm-boot: {name}: {exc}", file=sys.stderr)
            rc = 1
    return rc


def shutdown() -> int:
    """simvm-only verb: stop every running unit, newest first, as systemd does at power-off
    before it signals what is left. (pm2's unit runs `pm2 kill`, which keeps the saved list;
    a pm2 daemon that gets SIGTERM instead dumps its list, with an app that exited first as
    stopped, so `pm2 resurrect` at the next boot would leave that app down.)"""
    running = []
    for entry in os.listdir(RUNTIME) if os.path.isdir(RUNTIME) else []:
        name = entry.removesuffix(".json")
        if entry.endswith(".json") and find_unit(name) is not None:
            since = load_state(name).get("since", 0.0)
            running.append((since if isinstance(since, float | int) else 0.0, name))
    rc = 0
    for _, name in sorted(running, reverse=True):
        try:
            stop(name)
        except UnitError as exc:
            print(f"simvm-shutdown: {name}: {exc}", file=sys.stderr)
            rc = 1
    return rc


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a.startswith("-")}
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        print("simvm systemctl shim: listing units is not supported", file=sys.stderr)
        return 1
    verb, names = args[0], [norm(n) for n in args[1:]]
    quiet = "--quiet" in flags or "-q" in flags
    try:
        if verb == "daemon-reload":
            return 0
        if verb == "simvm-boot":
            return boot()
        if verb == "simvm-shutdown":
            return shutdown()
        if verb == "is-system-running":
            print("running")
            return 0
        if verb in ("is-active", "is-failed"):
            states = [
                active_state(n, parse_unit(p)) if (p := find_unit(n)) else "inactive" for n in names
            ]
            if not quiet:
                print("\n".join(states))
            want = "active" if verb == "is-active" else "failed"
            return 0 if want in states else 3 if verb == "is-active" else 1
        if verb == "is-enabled":
            states = [enabled_state(n) for n in names]
            if not quiet:
                print("\n".join(states))
            return 0 if any(s in ("enabled", "static") for s in states) else 1
        if verb == "status":
            return max((status(n) for n in names), default=0)
        for name in names:
            if verb == "start":
                start(name)
            elif verb == "stop":
                stop(name)
            elif verb == "restart":
                stop(name)
                start(name)
            elif verb == "try-restart":
                if active_state(name, parse_unit(require(name))) == "active":
                    stop(name)
                    start(name)
            elif verb == "reload":
                reload(name)
            elif verb in ("reload-or-restart", "try-reload-or-restart"):
                unit = parse_unit(require(name))
                if (
                    unit.get("Service", {}).get("ExecReload")
                    and active_state(name, unit) == "active"
                ):
                    reload(name)
                else:
                    stop(name)
                    start(name)
            elif verb in ("enable", "reenable"):
                enable(name)
                if "--now" in flags:
                    start(name)
            elif verb == "disable":
                disable(name)
                if "--now" in flags:
                    stop(name)
            elif verb == "mask":
                link = os.path.join(ETC, name)
                if not os.path.lexists(link):
                    os.symlink("/dev/null", link)
                    print(f"Created symlink {link} \u2192 /dev/null.", file=sys.stderr)
            elif verb == "unmask":
                link = os.path.join(ETC, name)
                if os.path.islink(link) and os.readlink(link) == "/dev/null":
                    os.unlink(link)
                    print(f'Removed "{link}".', file=sys.stderr)
            else:
                print(f"simvm systemctl shim: unsupported verb {verb!r}", file=sys.stderr)
                return 1
    except UnitError as exc:
        if (
            exc.code == 5 and len(names) == 1
        ):  # e.g. "Failed to start x.service: Unit x.service not found."
            print(f"Failed to {verb} {names[0]}: {exc}", file=sys.stderr)
        else:
            print(str(exc), file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
