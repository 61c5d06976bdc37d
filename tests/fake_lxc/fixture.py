"""Controller for the fake lxc, usable with or without pytest.

fake = FakeLxc(tmp_path / "flxc")          # or the `fake_lxc` fixture
subprocess.run([fake.executable, "list", "--format", "json"], env=fake.environ())
fake.make_cluster(["m1", "m2", "m3"]); fake.set_member_down("m2")
fake.configure(create_latency=0.3, busy_creating=["web2"])
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.fake_cli import FakeCli

from .faults import DEFAULTS
from .state import LOCAL, Store, new_server

MAIN = Path(__file__).resolve().parent / "main.py"
LXD_MAIN = Path(__file__).resolve().parent / "lxd_main.py"


class FakeLxc(FakeCli):
    known_settings = frozenset(DEFAULTS)
    home_variable = "FAKE_LXC_HOME"

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        super().__init__(root, "lxc", MAIN, python)
        self.store = Store(self.home)
        #: the fake `lxd` binary (`lxd init --preseed`), beside the fake `lxc`
        self.daemon_executable = self.bin_dir / "lxd"
        self.daemon_executable.write_text(f'#!/bin/sh\nexec "{python}" "{LXD_MAIN}" "$@"\n')
        self.daemon_executable.chmod(0o755)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return self.base_environ(base)

    def run(
        self, *args: str, input: str | bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run the fake as a subprocess (text mode) and capture its output."""
        return self.run_with(args, self.environ(), input, timeout)

    def _invocations(self) -> int:
        with self.store.transaction(write=False) as root:
            return int(root["invocations"])

    # -- servers, clusters, remotes ------------------------------------------------------------
    def make_cluster(
        self,
        members: Sequence[str] = ("m1", "m2", "m3"),
        *,
        server: str = LOCAL,
        port: int = 8443,
    ) -> None:
        """Turn a server into a cluster of `members` (on 127.0.1.<n>:port)."""
        with self.store.transaction() as root:
            data = root["servers"].setdefault(server, new_server(len(root["servers"])))
            data["members"] = {
                name: {"address": f"127.0.1.{n}:{port}", "down_since": None}
                for n, name in enumerate(members, start=1)
            }
            data["address"] = f"127.0.1.1:{port}"

    def add_remote(
        self,
        name: str,
        *,
        address: str,
        members: Sequence[str] = (),
        project: str = "default",
        trust_password: str | None = None,
    ) -> None:
        """Another server (a lab host), and a remote `name` for it as `lxc remote add` leaves
        it (already trusted). `trust_password` lets `remote add URL --password` join instead."""
        with self.store.transaction() as root:
            server = new_server(len(root["servers"]), address=address, members=list(members))
            if trust_password is not None:
                server["trust_password"] = trust_password
            root["servers"][name] = server
            root["remotes"][name] = {"server": name, "project": project}

    def set_member_down(self, member: str, down: bool = True, *, server: str = LOCAL) -> None:
        """A member's daemon stops answering: its instances show Error with no config, and
        exec/info/stop into them wait `member_down_stall` seconds before failing."""
        with self.store.transaction() as root:
            root["servers"][server]["members"][member]["down_since"] = time.time() if down else None
        current = [m for m in self.settings().get("members_down", []) if m != member]
        self.configure(members_down=[*current, member] if down else current)

    def set_member_catching_up(self, member: str, seconds: float) -> None:
        """The member has just come back: for `seconds`, the other members have no event
        connection to it yet (operations on its instances fail at once, a launch placed there
        creates the instance but loses its reply), as LXD 5.0.2 showed for ~15 s."""
        until = dict(self.settings().get("member_catching_up_until", {}))
        until[member] = time.time() + seconds
        self.configure(member_catching_up_until=until)

    def make_uninitialised(self, *, server: str = LOCAL) -> None:
        """The daemon was installed but never initialised: no storage pool, no network, and a
        default profile without devices (as recorded from a fresh LXD 5.0.2)."""
        with self.store.transaction() as root:
            data = root["servers"][server]
            data["uninitialised"] = True
            for key, profile in data["profiles"].items():
                if key.endswith("/default"):
                    profile["devices"] = {}

    def add_image(self, alias: str, *, server: str = LOCAL) -> None:
        from .state import DEFAULT_FINGERPRINT, IMAGE_PROPERTIES

        with self.store.transaction() as root:
            root["servers"][server]["images"][alias] = {
                "fingerprint": DEFAULT_FINGERPRINT,
                "properties": dict(IMAGE_PROPERTIES),
            }

    def remove_image(self, alias: str, *, server: str = LOCAL) -> None:
        with self.store.transaction() as root:
            root["servers"][server]["images"].pop(alias, None)

    # -- instances -----------------------------------------------------------------------------
    def instances(
        self, *, server: str = LOCAL, project: str = "default"
    ) -> dict[str, dict[str, Any]]:
        with self.store.transaction(write=False) as root:
            table = root["servers"][server]["instances"]
        prefix = f"{project}/"
        return {k[len(prefix) :]: v for k, v in table.items() if k.startswith(prefix)}

    def instance(
        self, name: str, *, server: str = LOCAL, project: str = "default"
    ) -> dict[str, Any]:
        return self.instances(server=server, project=project)[name]

    def set_status(
        self, name: str, status: str, *, server: str = LOCAL, project: str = "default"
    ) -> None:
        """Force a status ("Stopped", "Frozen", ...) behind the daemon's back."""
        with self.store.transaction() as root:
            root["servers"][server]["instances"][f"{project}/{name}"]["status"] = status

    def finish_cloud_init(
        self, name: str, result: str = "done", *, server: str = LOCAL, project: str = "default"
    ) -> None:
        """cloud-init in `name` ends now with `result` ("done" or "error")."""
        with self.store.transaction() as root:
            inst = root["servers"][server]["instances"][f"{project}/{name}"]
            inst["cloud_init"] = {"done_at": time.time(), "result": result}

    def write_file(
        self,
        name: str,
        path: str,
        data: bytes | str,
        *,
        server: str = LOCAL,
        project: str = "default",
    ) -> None:
        raw = data.encode() if isinstance(data, str) else data
        with self.store.transaction() as root:
            inst = root["servers"][server]["instances"][f"{project}/{name}"]
            inst.setdefault("files", {})[path] = base64.b64encode(raw).decode()


@pytest.fixture
def fake_lxc(tmp_path: Path) -> Iterator[FakeLxc]:
    """A fresh fake lxc (state dir + `lxc` wrapper) per test."""
    yield FakeLxc(tmp_path / "fake-lxc")


@pytest.fixture
def lxd_here(fake_lxc: FakeLxc, monkeypatch: pytest.MonkeyPatch, bare_path: Path) -> FakeLxc:
    """No Multipass, and the fake `lxc` (an initialised LXD) as this machine's LXD."""
    for key, value in fake_lxc.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LABCTL_LXC", str(fake_lxc.executable))
    return fake_lxc
