"""A lab's local state: which instances labctl launched for it.

Multipass has no labels, so ownership is recorded before each launch (an interrupted `up` still
knows which half-built instances are its own) and double-checked against the marker file that
cloud-init writes inside each VM. Lives in `.labctl/<lab>/` beside lab.yaml, or `LABCTL_STATE_DIR`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def state_dir(lab_file_dir: Path, lab_name: str) -> Path:
    root = os.environ.get("LABCTL_STATE_DIR")
    base = Path(root) if root else lab_file_dir / ".labctl"
    return base / lab_name


class LabState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        # Launch threads record instances concurrently; one read-modify-write at a time.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.directory / ".state.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def _read(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"instances": {}}
        return loaded if isinstance(loaded, dict) else {"instances": {}}

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        Path(tmp).replace(self.path)

    def owned(self) -> set[str]:
        return set(self._read().get("instances", {}))

    def record(self, instance: str, vm: str) -> None:
        with self._locked() as data:
            data.setdefault("instances", {})[instance] = {"vm": vm, "since": int(time.time())}

    def forget(self, instances: list[str]) -> None:
        with self._locked() as data:
            for name in instances:
                data.setdefault("instances", {}).pop(name, None)
