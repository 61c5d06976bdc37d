"""Knobs: latencies and faults, read fresh from `settings.json` by every invocation.

A knob is a plain value (for everything), a list of names it applies to (booleans), or a dict
keyed by name with an optional "*" default. The names are instance names for instance knobs,
remote names ("local" by default) for daemon knobs, member names for member knobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from tests.fake_cli import read_settings

DEFAULTS: Final[dict[str, Any]] = {
    # latencies, seconds
    "create_latency": 0.0,  # launch/init: the instance is "busy running a create" meanwhile
    "start_latency": 0.0,
    "stop_latency": 0.0,
    "exec_latency": 0.0,
    "list_latency": 0.0,
    "snapshot_latency": 0.0,
    "restore_latency": 0.0,
    "cloud_init_latency": 0.0,  # from the first start until cloud-init is done
    "address_latency": 0.0,  # from a start until eth0 has its IPv4 address (DHCP)
    # daemon and cluster faults
    "daemon_unreachable": False,  # by remote
    "fail_after_calls": None,  # the daemon becomes unreachable after N more invocations
    "members_down": [],  # member daemons that do not answer (their instances show Error)
    "member_down_stall": 10.0,  # what exec/info/stop into such an instance wait before failing
    "member_offline_after": 0.0,  # seconds until `cluster list` calls a down member Offline
    # by member: until this epoch time, the other members have no event connection to it (it
    # just came back): operations on its instances fail at once, a launch there is lost
    "member_catching_up_until": {},
    # by member ("local" for a server that is no cluster): what `/1.0/resources` and a pool's
    # `resources` say it has (cpus, memory_total, memory_used, pool_total, pool_used; bytes)
    "member_resources": {},
    "untrusted": False,  # by remote: the client certificate is no longer trusted
    "certificate_changed": False,  # by remote: the server's certificate changed
    # instance faults
    "busy_creating": [],  # instances stuck in a "create" operation
    "image_missing": [],  # image aliases (or "*") that the server does not have
    "cloud_init_error": False,
    "exec_hang": False,  # exec blocks until a signal
    "exec_responses": [],  # canned answers (FakeLxc.on_exec)
    # identity
    "first_run_notice": False,  # the welcome lines a client prints on stderr the first time
    "version": "5.0.2",
    "ip_pool": "127.81.0.0/16",
}


class Settings:
    def __init__(self, raw: dict[str, Any]) -> None:
        unknown = set(raw) - set(DEFAULTS) - {"fail_after_calls_base"}
        if unknown:
            raise ValueError(f"unknown fake lxc settings: {sorted(unknown)}")
        self.raw = raw

    @classmethod
    def load(cls, home: Path) -> Settings:
        return cls(read_settings(home))

    def get(self, key: str, scope: str | None = None) -> Any:
        value = self.raw.get(key, DEFAULTS[key])
        if isinstance(value, dict):
            return value.get(scope, value.get("*", DEFAULTS[key])) if scope else DEFAULTS[key]
        if isinstance(value, list) and key != "exec_responses":
            return scope in value or "*" in value
        return value

    def on(self, key: str, scope: str | None = None) -> bool:
        return bool(self.get(key, scope))

    def seconds(self, key: str, scope: str | None = None) -> float:
        value = self.get(key, scope)
        return float(value or 0.0)

    def unreachable(self, remote: str, invocations_before: int) -> bool:
        if self.on("daemon_unreachable", remote):
            return True
        limit = self.raw.get("fail_after_calls")
        base = int(self.raw.get("fail_after_calls_base", 0))
        return limit is not None and invocations_before - base >= int(limit)
