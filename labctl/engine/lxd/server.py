"""What the LXD server labctl talks to is set up with, read from `lxc query` answers (pure):
whether it was initialised (a storage pool, and profiles that give an instance a root disk and a
network), and doctor's lines about the project, the pool, the network and the image.

`adapter.py` asks the questions (`LxdEngine.setup_state`, `health`); these functions only read
the JSON documents it got back, by key and type, so an odd answer is a line that says so, never a
crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.engine.base import HealthLine


@dataclass(frozen=True)
class SetupState:
    """Whether a server is ready to launch instances, and what is missing if not."""

    version: str
    pools: tuple[str, ...]  # "name (driver)"
    root_pool: str  # the pool of the profiles' root disk; "" when they have none
    nic: str  # the profiles' NIC ("eth0 on lxdbr0"); "" when they have none

    @property
    def initialised(self) -> bool:
        return bool(self.pools and self.root_pool and self.nic)

    @property
    def missing(self) -> str:
        gaps = []
        if not self.pools:
            gaps.append("no storage pool")
        if not self.root_pool:
            gaps.append("no root disk in the profiles")
        if not self.nic:
            gaps.append("no network in the profiles")
        return ", ".join(gaps) or "nothing"


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (an odd answer reads as empty)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def pool_names(pools: Any) -> tuple[str, ...]:
    """`/1.0/storage-pools?recursion=1` -> ("default (btrfs)", ...)."""
    found = []
    for pool in _list(pools):
        pool = as_dict(pool)
        if isinstance(pool.get("name"), str):
            found.append(f"{pool['name']} ({pool.get('driver') or '?'})")
    return tuple(found)


def profile_devices(profiles: list[Any]) -> dict[str, dict[str, Any]]:
    """The devices the profiles give an instance, later profiles overriding earlier ones (as
    LXD applies them)."""
    devices: dict[str, dict[str, Any]] = {}
    for profile in profiles:
        for name, device in as_dict(as_dict(profile).get("devices")).items():
            if isinstance(name, str) and isinstance(device, dict):
                devices[name] = device
    return devices


def root_pool(devices: dict[str, dict[str, Any]]) -> str:
    for device in devices.values():
        if device.get("type") == "disk" and device.get("path") == "/":
            return str(device.get("pool") or "")
    return ""


def nic_of(devices: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(interface description, managed network name or "") of the profiles' first NIC."""
    for name in sorted(devices):
        device = devices[name]
        if device.get("type") != "nic":
            continue
        network = str(device.get("network") or "")
        parent = str(device.get("parent") or "")
        where = f"on {network}" if network else f"{device.get('nictype') or 'nic'} on {parent}"
        return f"{device.get('name') or name} {where}", network
    return "", ""


def setup_state(version: str, pools: Any, profiles: list[Any]) -> SetupState:
    devices = profile_devices(profiles)
    return SetupState(version, pool_names(pools), root_pool(devices), nic_of(devices)[0])


def network_detail(network: Any) -> str:
    """`/1.0/networks/NAME` -> "10.172.64.1/24, NAT on" (what a reader needs to know)."""
    config = as_dict(as_dict(network).get("config"))
    address = str(config.get("ipv4.address") or "no IPv4")
    nat = "NAT on" if str(config.get("ipv4.nat", "")).lower() == "true" else "no NAT"
    return f"{address}, {nat}"


def storage_line(state: SetupState) -> HealthLine:
    if not state.pools:
        return HealthLine(
            "storage", "fail", "no storage pool", "`labctl lxd-init` creates one (a dir pool)"
        )
    if not state.root_pool:
        return HealthLine(
            "storage",
            "fail",
            f"pools {', '.join(state.pools)}, but the profiles give instances no root disk",
            "Add one: `lxc profile device add default root disk path=/ pool=POOL`.",
        )
    return HealthLine("storage", "ok", f"root disk on {state.root_pool} ({', '.join(state.pools)})")


def network_line(state: SetupState, detail: str) -> HealthLine:
    if not state.nic:
        return HealthLine(
            "network",
            "fail",
            "the profiles give instances no network interface",
            "Add one: `lxc profile device add default eth0 nic network=lxdbr0 name=eth0` (or "
            "`labctl lxd-init` on a fresh LXD).",
        )
    return HealthLine("network", "ok", state.nic + (f" ({detail})" if detail else ""))


def remote_names(remotes_json: Any) -> set[str]:
    """`lxc remote list --format json` -> the remote names this client knows."""
    return {name for name in as_dict(remotes_json) if isinstance(name, str)}
