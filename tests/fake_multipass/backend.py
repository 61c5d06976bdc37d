"""The seam between the fake daemon and "what happens inside the VM".

:class:`PlainBackend` (plain_backend.py) keeps a virtual file table in the state file and
answers a handful of commands. A ``SimBackend`` (sim_backend.py) drives real processes via
``tests/simvm``; ``VmBackend`` (vm_backend.py) boots real qemu VMs (``tests/qemuvm``).
Backend-private data lives in ``inst["backend"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from .faults import Settings

Instance = dict[str, Any]

CI_DONE, CI_ERROR, CI_DEGRADED = "done", "error", "degraded"


@dataclass
class ProvisionOutcome:
    """Result of cloud-init for a fresh instance.

    ``cloud_init`` is the final result ("done"/"error"/"degraded"); ``finishes_in`` is how many
    seconds from now until ``/var/lib/cloud/instance/boot-finished`` appears (``None`` = never).
    """

    cloud_init: str
    finishes_in: float | None


def finished(status_exit_code: int) -> ProvisionOutcome:
    """A finished cloud-init from `cloud-init status`'s exit code: 0 done, 1 error, 2 degraded."""
    return ProvisionOutcome({1: CI_ERROR, 2: CI_DEGRADED}.get(status_exit_code, CI_DONE), 0.0)


class ProvisionTimeoutError(Exception):
    """cloud-init did not finish within the daemon's timeout."""


class Backend(Protocol):
    name: str
    #: True when start()/provision() are pure predictions that the daemon may schedule in the
    #: state file (so background progress survives the client process); False when they block
    #: while real work happens.
    lazy: bool

    def start(self, inst: Instance) -> list[str]:
        """Boot (first boot or again); return the IPv4 list, management IP first ([] = none)."""
        ...

    def provision(
        self, inst: Instance, user_data: dict[str, Any] | None, timeout: float | None
    ) -> ProvisionOutcome:
        """Run cloud-init after the instance is Running; may raise ProvisionTimeoutError."""
        ...

    def exec(
        self, inst: Instance, argv: list[str], stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO
    ) -> int:
        """Run ``argv`` as user ubuntu inside the instance; return its exit status."""
        ...

    def stop(self, inst: Instance) -> None: ...

    def delete(self, inst: Instance) -> None:
        """Purge: remove everything belonging to the instance."""
        ...

    def read_file(self, inst: Instance, path: str) -> bytes | None: ...

    def write_file(self, inst: Instance, path: str, data: bytes) -> None: ...

    def snapshot(self, inst: Instance, snap: dict[str, Any]) -> None:
        """Save guest state into the snapshot record ``snap``."""
        ...

    def restore(self, inst: Instance, snap: dict[str, Any]) -> None: ...


def select_backend(settings: Settings, daemon_index: int) -> Backend:
    name = settings.backend_name()
    if name == "plain":
        from .plain_backend import PlainBackend

        return PlainBackend(settings, daemon_index)
    if name == "sim":
        from .sim_backend import SimBackend

        backend: Backend = SimBackend(settings, daemon_index)
        return backend
    if name == "vm":
        from .vm_backend import VmBackend

        return VmBackend(settings, daemon_index)
    raise ValueError(f"fake multipass: unknown backend {name!r} (expected 'plain', 'sim' or 'vm')")
