"""A lab's local state: which instances labctl launched for it, its snapshots, and its lock.

Multipass has no labels, so ownership is recorded before each launch (an interrupted `up` still
knows which half-built instances are its own) and double-checked against the marker file that
cloud-init writes inside each VM. Lives in `.labctl/<lab>/` beside lab.yaml, or `LABCTL_STATE_DIR`:
`state.json` (instances), `snapshots.json` (the snapshot manifest), `lock` (who is changing the
lab), `hosts.bak` (the hosts file before labctl last changed it), `class.json` (a class's
placements), `status-agent.key` (host/agent.py).

labctl may run as root in a lab folder students can write, so the state dir and its parent are
opened and checked as `labctl.safefs.PrivateDir`s on every use, and every file in them is reached
through that descriptor only (see safefs for the rules).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from labctl.errors import LabBusyError
from labctl.safefs import PrivateDir

MAX_STATE_BYTES: Final = 8 * 1024 * 1024  # a state file is a few KiB; a bigger one is not ours
LOCK_FILE: Final = "lock"
STATE_LOCK: Final = ".state.lock"  # held for each read-modify-write of a state file

# Locks this process holds, by path: a use case that calls another (up -> snapshot) re-enters.
_HELD: dict[str, list[Any]] = {}  # path -> [lock file descriptor, depth]
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    pid: int
    command: str
    since: float


def read_holder(fd: int) -> LockHolder | None:
    """Who wrote the lock file open on `fd` (its JSON), or None."""
    try:
        return _parse_holder(os.pread(fd, 4096, 0))
    except OSError:
        return None


def _parse_holder(raw: bytes | None) -> LockHolder | None:
    try:
        data = json.loads(raw or b"null")
        return LockHolder(int(data["pid"]), str(data["command"]), float(data["since"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return None


def write_holder(fd: int, command: str) -> None:
    """Name this process as the lock's holder (the lock file is flocked by `fd`)."""
    os.ftruncate(fd, 0)
    data = {"pid": os.getpid(), "command": command, "since": time.time()}
    os.pwrite(fd, json.dumps(data).encode(), 0)


def state_dir(lab_file_dir: Path, lab_name: str) -> Path:
    root = os.environ.get("LABCTL_STATE_DIR")
    base = Path(root) if root else lab_file_dir / ".labctl"
    return base / lab_name


class LabState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.snapshots_path = directory / "snapshots.json"
        self.lock_path = directory / LOCK_FILE
        self.hosts_backup = directory / "hosts.bak"

    @contextlib.contextmanager
    def files(self, *, create: bool) -> Iterator[PrivateDir | None]:
        """The state dir, opened and checked with its parent; None if it does not exist yet.

        UnsafePathError (exit 2, saying how to fix it) for a link, a non-directory, a dir someone
        else owns or others may write.
        """
        base_path = self.directory.parent
        named = os.environ.get("LABCTL_STATE_DIR")
        by_user = bool(named) and Path(named or "") == base_path
        base = PrivateDir.open(
            base_path,
            create=create,
            label="LABCTL_STATE_DIR" if by_user else "the state directory's parent",
            keep_mode=base_path.name != ".labctl",  # only labctl's own .labctl/ is set to 0700
            remedy="point LABCTL_STATE_DIR at a directory (or unset it)" if by_user else "",
        )
        if base is None:
            yield None
            return
        with base:
            own = base.subdir(self.directory.name, create=create, label="the state directory")
        if own is None:
            yield None
            return
        with own:
            yield own

    @contextlib.contextmanager
    def _locked(self, path: Path | None = None) -> Iterator[dict[str, Any]]:
        # Launch threads record instances concurrently; one read-modify-write at a time.
        name = (path or self.path).name
        with self.files(create=True) as files, _exclusive(files) as held:
            data = self._parse(held.read(name, MAX_STATE_BYTES))
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                held.write(name, json.dumps(data, indent=2, sort_keys=True).encode())

    def _read(self, path: Path | None = None) -> dict[str, Any]:
        with self.files(create=False) as files:
            raw = files.read((path or self.path).name, MAX_STATE_BYTES) if files else None
        return self._parse(raw)

    @staticmethod
    def _parse(raw: bytes | None) -> dict[str, Any]:
        try:
            loaded = json.loads(raw) if raw is not None else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"instances": {}}
        return loaded if isinstance(loaded, dict) else {"instances": {}}

    def save_hosts_backup(self, text: str) -> None:
        """Keep the hosts file's text from before labctl changes it (`hosts.bak`, 0600)."""
        with self.files(create=True) as files:
            assert files is not None  # create=True
            files.write(self.hosts_backup.name, text.encode())

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

    def snapshot_vms(self, name: str) -> dict[str, str]:
        """vm -> instance of the VMs the manifest says have snapshot `name`."""
        vms = self.snapshots().get(name, {}).get("vms", {})
        return vms if isinstance(vms, dict) else {}

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
        with self.files(create=False) as files:
            return _parse_holder(files.read(LOCK_FILE, 4096) if files else None)

    @contextlib.contextmanager
    def lock(
        self, lab: str, command: str, on_stale: Callable[[LockHolder], None] | None = None
    ) -> Iterator[None]:
        """Hold the lab's lock (flock, so the kernel drops it when the holder dies, even kill -9).

        A second process refuses at once with LabBusyError naming the holder; a lock file left by
        a dead process is taken over (on_stale is told). Re-entrant within this process.
        """
        key = str(self.lock_path.absolute())
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
        fd = self._acquire(lab, command, on_stale)
        with _HELD_GUARD:
            _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            os.ftruncate(fd, 0)  # a clean release leaves no holder behind
            os.close(fd)  # drops the flock

    def _acquire(
        self, lab: str, command: str, on_stale: Callable[[LockHolder], None] | None
    ) -> int:
        with self.files(create=True) as files:
            assert files is not None  # create=True
            fd = files.open_lock(LOCK_FILE)  # never through a link, never someone else's file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
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
        previous = read_holder(fd)
        if previous is not None and previous.pid != os.getpid() and on_stale is not None:
            on_stale(previous)  # the flock was free, so its holder died without releasing
        write_holder(fd, command)
        return fd


@contextlib.contextmanager
def _exclusive(files: PrivateDir | None) -> Iterator[PrivateDir]:
    """`files` (opened with create=True) held under its STATE_LOCK flock."""
    assert files is not None
    with files.locked(STATE_LOCK):
        yield files
