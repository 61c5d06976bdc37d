"""VmBackend: every instance is a real qemu VM (tests/qemuvm) booted from the project's image.

It is SimBackend (sim_backend.py) with the VM swapped: the same bridge on the same private
subnet (simvm's SimNetwork: `sim_subnet`, `sim_prefix`, `sim_state_dir`), the same address plan
(`ipv4[0]` = subnet .2 + n), the same exec/transfer plumbing, and the same cleanup
(tests.simvm.cleanup_all(prefix) kills tagged qemu processes and removes the TAPs and bridge).
What differs: first start = overlay + NoCloud seed (labctl's user-data text, with only the
substitutions of tests/qemuvm/offline.py) + boot until SSH answers; provision = the real
`cloud-init status --wait`; stop = ACPI powerdown; snapshots = qcow2 internal snapshots.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

from .backend import (
    CI_DEGRADED,
    CI_DONE,
    CI_ERROR,
    Instance,
    ProvisionOutcome,
    ProvisionTimeoutError,
)
from .errors import CommandError
from .faults import Settings
from .sim_backend import SimBackend


class VmBackend(SimBackend):
    name = "vm"
    lazy = False

    def __init__(self, settings: Settings, daemon_index: int) -> None:
        super().__init__(settings, daemon_index)
        from tests.qemuvm import QemuVM, probe_accel, substitute
        from tests.simvm._proc import file_lock
        from tests.vmimage import Image, cached_image

        self._qemu_vm, self._substitute = QemuVM, substitute
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
            text, applied = self._substitute(str(inst.get("user_data_text") or ""))
            public_key = self.key.with_suffix(".pub").read_text().strip()
            vm.create(text, public_key)
            vm.set_memory(int(inst["memory"]))
            inst["backend"].update(created=True, substitutions=applied, accel=self.accel)
        try:
            vm.boot(self.accel)
        except self.simvm.SimError as exc:
            raise CommandError(f"start failed: {exc}", 2) from None
        return [self._ip(inst)]

    def provision(
        self, inst: Instance, user_data: dict[str, Any] | None, timeout: float | None
    ) -> ProvisionOutcome:
        """The real `cloud-init status --wait` in the VM: 0 done, 1 error, 2 degraded."""
        sink = io.BytesIO()
        try:
            code = self._vm(inst).exec(
                ["cloud-init", "status", "--wait"],
                stdin=None,
                stdout=sink,
                stderr=sink,
                user="root",
                timeout=timeout,
            )
        except self.simvm.ExecTimeout:
            raise ProvisionTimeoutError from None
        return ProvisionOutcome({1: CI_ERROR, 2: CI_DEGRADED}.get(code, CI_DONE), 0.0)

    def restart(self, inst: Instance) -> None:
        """Multipass restart: a clean shutdown, then boot again (a new boot id in the guest)."""
        vm = self._vm(inst)
        vm.stop()
        vm.boot(self.accel)

    def snapshot(self, inst: Instance, snap: dict[str, Any]) -> None:
        self._vm(inst).snapshot(str(snap["name"]))

    def restore(self, inst: Instance, snap: dict[str, Any]) -> None:
        self._vm(inst).restore(str(snap["name"]))
