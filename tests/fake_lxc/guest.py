"""What runs "inside" a fake container: a virtual file table and a few commands, answering as
the project's LXD test image does (Debian 12: cloud-init 22.4.2, dash as sh, root by default).

Understood: `cloud-init status [--wait] [--long]`, true, false, echo, hostname, whoami, id,
cat, test/[, touch, rm, sleep, reboot, `sh -c`/`bash -c` with one simple command or `exit N`,
`sudo [-u USER] [-n] [-H] ...`, and labctl's `sh -c '... runuser -u "$u" ...' NAME USER CMD...`
(CMD as USER; the wrapper shell's message when CMD is missing). Anything else answers as a missing binary does through
`lxc exec` ("Error: Command not found", 127), unless a canned response matches first.
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, BinaryIO, Final

from tests.fake_multipass.guest import files_from_user_data

Instance = dict[str, Any]

SHELLS: Final = ("sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash")
META: Final = set(";|&<>$`(){}*?\n")
SEED: Final = "/var/lib/cloud/seed/nocloud-net"
DETAIL: Final = f"DataSourceNoCloud [seed={SEED}][dsmode=net]"
ERROR_DETAIL: Final = (
    "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
)
USERS: Final = {"0": "root", "root": "root", "1000": "ubuntu", "ubuntu": "ubuntu"}


class Exit(Exception):  # noqa: N818 - an exit status, not an error
    def __init__(self, code: int, stderr: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.stderr = stderr


def seed_files(inst: Instance, user_data: str) -> None:
    """What the image's templates and cloud-init write at the first start."""
    import yaml

    files = inst.setdefault("files", {})
    meta = f"instance-id: {inst['name']}\nlocal-hostname: {inst['name']}\n\n"
    for path, data in {
        f"{SEED}/user-data": user_data.encode(),
        f"{SEED}/meta-data": meta.encode(),
    }.items():
        files[path] = base64.b64encode(data).decode()
    try:
        parsed = yaml.safe_load(user_data)
    except yaml.YAMLError:
        parsed = None
    for path, data in files_from_user_data(parsed if isinstance(parsed, dict) else None).items():
        files[path] = base64.b64encode(data).decode()


def cloud_init_phase(inst: Instance, now: float | None = None) -> str:
    ci = inst.get("cloud_init") or {}
    done_at = ci.get("done_at")
    if done_at is None or (time.time() if now is None else now) < float(done_at):
        return "running"
    return str(ci.get("result", "done"))


def cloud_init_status(
    inst: Instance, args: list[str], out: BinaryIO, reload: Callable[[], Instance] | None = None
) -> int:
    """`cloud-init status`; with --wait, a dot every 0.25 s while `reload()` says running."""
    wait = "--wait" in args or "-w" in args
    long = "--long" in args or "-l" in args
    if wait:
        while cloud_init_phase(inst) == "running":
            out.write(b".")
            out.flush()
            time.sleep(0.25)
            inst = reload() if reload is not None else inst
    phase = cloud_init_phase(inst)
    prefix = "\n" if wait else ""
    text = f"{prefix}status: {phase}\n"
    if long:
        ci = inst.get("cloud_init") or {}
        stamp = formatdate(float(ci.get("done_at") or time.time())).replace("-0000", "+0000")
        detail = ERROR_DETAIL if phase == "error" else DETAIL
        text += f"boot_status_code: enabled-by-generator\nlast_update: {stamp}\ndetail:\n{detail}\n"
    out.write(text.encode())
    return 1 if phase == "error" else 0


def read_file(inst: Instance, path: str) -> bytes | None:
    if path == "/etc/hostname":
        return f"{inst['name']}\n".encode()
    stored = (inst.get("files") or {}).get(path)
    return None if stored is None else base64.b64decode(stored)


