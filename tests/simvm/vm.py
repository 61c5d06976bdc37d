"""SimVM: one simulated Ubuntu VM = a network namespace + a private filesystem view.

All state lives in `state_dir` (vm.json, view.json, root/, seed/), so every method works
from a fresh process. Commands enter the VM through shims/enter.py (see rootfs.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, BinaryIO, Final

from . import cloudinit, rootfs
from ._proc import (
    SimError,
    file_lock,
    kill_all,
    link_names,
    netns_list,
    netns_pids,
    pid_alive,
    read_json,
    run,
    write_json,
)
from .network import SimNetwork

_HOST_ENV: Final[dict[str, str]] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
_BOOT_TIMEOUT: Final[float] = 120.0
_SHUTDOWN_TIMEOUT: Final[float] = 60.0  # then whatever is left is killed, as systemd does


class ExecTimeout(SimError):  # noqa: N818 - mirrors subprocess.TimeoutExpired
    """exec() ran past its timeout; the command's process group was killed."""


def tagged_pids(netns_prefix: str) -> list[int]:
    """Processes carrying SIMVM_NETNS=<netns starting with prefix> (catches orphans)."""
    needle = f"SIMVM_NETNS={netns_prefix}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if any(item.startswith(needle) for item in env.split(b"\0")):
                found.append(int(entry))
    return found


