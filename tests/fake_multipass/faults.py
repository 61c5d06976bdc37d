"""Settings: latencies, faults and canned exec responses, read fresh on every invocation.

The controller (:mod:`fixture`) writes ``settings.json`` in ``$FAKE_MULTIPASS_HOME``.
Every knob may be given

* as a plain value (applies to every instance / daemon),
* as a dict keyed by instance name (or daemon address for daemon-level knobs),
  with an optional ``"*"`` entry as the default, or
* for boolean knobs, as a list of instance names for which it is on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.fake_cli import read_settings

SETTINGS_FILE = "settings.json"

DEFAULTS: dict[str, Any] = {
    # latencies, seconds
    "launch_latency": 0.0,
    "cloud_init_latency": 0.0,
    "start_latency": 0.0,
    "stop_latency": 0.0,
    "exec_latency": 0.0,
    "list_latency": 0.0,
    # faults
    "launch_timeout": False,
    "ssh_timeout": False,
    "client_timeout": False,
    "daemon_down": False,
    "cloud_init_error": False,
    "cloud_init_degraded": False,
    "no_ip": False,
    "exec_hang": False,
    "snapshots_unsupported": False,
    "fail_after_calls": None,
    "version": "1.16.3",
    "driver": "qemu",  # what `get local.driver` answers
    # plumbing
    "backend": "plain",
    "ip_pool": "127.80.0.0/16",
    "exec_responses": [],
    "sim_subnet": None,  # sim and vm backends
    "sim_state_dir": None,  # sim and vm backends
    "sim_prefix": None,
    "vm_image": None,  # vm backend: the image folder (default: tests/vmimage's cache)
    "vm_accel": None,  # vm backend: "kvm" or "tcg" (default: probed once per daemon)
}

KNOWN_KEYS = frozenset(DEFAULTS) | {"fail_after_calls_base"}


def settings_path(home: Path) -> Path:
    return home / SETTINGS_FILE


def load_raw(home: Path) -> dict[str, Any]:
    return read_settings(home)


class Settings:
    """Resolved view of ``settings.json`` (unknown keys are rejected to catch typos)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        unknown = set(raw) - KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown fake multipass settings: {sorted(unknown)}")
        self.raw = raw

    @classmethod
    def load(cls, home: Path) -> Settings:
        return cls(load_raw(home))

    def _value(self, key: str, scope: str | None) -> Any:
        value = self.raw.get(key, DEFAULTS.get(key))
        if isinstance(value, dict):
            if scope is not None and scope in value:
                return value[scope]
            return value.get("*", DEFAULTS.get(key))
        if isinstance(value, list) and key != "exec_responses":
            return scope is not None and scope in value
        return value

    def flag(self, key: str, scope: str | None = None) -> bool:
        return bool(self._value(key, scope))

    def seconds(self, key: str, scope: str | None = None) -> float:
        value = self._value(key, scope)
        return float(value) if value is not None else 0.0

    def get(self, key: str, scope: str | None = None) -> Any:
        return self._value(key, scope)

    @property
    def version(self) -> str:
        return str(self._value("version", None))

    def backend_name(self) -> str:
        return os.environ.get("FAKE_MULTIPASS_BACKEND") or str(self._value("backend", None))

    def exec_responses(self) -> list[dict[str, Any]]:
        value = self.raw.get("exec_responses", [])
        return [r for r in value if isinstance(r, dict)]

    def daemon_down(self, address: str, invocations_before: int) -> bool:
        """``daemon_down`` or ``fail_after_calls`` (calls counted since it was configured)."""
        if self.flag("daemon_down", address):
            return True
        limit = self._value("fail_after_calls", address)
        if limit is None:
            return False
        base = int(self.raw.get("fail_after_calls_base", 0))
        return invocations_before - base >= int(limit)
