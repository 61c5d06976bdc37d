"""PlainBackend: no processes, a virtual file table and a few understood commands."""

from __future__ import annotations

import base64
import ipaddress
import shlex
import time
from typing import Any, BinaryIO

from . import guest
from .backend import CI_DEGRADED, CI_DONE, CI_ERROR, Instance, ProvisionOutcome
from .faults import Settings

SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash")
META = set(";|&<>$`(){}*?\n")


def allocate_ip(pool: str, daemon_index: int, host_number: int) -> str:
    """127.80.<daemon>.<n> for the default pool: loopback only, so no traffic leaves the box."""
    net = ipaddress.ip_network(pool, strict=False)
    address = net.network_address + daemon_index * 256 + host_number
    if host_number > 254 or address not in net:
        raise ValueError(f"fake multipass: IP pool {pool} exhausted")
    return str(address)


def strip_sudo(argv: list[str]) -> tuple[list[str], bool]:
    if not argv or argv[0] != "sudo":
        return argv, False
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in ("-u", "-g", "-C", "-D") and rest:
            rest.pop(0)
        if flag == "--":
            break
    return rest, True


class PlainBackend:
    name = "plain"
    lazy = True

    def __init__(self, settings: Settings, daemon_index: int) -> None:
        self.settings = settings
        self.daemon_index = daemon_index

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, inst: Instance) -> list[str]:
        if self.settings.flag("no_ip", inst["name"]):
            return []
        ip = (inst.get("backend") or {}).get("ip")
        return [str(ip)] if ip else []

    def provision(
        self, inst: Instance, user_data: dict[str, Any] | None, timeout: float | None
    ) -> ProvisionOutcome:
        name = inst["name"]
        files = inst.setdefault("files", {})
        for path, data in guest.files_from_user_data(user_data).items():
            files[path] = base64.b64encode(data).decode()
        if self.settings.flag("cloud_init_error", name):
            result = CI_ERROR
        elif self.settings.flag("cloud_init_degraded", name):
            result = CI_DEGRADED
        else:
            result = CI_DONE
        return ProvisionOutcome(result, self.settings.seconds("cloud_init_latency", name))

    def stop(self, inst: Instance) -> None:
        """Nothing runs, nothing to stop."""

    def delete(self, inst: Instance) -> None:
        inst.pop("files", None)

    # -- files -------------------------------------------------------------------------------
    def read_file(self, inst: Instance, path: str) -> bytes | None:
        if path == guest.OUTPUT_LOG:
            return guest.output_log(inst).encode()
        if path == guest.BOOT_FINISHED:
            return b"" if guest.ci_phase(inst) != "running" else None
        if path == "/etc/hostname":
            return f"{inst['name']}\n".encode()
        stored = (inst.get("files") or {}).get(path)
        return None if stored is None else base64.b64decode(stored)

    def write_file(self, inst: Instance, path: str, data: bytes) -> None:
        inst.setdefault("files", {})[path] = base64.b64encode(data).decode()

    def is_dir(self, inst: Instance, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        names = [*(inst.get("files") or {}), guest.OUTPUT_LOG, guest.BOOT_FINISHED]
        return path in ("/", "/home/ubuntu") or any(n.startswith(prefix) for n in names)

    def snapshot(self, inst: Instance, snap: dict[str, Any]) -> None:
        snap["files"] = dict(inst.get("files") or {})

    def restore(self, inst: Instance, snap: dict[str, Any]) -> None:
        inst["files"] = dict(snap.get("files") or {})

    # -- exec --------------------------------------------------------------------------------
    def _canned(self, inst: Instance, argv: list[str]) -> dict[str, Any] | None:
        for resp in reversed(self.settings.exec_responses()):  # the latest registration wins
            if resp.get("instance") not in ("*", inst["name"]):
                continue
            prefix = [str(a) for a in resp.get("argv_prefix", [])]
            if argv[: len(prefix)] == prefix:
                return dict(resp)
        return None

    def exec(
        self, inst: Instance, argv: list[str], stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO
    ) -> int:
        cmd, sudo = strip_sudo(argv)
        resp = self._canned(inst, cmd)
        if resp is not None:
            time.sleep(float(resp.get("delay", 0)))
            out, err = str(resp.get("stdout", "")).encode(), str(resp.get("stderr", "")).encode()
            try:
                for _ in range(
                    int(resp.get("repeat", 1))
                ):  # both pipes fill: the reader must drain both
                    stdout.write(out)
                    stderr.write(err)
            except BrokenPipeError:  # the reader gave up (killed us or closed): like a real VM
                return 141
            return int(resp.get("rc", 0))
        if cmd[:1] and cmd[0] in SHELLS and "-c" in cmd[1:]:
            script = cmd[cmd.index("-c") + 1] if cmd.index("-c") + 1 < len(cmd) else ""
            if not META & set(script):
                return self.exec(inst, shlex.split(script), stdin, stdout, stderr)
            word = script.split()[0] if script.split() else ""
            return self._not_found(word, stderr)
        return self._builtin(inst, cmd, sudo, stdout, stderr)

    @staticmethod
    def _not_found(word: str, stderr: BinaryIO) -> int:
        stderr.write(f"bash: line 1: {word}: command not found\n".encode())
        return 127

    def _builtin(
        self, inst: Instance, cmd: list[str], sudo: bool, out: BinaryIO, err: BinaryIO
    ) -> int:
        if not cmd:
            return 0
        prog, args = cmd[0], cmd[1:]
        if prog == "cloud-init" and args[:1] == ["status"]:
            return guest.cloud_init_status(inst, args[1:], out, err)
        if prog == "true":
            return 0
        if prog == "false":
            return 1
        if prog == "exit":
            return int(args[0]) % 256 if args and args[0].isdigit() else 0
        if prog == "hostname":
            out.write(f"{inst['name']}\n".encode())
            return 0
        if prog == "whoami":
            out.write(b"root\n" if sudo else b"ubuntu\n")
            return 0
        if prog == "echo":
            out.write((" ".join(args) + "\n").encode())
            return 0
        if prog == "sleep" and args:
            time.sleep(float(args[0]))
            return 0
        if prog == "cat":
            return self._cat(inst, args, out, err)
        if prog == "tail":
            return self._tail(inst, args, out, err)
        if prog in ("test", "["):
            return self._test(inst, [a for a in args if a != "]"])
        return self._not_found(prog, err)

    def _cat(self, inst: Instance, paths: list[str], out: BinaryIO, err: BinaryIO) -> int:
        rc = 0
        for path in paths:
            data = self.read_file(inst, path)
            if data is None:
                err.write(f"cat: {path}: No such file or directory\n".encode())
                rc = 1
            else:
                out.write(data)
        return rc

    def _tail(self, inst: Instance, args: list[str], out: BinaryIO, err: BinaryIO) -> int:
        count, paths, i = 10, [], 0
        while i < len(args):
            arg = args[i]
            if arg in ("-n", "--lines") and i + 1 < len(args):
                count, i = int(args[i + 1].lstrip("+")), i + 1
            elif arg.startswith("-n"):
                count = int(arg[2:])
            elif arg.startswith("--lines="):
                count = int(arg.split("=", 1)[1])
            elif arg.startswith("-") and arg[1:].isdigit():
                count = int(arg[1:])
            else:
                paths.append(arg)
            i += 1
        rc = 0
        for path in paths:
            data = self.read_file(inst, path)
            if data is None:
                msg = f"tail: cannot open '{path}' for reading: No such file or directory\n"
                err.write(msg.encode())
                rc = 1
                continue
            lines = data.splitlines(keepends=True)
            out.write(b"".join(lines[-count:] if count else []))
        return rc

    def _test(self, inst: Instance, args: list[str]) -> int:
        negate = bool(args) and args[0] == "!"
        args = args[1:] if negate else args
        if len(args) != 2:
            return 2
        flag, path = args
        data = self.read_file(inst, path)
        if flag == "-d":
            ok = self.is_dir(inst, path)
        elif flag in ("-e", "-r"):
            ok = data is not None or self.is_dir(inst, path)
        elif flag == "-f":
            ok = data is not None
        elif flag == "-s":
            ok = bool(data)
        else:
            return 2
        return 0 if ok != negate else 1
