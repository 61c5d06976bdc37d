"""Per-invocation context: settings, state store, backend, output streams, instance helpers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .backend import Backend, select_backend
from .errors import failed
from .faults import Settings
from .model import DEFAULT_IMAGE, lookup_image
from .state import Daemon, Instance, Store

OPERATIVE_RUNNING = ("Running", "Delayed Shutdown")


class Context:
    def __init__(
        self,
        home: Path,
        address: str,
        stdin: BinaryIO,
        stdout: TextIO,
        stderr: TextIO,
        log: dict[str, Any],
        invocations_before: int,
        daemon_index: int,
    ) -> None:
        self.home = home
        self.address = address
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.log = log
        self.invocations_before = invocations_before
        self.daemon_index = daemon_index
        self.settings = Settings.load(home)
        self.store = Store(home, address)
        self._backend: Backend | None = None

    def out(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()

    def daemon_is_down(self) -> bool:
        return self.settings.daemon_down(self.address, self.invocations_before)

    def connect(self, command: str) -> None:
        """Reaching the daemon (docs/engines/multipass.md): exit 2 when it is down."""
        if self.daemon_is_down():
            raise failed(command, "cannot connect to the multipass socket")

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = select_backend(self.settings, self.daemon_index)
        return self._backend

    def sleep(self, key: str, scope: str | None = None) -> None:
        seconds = self.settings.seconds(key, scope)
        if seconds > 0:
            time.sleep(seconds)


def new_instance(name: str, *, image: str = DEFAULT_IMAGE, state: str = "Starting") -> Instance:
    img = lookup_image(image)
    return {
        "name": name,
        "state": state,
        "image": img.version if img.version != "custom" else image,
        "image_spec": image,
        "cpus": 1,
        "memory": 1024**3,
        "disk": 5 * 1024**3,
        "memory_spec": "1G",
        "disk_spec": "5G",
        "ipv4": [],
        "mounts": {},
        "networks": [],
        "snapshots": {},
        "snapshot_counter": 0,
        "head_snapshot": "",
        "created": time.time(),
        "foreign": False,
        "backend": {},
        "files": {},
        "user_data": None,
        "cloud_init": {"result": "done", "done_at": None, "started_at": None},
        "pending": [],
        "boot_id": 0,
    }


def is_running(inst: Instance) -> bool:
    return str(inst["state"]) in OPERATIVE_RUNNING


def missing_or_deleted(
    daemon: Daemon, names: list[str], *, deleted_ok: bool = False
) -> tuple[list[str], list[str]]:
    """(names that do not exist, names that are Deleted) for the 'following errors' replies."""
    missing = [n for n in names if daemon.get(n) is None]
    deleted = (
        [] if deleted_ok else [n for n in names if (daemon.get(n) or {}).get("state") == "Deleted"]
    )
    return missing, deleted


def operative_errors(daemon: Daemon, names: list[str], *, deleted_ok: bool = False) -> list[str]:
    """require_operative_instances_reaction texts (docs/engines/multipass.md)."""
    missing, deleted = missing_or_deleted(daemon, names, deleted_ok=deleted_ok)
    errors = []
    for n in names:
        if n in missing:
            errors.append(f'instance "{n}" does not exist')
        elif n in deleted:
            errors.append(f'instance "{n}" is deleted')
    return errors
