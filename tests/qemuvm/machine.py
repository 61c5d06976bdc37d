"""QemuVM: one real VM = qemu (TCG or KVM) + a qcow2 overlay + a NoCloud seed + a TAP.

All state lives in `state_dir` (vm.json, disk.qcow2, cidata.iso) so every method works from a
fresh process (each fake `multipass` call is one). qemu runs daemonized and carries the
SIMVM_NETNS=<network>-<vm> tag in its environment, so tests.simvm.cleanup_all(prefix) finds it
(and the TAP, named like simvm's veths) even after a crash.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO, Final

from tests.simvm._proc import SimError, file_lock, link_names, pid_alive, read_json, run, write_json
from tests.simvm.network import SimNetwork
from tests.simvm.vm import run_streamed
from tests.vmimage import Image

from .seed import write_seed

SSH_TIMEOUT: Final = 900.0  # first boot under TCG on a busy 2-core host: minutes, bounded
STOP_TIMEOUT: Final = 120.0  # ACPI powerdown, then the process is killed
MAX_MEMORY_MIB: Final = 1024
QMP_DIR: Final = Path("/run/labctl-vm")  # unix socket paths must stay under 108 bytes
KERNEL_ARGS: Final = "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 ds=nocloud"


class QemuVM:
    def __init__(
        self, name: str, state_dir: Path, network: SimNetwork, ip: str, image: Image
    ) -> None:
        if ipaddress.ip_address(ip) not in network.subnet:
            raise SimError(f"{ip} is not in {network.subnet}")
        self.name, self.state_dir, self.network, self.ip, self.image = (
            name,
            Path(state_dir),
            network,
            ip,
            image,
        )
        self.tag = network.netns_name(name)  # <net>-<vm>: cleanup_all(prefix) matches it
        self.tap = network.veth_names(ip)[0]  # <net>h<octet>: removed with the bridge's veths
        self.disk = self.state_dir / "disk.qcow2"
        self.seed = self.state_dir / "cidata.iso"
        self.pidfile = self.state_dir / "qemu.pid"
        self.qmp = QMP_DIR / f"{self.tag}.qmp"

    @property
    def serial_log(self) -> Path:
        """The serial console (kernel, systemd, cloud-init), kept with the daemon's logs."""
        return self.state_dir.parent / "logs" / f"{self.name}.serial.log"

    @property
    def mac(self) -> str:
        packed = ipaddress.ip_address(self.ip).packed
        return "52:54:00:" + ":".join(f"{b:02x}" for b in packed[1:])

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self, user_data: str, public_key: str) -> None:
        """Overlay on the shared base image and the NoCloud seed with labctl's user-data."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                str(self.image.disk),
                str(self.disk),
            ]
        )
        instance_id = f"{self.name}-{os.urandom(4).hex()}"
        write_seed(
            self.seed,
            self.state_dir / "seed",
            user_data=user_data,
            meta_data={
                "instance-id": instance_id,
                "local-hostname": self.name,
                "public-keys": [public_key],
            },
            network_config=self.network_config(),
        )
        write_json(self.state_dir / "vm.json", {"name": self.name, "ip": self.ip})

    def network_config(self) -> dict[str, Any]:
        """A static address on the test subnet (no gateway: no route out of it)."""
        return {
            "version": 1,
            "config": [
                {
                    "type": "physical",
                    "name": "eth0",
                    "mac_address": self.mac,
                    "subnets": [
                        {"type": "static", "address": f"{self.ip}/{self.network.subnet.prefixlen}"}
                    ],
                }
            ],
        }

    def boot(self, accel: str) -> None:
        """Start qemu (daemonized) and wait until SSH answers, as Multipass's `Running`."""
        self.network.ensure()
        with file_lock(self.state_dir / "qemu.lock"):
            if self.running():
                return
            self._tap_up()
            self.serial_log.parent.mkdir(parents=True, exist_ok=True)
            QMP_DIR.mkdir(parents=True, exist_ok=True)
            self.qmp.unlink(missing_ok=True)
            with self.serial_log.open("a") as log:
                log.write(f"\n===== labctl fake multipass: boot {self.name} ({accel}) =====\n")
            self._spawn(accel)
        self.wait_ssh(SSH_TIMEOUT)

    def _spawn(self, accel: str) -> None:
        # -daemonize: the parent exits once the VM runs; the child keeps the cleanup tag.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SIMVM_NETNS": self.tag}
        errors = self.state_dir / "qemu.stderr"
        with errors.open("wb") as err:
            proc = subprocess.run(
                self.qemu_argv(accel),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                timeout=120,
                check=False,
            )
        if proc.returncode != 0:
            raise SimError(
                f"qemu for {self.name} failed to start (rc={proc.returncode}): "
                + errors.read_text(errors="replace").strip()
            )

    def qemu_argv(self, accel: str) -> list[str]:
        memory = min(MAX_MEMORY_MIB, int(self._record().get("memory_mib", MAX_MEMORY_MIB)))
        cpu = "host" if accel == "kvm" else "max"
        return [
            "qemu-system-x86_64",
            "-name",
            self.name,
            "-nodefaults",
            "-no-user-config",
            "-accel",
            "kvm" if accel == "kvm" else "tcg,thread=multi",
            "-cpu",
            cpu,
            "-m",
            str(memory),
            "-smp",
            "1",
            "-kernel",
            str(self.image.kernel),
            "-initrd",
            str(self.image.initrd),
            "-append",
            KERNEL_ARGS,
            "-drive",
            f"file={self.disk},if=virtio,format=qcow2",
            "-drive",
            f"file={self.seed},if=virtio,format=raw,readonly=on",
            "-netdev",
            f"tap,id=net0,ifname={self.tap},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=net0,mac={self.mac}",
            "-device",
            "virtio-rng-pci",  # entropy for sshd/cloud-init key generation without waiting
            "-chardev",
            f"file,id=serial0,path={self.serial_log},append=on",
            "-serial",
            "chardev:serial0",
            "-display",
            "none",
            "-qmp",
            f"unix:{self.qmp},server=on,wait=off",
            "-pidfile",
            str(self.pidfile),
            "-daemonize",
        ]

    def _record(self) -> dict[str, Any]:
        path = self.state_dir / "vm.json"
        return dict(read_json(path)) if path.exists() else {}

    def set_memory(self, memory_bytes: int) -> None:
        record = self._record() | {"memory_mib": max(256, memory_bytes // 2**20)}
        write_json(self.state_dir / "vm.json", record)

    def _tap_up(self) -> None:
        if self.tap not in link_names():
            run(["ip", "tuntap", "add", "dev", self.tap, "mode", "tap"])
        run(["ip", "link", "set", self.tap, "master", self.network.bridge, "up"])

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and _is_ours(pid, self.tag) else None

    def running(self) -> bool:
        return self.pid() is not None

    def wait_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise SimError(f"qemu for {self.name} exited during boot\n{self.serial_tail()}")
            probe = subprocess.run(
                [*self.ssh_argv(connect_timeout=5), "true"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SimError(
                    f"{self.name}: SSH did not answer within {timeout:.0f} s\n{self.serial_tail()}"
                )
            time.sleep(2)

    def stop(self) -> None:
        """ACPI power button (QMP system_powerdown), bounded wait, then kill; TAP removed."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(OSError, ValueError):
                qmp_command(self.qmp, "system_powerdown")
            deadline = time.monotonic() + STOP_TIMEOUT
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            self.kill()
        self._tap_down()

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)
        self.qmp.unlink(missing_ok=True)

    def _tap_down(self) -> None:
        if self.tap in link_names():
            run(["ip", "link", "delete", self.tap], check=False)

    def destroy(self) -> None:
        """delete --purge: the process, the TAP, the overlay, the seed (the serial log stays)."""
        self.kill()
        self._tap_down()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- disk snapshots (the VM is stopped: docs/engines/multipass.md) ----------------------------------
    def snapshot(self, name: str) -> None:
        run(["qemu-img", "snapshot", "-d", name, str(self.disk)], check=False)
        run(["qemu-img", "snapshot", "-c", name, str(self.disk)], timeout=600)

    def restore(self, name: str) -> None:
        run(["qemu-img", "snapshot", "-a", name, str(self.disk)], timeout=600)

    # -- guest access --------------------------------------------------------------------------
    def ssh_argv(self, *, connect_timeout: int = 15, user: str = "ubuntu") -> list[str]:
        key = self.state_dir.parent / "ssh" / "id_ed25519"
        return [
            "ssh",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=6",
            "-T",
            f"{user}@{self.ip}",
        ]

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
        """Like `multipass exec`: every argument quoted, run over SSH as ubuntu, exit code kept."""
        command = shlex.join(argv)
        if user == "root":
            command = "sudo -n -- " + command
        return run_streamed(
            [*self.ssh_argv(), command],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
            describe=f"ssh {self.name}: {argv}",
        )

    def serial_tail(self, lines: int = 40) -> str:
        try:
            text = self.serial_log.read_text(errors="replace")
        except OSError:
            return f"(no serial log at {self.serial_log})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.serial_log} ---\n{tail}"


def _is_ours(pid: int, tag: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"SIMVM_NETNS={tag}".encode() in env


def qmp_command(path: Path, command: str, *, timeout: float = 10) -> dict[str, Any]:
    """One QMP command over the VM's monitor socket (greeting, qmp_capabilities, command)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        stream.readline()  # {"QMP": {...}} greeting
        reply: dict[str, Any] = {}
        for execute in ("qmp_capabilities", command):
            stream.write(json.dumps({"execute": execute}).encode() + b"\n")
            stream.flush()
            while True:  # skip asynchronous events until the command's return/error
                reply = json.loads(stream.readline() or b"{}")
                if "event" not in reply:
                    break
        return reply