class SimVM:
    def __init__(self, name: str, state_dir: Path, network: SimNetwork, ip: str) -> None:
        if ipaddress.ip_address(ip) not in network.subnet:
            raise SimError(f"{ip} is not in {network.subnet}")
        self.name = name
        self.state_dir = Path(state_dir)
        self.network = network
        self.ip = ip
        self.netns = network.netns_name(name)
        self.veth_host, self.veth_guest = network.veth_names(ip)

    # -- state ----------------------------------------------------------------------------
    def _meta(self) -> dict[str, object]:
        path = self.state_dir / "vm.json"
        data = read_json(path) if path.exists() else {}
        return data if isinstance(data, dict) else {}

    def _set_meta(self, **changes: object) -> None:
        meta = self._meta()
        meta.update(changes)
        write_json(self.state_dir / "vm.json", meta)

    def boot_time(self) -> float:
        value = self._meta().get("boot_time", time.time())
        return float(value) if isinstance(value, (int, float)) else time.time()

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.state_dir / "vm.lock")

    # -- lifecycle ------------------------------------------------------------------------
    def create(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self.network.ensure()
            rootfs.build(self.state_dir, self.name, self.netns)
            self._set_meta(name=self.name, ip=self.ip, netns=self.netns, state="running",
                           network=self.network.name, boot_time=time.time())  # fmt: skip
            self._net_up()

    def _net_up(self) -> None:
        if self.netns in netns_list():
            return
        mac = "52:54:00:" + ":".join(hashlib.sha1(self.netns.encode()).hexdigest()[i : i + 2]
                                     for i in (0, 2, 4))  # fmt: skip
        for link in (self.veth_host, self.veth_guest):
            if link in link_names():
                run(["ip", "link", "delete", link], check=False)
        steps = [
            ["ip", "netns", "add", self.netns],
            ["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_guest],
            ["ip", "link", "set", self.veth_guest, "netns", self.netns],
            ["ip", "link", "set", self.veth_host, "master", self.network.bridge, "up"],
            ["ip", "-n", self.netns, "link", "set", self.veth_guest, "name", "eth0"],
            ["ip", "-n", self.netns, "link", "set", "eth0", "address", mac],
            ["ip", "-n", self.netns, "addr", "add", f"{self.ip}/24", "dev", "eth0"],
            ["ip", "-n", self.netns, "link", "set", "eth0", "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
            ["ip", "-n", self.netns, "route", "add", "default", "via", self.network.host_ip],
        ]
        for argv in steps:
            run(argv)
        self._set_meta(netns_inode=os.stat(f"/run/netns/{self.netns}").st_ino)

    def _kill_processes(self) -> None:
        exact = f"SIMVM_NETNS={self.netns}".encode()

        def pids() -> list[int]:
            found = set(netns_pids(self.netns)) if self.netns in netns_list() else set()
            found.update(p for p in tagged_pids(self.netns) if _has_env(p, exact))
            return sorted(found)

        kill_all(pids)

    def _net_down(self) -> None:
        self._kill_processes()
        if self.netns in netns_list():
            run(["ip", "netns", "delete", self.netns])
        if self.veth_host in link_names():
            run(["ip", "link", "delete", self.veth_host], check=False)

    def running(self) -> bool:
        return self._meta().get("state") == "running" and self.netns in netns_list()

    def stop(self) -> None:
        """Power off: stop the running units (their ExecStop), then kill every process of the
        VM, drop its NIC, clear /run and /tmp."""
        with self._lock():
            if self.running():
                with (self.state_dir / "boot.log").open("ab") as log:
                    self.exec(["systemctl", "simvm-shutdown"], stdin=None, stdout=log,
                              stderr=log, user="root", timeout=_SHUTDOWN_TIMEOUT)  # fmt: skip
            self._net_down()
            rootfs.reset_run(self.state_dir)
            self._set_meta(state="stopped")

    def boot(self) -> None:
        """Power on after stop(): network back, start enabled units; cloud-init is not rerun."""
        with self._lock():
            if self.running():
                return
            self._net_up()
            self._set_meta(state="running", boot_time=time.time())
            cloudinit.on_boot(self)
        with (self.state_dir / "boot.log").open("ab") as log:
            self.exec(["systemctl", "simvm-boot"], stdin=None, stdout=log, stderr=log,
                      user="root", timeout=_BOOT_TIMEOUT)  # fmt: skip

    def destroy(self) -> None:
        with self._lock():
            self._net_down()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.network.release_ip(self.ip)

    # -- running things -------------------------------------------------------------------
    def enter_argv(self, user: str, env: list[str], argv: list[str]) -> list[str]:
        """argv that runs `argv` as `user` inside this VM (netns + private mount view)."""
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--mount", "--uts", "--propagation", "private",
            "/usr/bin/python3", "-I", str(rootfs.SHIM_DIR / "enter.py"),
            str(self.state_dir / "view.json"), user, *env, "--", *argv,
        ]  # fmt: skip

    def run_cloud_init(self, user_data: str, timeout: float | None) -> cloudinit.CloudInitResult:
        if not self.running():
            raise SimError(f"VM {self.name} is not running")
        return cloudinit.run(self, user_data, timeout)

    def exec(
        self,
        argv: list[str],
        *,
        stdin: BinaryIO | None,
        stdout: BinaryIO,
        stderr: BinaryIO,
        user: str = "ubuntu",
        timeout: float | None = None,
    ) -> int:
        """Run argv in the VM like `multipass exec`; returns its exit code (128+N on signal)."""
        if not self.running():
            raise SimError(f"VM {self.name} is not running")
        if not argv:
            raise SimError("exec needs a command")
        return run_streamed(
            self.enter_argv(user, [], argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
            describe=f"exec in {self.name}: {argv}",
        )


def run_streamed(
    argv: list[str],
    *,
    stdin: BinaryIO | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    timeout: float | None = None,
    describe: str = "command",
) -> int:
    """Run argv with the given streams (real fds passed through, others pumped by threads);
    its exit code (128+N if killed by signal N); ExecTimeout (process group killed) on timeout."""
    fds: list[int | None] = [_fileno(s) for s in (stdin, stdout, stderr)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL
        if stdin is None
        else subprocess.PIPE
        if fds[0] is None
        else fds[0],
        stdout=fds[1] if fds[1] is not None else subprocess.PIPE,
        stderr=fds[2] if fds[2] is not None else subprocess.PIPE,
        env=_HOST_ENV,
        start_new_session=True,
    )
    pumps = []
    if stdin is not None and fds[0] is None and proc.stdin is not None:
        pumps.append(_pump(stdin, proc.stdin, close=True))
    if fds[1] is None and proc.stdout is not None:
        pumps.append(_pump(proc.stdout, stdout))
    if fds[2] is None and proc.stderr is not None:
        pumps.append(_pump(proc.stderr, stderr))
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise ExecTimeout(f"{describe}: timed out after {timeout}s") from None
    finally:
        for pump in pumps:
            pump.join(timeout=10)
    return 128 - rc if rc < 0 else rc


def _has_env(pid: int, item: bytes) -> bool:
    try:
        return item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _fileno(stream: IO[bytes] | None) -> int | None:
    if stream is None:
        return None
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return None
    with contextlib.suppress(AttributeError, ValueError, OSError):
        stream.flush()
    return fd


def _pump(src: IO[bytes], dst: IO[bytes], *, close: bool = False) -> threading.Thread:
    def copy() -> None:
        try:
            while chunk := src.read1(65536) if hasattr(src, "read1") else src.read(65536):
                dst.write(chunk)
                with contextlib.suppress(AttributeError, ValueError):
                    dst.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
        finally:
            if close:
                with contextlib.suppress(OSError, ValueError):
                    dst.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


__all__ = ["ExecTimeout", "SimVM", "pid_alive", "run_streamed", "tagged_pids"]