def is_dir(inst: Instance, path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    return path in ("/", "/root", "/home/ubuntu", "/run", "/tmp") or any(
        name.startswith(prefix) for name in inst.get("files") or {}
    )


def reboot(inst: Instance) -> None:
    """/run is a tmpfs: its files are gone after a boot."""
    files = inst.get("files") or {}
    inst["files"] = {k: v for k, v in files.items() if not k.startswith("/run/")}
    inst["boot"] = int(inst.get("boot", 0)) + 1


def as_user_command(argv: list[str]) -> tuple[str, list[str]] | None:
    """(user, command) of `sh -c SCRIPT NAME USER CMD...` where SCRIPT runs `runuser -u "$u"`
    with the rest (how labctl runs a command as the image's default user), else None."""
    if len(argv) >= 6 and argv[0] in SHELLS and argv[1] == "-c" and 'runuser -u "$u"' in argv[2]:
        return argv[4], argv[5:]
    return None


def runuser_failure(command: str, code: int) -> str:
    """What the wrapper's shell prints when it cannot run `command` (126/127), and then lxc
    itself for those exit codes (measured on 5.0.2)."""
    if code == 126:
        return (
            f"labctl-exec: 1: exec: {command}: Permission denied\nError: Command not executable\n"
        )
    return f"labctl-exec: 1: exec: {command}: not found\nError: Command not found\n"


def run(inst: Instance, argv: list[str], user: str, out: BinaryIO, err: BinaryIO) -> int:
    """Run argv as `user`; returns the exit status (`Exit` carries LXD's own failures)."""
    if argv[:1] == ["sudo"]:
        argv, user = _sudo(argv[1:])
    if not argv:
        return 0
    prog, args = argv[0], argv[1:]
    if prog in SHELLS and "-c" in args:
        script = args[args.index("-c") + 1] if args.index("-c") + 1 < len(args) else ""
        words = shlex.split(script) if not META & set(script) else []
        if words[:1] == ["exit"]:
            return int(words[1]) % 256 if len(words) > 1 and words[1].isdigit() else 0
        if not words:
            word = script.split()[0] if script.split() else ""
            err.write(f"sh: 1: {word}: not found\n".encode())
            return 127
        try:
            return run(inst, words, user, out, err)
        except Exit as exc:  # inside a shell a missing command is the shell's message
            if exc.code == 127:
                err.write(f"sh: 1: {words[0]}: not found\n".encode())
            return exc.code
    return _builtin(inst, prog, args, user, out, err)


def _sudo(args: list[str]) -> tuple[list[str], str]:
    user = "root"
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "-u" and args:
            user = USERS.get(args.pop(0), "nobody")
        elif flag == "--":
            break
    return args, user


def _builtin(
    inst: Instance, prog: str, args: list[str], user: str, out: BinaryIO, err: BinaryIO
) -> int:
    if prog == "cloud-init" and args[:1] == ["status"]:
        return cloud_init_status(inst, args[1:], out)
    simple = {"true": 0, "false": 1}
    if prog in simple:
        return simple[prog]
    if prog == "echo":
        out.write((" ".join(args) + "\n").encode())
        return 0
    if prog == "hostname":
        out.write(f"{inst['name']}\n".encode())
        return 0
    if prog == "whoami" or (prog == "id" and args in (["-un"], ["-nu"])):
        out.write(f"{user}\n".encode())
        return 0
    if prog == "id" and args == ["-u"]:
        out.write(b"0\n" if user == "root" else b"1000\n")
        return 0
    if prog == "sleep" and args:
        time.sleep(float(args[0]))
        return 0
    if prog == "reboot":
        reboot(inst)
        return 0
    if prog == "cat":
        return _cat(inst, args, out, err)
    if prog in ("test", "["):
        return _test(inst, [a for a in args if a != "]"])
    if prog in ("touch", "rm"):
        files = inst.setdefault("files", {})
        for path in (a for a in args if not a.startswith("-")):
            if prog == "touch":
                files.setdefault(path, "")
            else:
                files.pop(path, None)
        return 0
    if read_file(inst, prog) is not None:
        raise Exit(126, "Error: Command not executable\n")
    raise Exit(127, "Error: Command not found\n")


def _cat(inst: Instance, paths: list[str], out: BinaryIO, err: BinaryIO) -> int:
    rc = 0
    for path in paths:
        data = read_file(inst, path)
        if data is None:
            err.write(f"cat: {path}: No such file or directory\n".encode())
            rc = 1
        else:
            out.write(data)
    return rc


def _test(inst: Instance, args: list[str]) -> int:
    negate = bool(args) and args[0] == "!"
    args = args[1:] if negate else args
    if len(args) != 2 or args[0] not in ("-e", "-f", "-d", "-s", "-r"):
        return 2
    flag, path = args
    data = read_file(inst, path)
    found = {
        "-d": is_dir(inst, path),
        "-f": data is not None,
        "-s": bool(data),
    }.get(flag, data is not None or is_dir(inst, path))
    return 0 if found != negate else 1
