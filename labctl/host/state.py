"""A lab's local state: which instances labctl launched for it, its snapshots, and its lock.

Multipass has no labels, so ownership is recorded before each launch (an interrupted `up` still
knows which half-built instances are its own) and double-checked against the marker file that
cloud-init writes inside each VM. Lives in `.labctl/<lab>/` beside lab.yaml, or `LABCTL_STATE_DIR`:
`state.json` (instances), `snapshots.json` (the snapshot manifest), `lock` (who is changing the
lab), `hosts.bak` (the hosts file before labctl last changed it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from labctl.errors import LabBusyError

# Locks this process holds, by path: a use case that calls another (up -> snapshot) re-enters.
_HELD: dict[str, list[Any]] = {}  # path -> [open file, depth]
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    pid: int
    command: str
    since: float


def state_dir(lab_file_dir: Path, lab_name: str) -> Path:
    root = os.environ.get("LABCTL_STATE_DIR")
    base = Path(root) if root else lab_file_dir / ".labctl"
    return base / lab_name


class LabState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.snapshots_path = directory / "snapshots.json"
        self.lock_path = directory / "lock"
        self.hosts_backup = directory / "hosts.bak"

    @contextlib.contextmanager
    def _locked(self, path: Path | None = None) -> Iterator[dict[str, Any]]:
        # Launch threads record instances concurrently; one read-modify-write at a time.
        path = path or self.path
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.directory / ".state.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read(path)
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(path, data)

    def _read(self, path: Path | None = None) -> dict[str, Any]:
        try:
            loaded = json.loads((path or self.path).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"instances": {}}
        return loaded if isinstance(loaded, dict) else {"instances": {}}

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        Path(tmp).replace(path)

    def owned(self) -> set[str]:
        return set(self._read().get("instances", {}))

    def record(self, instance: str, vm: str) -> None:
        with self._locked() as data:
            data.setdefault("instances", {})[instance] = {"vm": vm, "since": int(time.time())}

    def forget(self, instances: list[str]) -> None:
        with self._locked() as data:
            for name in instances:
                data.setdefault("instances", {}).pop(name, None)

    # --- the snapshot manifest -------------------------------------------------------------------

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """name -> {"name", "created", "lab_digest", "vms": {vm: instance}, "missing": [vm]}."""
        found = self._read(self.snapshots_path).get("snapshots", {})
        return found if isinstance(found, dict) else {}

    def record_snapshot(self, name: str, entry: dict[str, Any]) -> None:
        with self._locked(self.snapshots_path) as data:
            data.setdefault("snapshots", {})[name] = entry

    def add_snapshot_vm(
        self, name: str, vm: str, instance: str, *, created: str, lab_digest: str
    ) -> None:
        """`vm` has snapshot `name` now: merged into its entry (VMs' pipelines record their own)."""
        with self._locked(self.snapshots_path) as data:
            entry = data.setdefault("snapshots", {}).setdefault(
                name, {"name": name, "created": created, "lab_digest": lab_digest, "vms": {}}
            )
            entry.setdefault("vms", {})[vm] = instance

    def forget_snapshot(self, name: str) -> None:
        with self._locked(self.snapshots_path) as data:
            data.setdefault("snapshots", {}).pop(name, None)

    def forget_snapshot_vm(self, name: str, vm: str) -> None:
        """One VM no longer has snapshot `name` (its instance was purged and relaunched)."""
        with self._locked(self.snapshots_path) as data:
            entry = data.setdefault("snapshots", {}).get(name)
            if isinstance(entry, dict):
                entry.get("vms", {}).pop(vm, None)

    def note(self, key: str) -> str | None:
        value = self._read(self.snapshots_path).get("notes", {}).get(key)
        return value if isinstance(value, str) else None

    def set_note(self, key: str, value: str | None) -> None:
        with self._locked(self.snapshots_path) as data:
            notes = data.setdefault("notes", {})
            if value is None:
                notes.pop(key, None)
            else:
                notes[key] = value

    def forget_all_snapshots(self) -> None:
        with self._locked(self.snapshots_path) as data:
            data["snapshots"] = {}
            data["notes"] = {}

    # --- a class lab: which Multipass host each student's lab lives on -----------------------------

    @property
    def class_path(self) -> Path:
        return self.directory / "class.json"

    def placements(self) -> dict[str, str]:
        """student -> host name, as `up` placed them (stable across runs)."""
        found = self._read(self.class_path).get("placements", {})
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def record_placements(self, placements: dict[str, str]) -> None:
        with self._locked(self.class_path) as data:
            data.setdefault("placements", {}).update(placements)

    # --- the lab lock: one labctl at a time changes a lab ------------------------------------------

    def holder(self) -> LockHolder | None:
        try:
            data = json.loads(self.lock_path.read_text(encoding="utf-8") or "null")
            return LockHolder(int(data["pid"]), str(data["command"]), float(data["since"]))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    @contextlib.contextmanager
    def lock(
        self, lab: str, command: str, on_stale: Callable[[LockHolder], None] | None = None
    ) -> Iterator[None]:
        """Hold the lab's lock (flock, so the kernel drops it when the holder dies, even kill -9).

        A second process refuses at once with LabBusyError naming the holder; a lock file left by
        a dead process is taken over (on_stale is told). Re-entrant within this process.
        """
        key = str(self.lock_path.resolve())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held[1] += 1
        if held is not None:
            try:
                yield
            finally:
                with _HELD_GUARD:
                    held[1] -= 1
            return
        handle = self._acquire(lab, command, on_stale)
        with _HELD_GUARD:
            _HELD[key] = [handle, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            handle.truncate(0)  # a clean release leaves no holder behind
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _acquire(
        self, lab: str, command: str, on_stale: Callable[[LockHolder], None] | None
    ) -> IO[str]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = self.lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = self.holder()
            who = (
                f"`labctl {holder.command}` (PID {holder.pid}, since "
                f"{time.strftime('%H:%M:%S', time.localtime(holder.since))})"
                if holder
                else "another labctl process"
            )
            raise LabBusyError(
                f"lab {lab!r} is busy: {who} is changing it; nothing was done",
                hint="Wait for it to finish and run your command again"
                + (f", or stop it (kill {holder.pid})." if holder else "."),
            ) from None
        previous = self.holder()
        if previous is not None and previous.pid != os.getpid() and on_stale is not None:
            on_stale(previous)  # the flock was free, so its holder died without releasing
        handle.seek(0)
        handle.truncate(0)
        json.dump({"pid": os.getpid(), "command": command, "since": time.time()}, handle)
        handle.flush()
        return handle
