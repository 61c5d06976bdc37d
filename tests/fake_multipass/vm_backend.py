"""VmBackend: every instance is a real qemu VM (tests/qemuvm) booted from the project's image.

It is SimBackend (sim_backend.py) with the VM swapped: the same bridge on the same private
subnet (simvm's SimNetwork: `sim_subnet`, `sim_prefix`, `sim_state_dir`), the same address plan
(`ipv4[0]` = subnet .2 + n), the same exec/transfer plumbing, and the same cleanup
(tests.simvm.cleanup_all(prefix) kills tagged qemu processes and removes the TAPs and bridge).
What differs: first start = overlay + NoCloud seed (labctl's user-data text as sent) + boot until
SSH answers; provision = wait for boot-finished, then the real `cloud-init status`; stop = ACPI
powerdown; restart = stop + boot; snapshots = qcow2 internal snapshots.
"""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path
from typing import Any

from .backend import (
    Instance,
    ProvisionOutcome,
    ProvisionTimeoutError,
    finished,
)
from .errors import CommandError
from .faults import Settings
from .guest import BOOT_FINISHED
from .sim_backend import SimBackend

DAEMON_TIMEOUT = 300.0  # multipassd's default per phase (docs/engines/multipass.md)


class VmBackend(SimBackend):
    name = "vm"
    lazy = False

    def __init__(self, settings: Settings, daemon_index: int) -> None:
        super().__init__(settings, daemon_index)
        from tests.qemuvm import QemuVM, probe_accel
        from tests.simvm._proc import file_lock
        from tests.vmimage import Image, cached_image

        self._qemu_vm = QemuVM
        folder = settings.get("vm_image")
        self.image = Image(Path(folder)) if folder else cached_image()
        if not self.image.complete():
            raise CommandError(
                f"fake multipass: backend 'vm' needs the base image at {self.image.folder} "
                "(build it with `make vm-image`)",
                2,
            )
        self.key = self.state_dir / "ssh" / "id_ed25519"
        with file_lock(self.state_dir / "vm.lock"):
            if not self.key.exists():  # the daemon's own key, as Multipass has one
                self.key.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [
                        "ssh-keygen",
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "",
                        "-C",
                        "fake-multipass",
                        "-f",
                        str(self.key),
                    ],
                    check=True,
                    timeout=60,
                )
            accel_file = self.state_dir / "accel"
            if not accel_file.exists():
                accel = settings.get("vm_accel") or probe_accel(
                    self.image, self.state_dir / "logs" / "accel-probe.log"
                )
                accel_file.write_text(str(accel))
        self.accel = accel_file.read_text().strip()

    def _vm(self, inst: Instance) -> Any:
        return self._qemu_vm(
            inst["name"], self.state_dir / inst["name"], self.network, self._ip(inst), self.image
        )

    def start(self, inst: Instance) -> list[str]:
        vm = self._vm(inst)
        if not inst["backend"].get("created"):
            # labctl's text as it was sent: the VMs needed no offline substitutions (tests/qemuvm/README.md)
            public_key = self.key.with_suffix(".pub").read_text().strip()
            vm.create(str(inst.get("user_data_text") or ""), public_key)
            vm.set_memory(int(inst["memory"]))
            inst["backend"].update(created=True, accel=self.accel)
        try:
            vm.boot(self.accel)
        except self.simvm.SimError as exc:
            raise CommandError(f"start failed: {exc}", 2) from None
        return [self._ip(inst)]

    def provision(
        self, inst: Instance, user_data: dict[str, Any] | None, timeout: float | None
    ) -> ProvisionOutcome:
        """As multipassd (docs/engines/multipass.md): poll for boot-finished (written even when modules
        fail), bounded by the daemon's timeout; then the real `cloud-init status`: 0/1/2."""
        vm = self._vm(inst)
        deadline = time.monotonic() + (timeout or DAEMON_TIMEOUT)
        while self._run(vm, ["test", "-e", BOOT_FINISHED]) != 0:
            if time.monotonic() > deadline:
                raise ProvisionTimeoutError
            time.sleep(3)
        code = self._run(vm, ["cloud-init", "status"])
        return finished(code)

    @staticmethod
    def _run(vm: Any, argv: list[str]) -> int:
        sink = io.BytesIO()
        return int(vm.exec(argv, stdin=None, stdout=sink, stderr=sink, user="root", timeout=120))

    def restart(self, inst: Instance) -> None:
        """Multipass restart: a clean shutdown, then boot again (a new boot id in the guest)."""
        vm = self._vm(inst)
        vm.stop()
        vm.boot(self.accel)

    def snapshot(self, inst: Instance, snap: dict[str, Any]) -> None:
        self._vm(inst).snapshot(str(snap["name"]))

    def restore(self, inst: Instance, snap: dict[str, Any]) -> None:
        self._vm(inst).restore(str(snap["name"]))
