"""Persistent state: `$FAKE_LXC_HOME/state.json` under an flock, shared by every invocation.

    {"invocations": 12,
     "remotes": {"local": {"server": "local", "project": "default"}, ...},   # the client side
     "servers": {"local": {<a server>}, ...}}                                # the daemons

A server holds its projects, profiles, images, trusted certificates, cluster members and its
instances keyed "<project>/<name>". The lock is never held while sleeping, so concurrent
launches overlap as with the real daemon.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from tests.fake_multipass.state import advance, file_lock
from tests.simvm._proc import read_json, write_json

from .errors import LxcError

HOME_ENV: Final = "FAKE_LXC_HOME"
LOCAL: Final = "local"
DEFAULT_IMAGE: Final = "labctl-test"
DEFAULT_FINGERPRINT: Final = "aed9680878a0ab5a6f174cc39cf69e1d7dbac81b193d45db2b1a1049dda72891"

IMAGE_PROPERTIES: Final = {
    "description": "labctl test image: Debian 12 (bookworm), cloud-init, nginx, node, pm2",
    "os": "debian",
    "release": "bookworm",
    "variant": "cloud",
}

Instance = dict[str, Any]
Server = dict[str, Any]


def home_dir() -> Path:
    value = os.environ.get(HOME_ENV)
    if not value:
        raise LxcError(f"fake lxc: {HOME_ENV} is not set (point it at the fake's state dir)", 2)
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_server(index: int, *, address: str = "", members: list[str] | None = None) -> Server:
    """A server as `lxd init --preseed` leaves it: a default project and profile, a pool, a
    managed bridge and the test image. `members` makes it a cluster."""
    return {
        "index": index,
        "ip_next": 1,
        "address": address,
        "members": {
            name: {"address": f"127.0.1.{n}:8443", "roles": []}
            for n, name in enumerate(members or [], start=1)
        },
        "projects": {
            "default": {
                "description": "Default LXD project",
                "config": {
                    "features.images": "true",
                    "features.networks": "true",
                    "features.profiles": "true",
                    "features.storage.volumes": "true",
                },
            }
        },
        "profiles": {
            "default/default": {
                "description": "Default LXD profile",
                "config": {},
                "devices": {
                    "eth0": {"name": "eth0", "network": "lxdbr0", "type": "nic"},
                    "root": {"path": "/", "pool": "default", "type": "disk"},
                },
            }
        },
        "images": {
            DEFAULT_IMAGE: {"fingerprint": DEFAULT_FINGERPRINT, "properties": IMAGE_PROPERTIES}
        },
        "trust": [],
        "tokens": {},
        "instances": {},
    }


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "state.json"
        self.lock = home / "state.lock"

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[dict[str, Any]]:
        """Lock, load, apply due transitions, yield the whole root, save."""
        with file_lock(self.lock):
            root = self._load()
            now = time.time()
            for server in root["servers"].values():
                for inst in server["instances"].values():
                    advance(inst, now)
            yield root
            if write:
                write_json(self.path, root)

    def _load(self) -> dict[str, Any]:
        root: dict[str, Any] = read_json(self.path) if self.path.exists() else {}
        root.setdefault("invocations", 0)
        root.setdefault("remotes", {LOCAL: {"server": LOCAL, "project": "default"}})
        servers = root.setdefault("servers", {})
        if LOCAL not in servers:
            servers[LOCAL] = new_server(0)
        return root

    def count_invocation(self) -> int:
        with file_lock(self.lock):
            root = self._load()
            before = int(root["invocations"])
            root["invocations"] = before + 1
            write_json(self.path, root)
            return before
