"""Controller for the fake multipass, usable with or without pytest.

fake = FakeMultipass(tmp_path / "fmp")          # or the ``fake_multipass`` fixture
subprocess.run([fake.executable, "list", "--format", "json"], env=fake.environ())
fake.configure(launch_latency=0.3, ssh_timeout=["web2"])
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

from .context import new_instance
from .faults import KNOWN_KEYS
from .model import parse_size
from .plain_backend import allocate_ip
from .state import DEFAULT_ADDRESS, Store

MAIN = Path(__file__).resolve().parent / "main.py"


class FakeMultipass(FakeCli):
    known_settings = KNOWN_KEYS
    home_variable = "FAKE_MULTIPASS_HOME"

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        super().__init__(root, "multipass", MAIN, python)

    # -- environment / running -----------------------------------------------------------------
    def environ(
        self, base: Mapping[str, str] | None = None, *, server_address: str | None = None
    ) -> dict[str, str]:
        """A full environment: ``base`` (default os.environ) + env + bin dir first on PATH."""
        env = self.base_environ(base)
        if server_address is not None:
            env["MULTIPASS_SERVER_ADDRESS"] = server_address
        return env

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 30,
        server_address: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the fake as a subprocess (text mode) and capture its output."""
        return self.run_with(args, self.environ(server_address=server_address), input, timeout)

    # -- state ---------------------------------------------------------------------------------
    def _store(self, server_address: str | None) -> Store:
        return Store(self.home, server_address or DEFAULT_ADDRESS)

    def _invocations(self) -> int:
        return int(self._store(None).read_all().get("invocations", 0))

    def instances(self, server_address: str | None = None) -> dict[str, dict[str, Any]]:
        """The instance table of one daemon (scheduled transitions applied)."""
        address = server_address or DEFAULT_ADDRESS
        daemons = self._store(address).read_all().get("daemons", {})
        table: dict[str, dict[str, Any]] = daemons.get(address, {}).get("instances", {})
        return table

    def instance(self, name: str, server_address: str | None = None) -> dict[str, Any]:
        return self.instances(server_address)[name]

    def daemons(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._store(None).read_all().get("daemons", {})
        return result

    def add_instance(
        self,
        name: str,
        state: str = "Running",
        ipv4: Sequence[str] | None = None,
        *,
        image: str = "24.04",
        cpus: int = 1,
        memory: str = "1G",
        disk: str = "5G",
        foreign: bool = True,
        cloud_init: str = "done",
        files: Mapping[str, bytes | str] | None = None,
        server_address: str | None = None,
    ) -> dict[str, Any]:
        """Pre-seed an instance (e.g. a foreign VM squatting on a lab VM's name)."""
        with self._store(server_address).transaction() as daemon:
            inst = new_instance(name, image=image, state=state)
            host = daemon.next_host_number()
            ip = allocate_ip(
                str(self.settings().get("ip_pool", "127.80.0.0/16")), daemon.index, host
            )
            inst["backend"].update(host=host, ip=ip)
            running = state in ("Running", "Delayed Shutdown")
            inst.update(
                cpus=cpus,
                memory=parse_size(memory),
                disk=parse_size(disk),
                memory_spec=memory,
                disk_spec=disk,
                foreign=foreign,
                ipv4=list(ipv4) if ipv4 is not None else ([ip] if running else []),
                boot_id=1 if running else 0,
            )
            now = time.time()
            inst["cloud_init"] = {"result": cloud_init, "started_at": now, "done_at": now}
            inst["files"] = {
                path: base64.b64encode(v.encode() if isinstance(v, str) else v).decode()
                for path, v in (files or {}).items()
            }
            daemon.instances[name] = inst
            return dict(inst)

    def set_state(self, name: str, state: str, server_address: str | None = None) -> None:
        """Force an instance's state (e.g. "Unknown") behind the daemon's back."""
        with self._store(server_address).transaction() as daemon:
            daemon.instances[name].update(state=state, pending=[])


@pytest.fixture
def fake_multipass(tmp_path: Path) -> Iterator[FakeMultipass]:
    """A fresh fake multipass (state dir + ``multipass`` wrapper) per test."""
    yield FakeMultipass(tmp_path / "fake-multipass")
