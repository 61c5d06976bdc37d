"""Persistent daemon state: one JSON file guarded by ``fcntl.flock``, keyed by daemon address.

Layout of ``$FAKE_MULTIPASS_HOME/state.json``::

    {"invocations": 12,
     "daemons": {"<MULTIPASS_SERVER_ADDRESS>": {"index": 0, "ip_next": 3,
                                                 "instances": {"<name>": {...}}}}}

Instance records carry scheduled transitions (``pending``) that are applied lazily
whenever the state is loaded, so a launch that the client gave up on (``--timeout``)
still "finishes in the background" like the real daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fake_cli import file_lock as _flocked

from .errors import CommandError

DEFAULT_ADDRESS = "unix:/var/snap/multipass/common/multipass_socket"
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

Instance = dict[str, Any]


def home_dir() -> Path:
    value = os.environ.get("FAKE_MULTIPASS_HOME")
    if not value:
        raise CommandError(
            "fake multipass: FAKE_MULTIPASS_HOME is not set (point it at the fake's state dir)",
            2,
        )
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def server_address() -> str:
    return os.environ.get("MULTIPASS_SERVER_ADDRESS") or DEFAULT_ADDRESS


_THREAD = threading.local()  # the locks this thread holds (start boots instances in threads)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive flock; re-entrant within a thread (a nested flock on a new fd would deadlock).
    Other threads of the process open their own fd, so flock excludes them as it does processes."""
    held: set[Path] = _THREAD.__dict__.setdefault("held", set())
    if path in held:
        yield
        return
    held.add(path)
    try:
        with _flocked(path):
            yield
    finally:
        held.discard(path)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"invocations": 0, "daemons": {}}
    assert isinstance(data, dict)
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def advance(instance: Instance, now: float) -> None:
    """Apply every scheduled transition that is due."""
    pending = instance.get("pending") or []
    keep = []
    for step in sorted(pending, key=lambda s: float(s["at"])):
        if float(step["at"]) <= now:
            instance.update(step["set"])
        else:
            keep.append(step)
    instance["pending"] = keep


class Daemon:
    """The instance table of one daemon inside an open transaction."""

    def __init__(self, root: dict[str, Any], address: str) -> None:
        daemons: dict[str, Any] = root.setdefault("daemons", {})
        if address not in daemons:
            daemons[address] = {"index": len(daemons), "ip_next": 1, "instances": {}}
        self.data: dict[str, Any] = daemons[address]
        self.address = address
        self.root = root

    @property
    def index(self) -> int:
        return int(self.data["index"])

    @property
    def instances(self) -> dict[str, Instance]:
        table: dict[str, Instance] = self.data["instances"]
        return table

    def get(self, name: str) -> Instance | None:
        return self.instances.get(name)

    def next_host_number(self) -> int:
        number = int(self.data["ip_next"])
        self.data["ip_next"] = number + 1
        return number


class Store:
    def __init__(self, home: Path, address: str) -> None:
        self.home = home
        self.address = address
        self.path = home / STATE_FILE
        self.lock_path = home / LOCK_FILE

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Daemon]:
        """Lock, load, apply due transitions, yield this daemon's table, save."""
        with file_lock(self.lock_path):
            root = _read(self.path)
            daemon = Daemon(root, self.address)
            now = time.time()
            for inst in daemon.instances.values():
                advance(inst, now)
            yield daemon
            if write:
                _write(self.path, root)

    def count_invocation(self) -> tuple[int, int]:
        """Increment the global invocation counter.

        Returns (the count *before* this call, this daemon's index).
        """
        with file_lock(self.lock_path):
            root = _read(self.path)
            before = int(root.get("invocations", 0))
            root["invocations"] = before + 1
            index = Daemon(root, self.address).index  # registers the daemon
            _write(self.path, root)
            return before, index

    def read_all(self) -> dict[str, Any]:
        """The whole file with due transitions applied (for the controller)."""
        with file_lock(self.lock_path):
            root = _read(self.path)
        now = time.time()
        for daemon in root.get("daemons", {}).values():
            for inst in daemon.get("instances", {}).values():
                advance(inst, now)
        return root

    def get_instance(self, name: str) -> Instance | None:
        with self.transaction(write=False) as daemon:
            return daemon.get(name)

    def wait_for(self, name: str, states: set[str], poll: float = 0.05) -> Instance | None:
        """Poll (without holding the lock while sleeping) until ``name`` is in ``states``."""
        while True:
            inst = self.get_instance(name)
            if inst is None or inst["state"] in states:
                return inst
            time.sleep(poll)
