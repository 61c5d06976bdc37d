"""Controller for the fake multipass, usable with or without pytest.

fake = FakeMultipass(tmp_path / "fmp")          # or the ``fake_multipass`` fixture
subprocess.run([fake.executable, "list", "--format", "json"], env=fake.environ())
fake.configure(launch_latency=0.3, ssh_timeout=["web2"])
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .context import new_instance
from .faults import KNOWN_KEYS, load_raw, settings_path
from .model import parse_size
from .plain_backend import allocate_ip
from .state import DEFAULT_ADDRESS, Store, file_lock

MAIN = Path(__file__).resolve().parent / "main.py"


class FakeMultipass:
    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = Path(root)
        self.home = self.root / "state"
        self.bin_dir = self.root / "bin"
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.executable = self.bin_dir / "multipass"
        self.executable.write_text(f'#!/bin/sh\nexec "{python}" "{MAIN}" "$@"\n')
        self.executable.chmod(self.executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
        #: env vars to add to a subprocess environment
        self.env: dict[str, str] = {"FAKE_MULTIPASS_HOME": str(self.home)}

    # -- environment / running -----------------------------------------------------------------
    def environ(
        self, base: Mapping[str, str] | None = None, *, server_address: str | None = None
    ) -> dict[str, str]:
        """A full environment: ``base`` (default os.environ) + env + bin dir first on PATH."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
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
        data = input.decode() if isinstance(input, bytes) else input
        return subprocess.run(
            [str(self.executable), *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environ(server_address=server_address),
            check=False,
        )

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return load_raw(self.home)

    def _save_settings(self, data: dict[str, Any]) -> None:
        path = settings_path(self.home)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)

    def configure(self, **settings: Any) -> None:
        """Merge knobs into settings.json (a value of None removes the key)."""
        unknown = set(settings) - KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown fake multipass settings: {sorted(unknown)}")
        data = self.settings()
        if "fail_after_calls" in settings:
            data["fail_after_calls_base"] = self._invocations()
        for key, value in settings.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._save_settings(data)

    def reset(self) -> None:
        """Drop every setting (latencies, faults, canned exec responses)."""
        self._save_settings({})

    def on_exec(
        self,
        instance: str,
        argv_prefix: Sequence[str],
        stdout: str = "",
        stderr: str = "",
        rc: int = 0,
        delay: float = 0,
    ) -> None:
        """Canned answer for ``exec <instance> -- <argv starting with prefix>`` ("*" = any)."""
        data = self.settings()
        responses = list(data.get("exec_responses", []))
        responses.append(
            {
                "instance": instance,
                "argv_prefix": list(argv_prefix),
                "stdout": stdout,
                "stderr": stderr,
                "rc": rc,
                "delay": delay,
            }
        )
        data["exec_responses"] = responses
        self._save_settings(data)

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

    # -- call log ------------------------------------------------------------------------------
    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        """Finished invocations (calls.jsonl) plus still-running or killed ones (rc None)."""
        entries: list[dict[str, Any]] = []
        log = self.home / "calls.jsonl"
        with file_lock(self.home / "calls.lock"):
            if log.exists():
                entries = [json.loads(line) for line in log.read_text().splitlines() if line]
        running = self.home / "running"
        if running.exists():
            for marker in running.glob("*.json"):
                try:
                    entry = json.loads(marker.read_text())
                except (OSError, ValueError):
                    continue
                entry.update(rc=None, end_mono=None, end_wall=None, alive=_alive(entry["pid"]))
                entries.append(entry)
        entries.sort(key=lambda e: float(e["start_mono"]))
        if command is not None:
            entries = [e for e in entries if e.get("command") == command]
        return entries

    def max_concurrent(self, command: str = "launch") -> int:
        """The largest number of ``command`` invocations whose [start, end] overlapped."""
        events: list[tuple[float, int]] = []
        now = time.monotonic()
        for e in self.calls(command):
            end = e["end_mono"] if e["end_mono"] is not None else now
            events += [(float(e["start_mono"]), 1), (float(end), -1)]
        best = current = 0
        for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):
            current += delta
            best = max(best, current)
        return best


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def fake_multipass(tmp_path: Path) -> Iterator[FakeMultipass]:
    """A fresh fake multipass (state dir + ``multipass`` wrapper) per test."""
    yield FakeMultipass(tmp_path / "fake-multipass")
