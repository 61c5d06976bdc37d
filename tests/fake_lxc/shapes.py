"""LXD 5.0.2's output shapes, as recorded from the real daemon (tests/fixtures/lxd): the
instance JSON of `lxc list --format json` (Go's field order, maps sorted, compact, HTML
characters escaped as Go's encoder does), `lxc info` text and the other lists labctl reads."""

from __future__ import annotations

import json
import time
from typing import Any, Final

Instance = dict[str, Any]

STATUS_CODES: Final = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 112}
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
NEVER_USED: Final = "1970-01-01T00:00:00Z"
MEMORY_USAGE: Final = 62 * 1024 * 1024  # [fake] an app container after cloud-init (60-80 MiB)
COUNTERS: Final = (
    "bytes_received",
    "bytes_sent",
    "packets_received",
    "packets_sent",
    "errors_received",
    "errors_sent",
    "packets_dropped_outbound",
    "packets_dropped_inbound",
)


def go_json(value: Any) -> str:
    """json.Marshal's bytes: compact, and <, >, & escaped inside strings."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text + "\n"


def iso(stamp: float) -> str:
    micro = f"{stamp % 1:.9f}"[2:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{micro}Z"


def link_local(hwaddr: str) -> str:
    """The EUI-64 address the kernel derives from the MAC (fe80::216:3eff:fe..)."""
    octets = [int(part, 16) for part in hwaddr.split(":")]
    octets[0] ^= 0x02
    words = [
        octets[0] << 8 | octets[1],
        octets[2] << 8 | 0xFF,
        0xFE << 8 | octets[3],
        octets[4] << 8 | octets[5],
    ]
    return "fe80::" + ":".join(f"{w:x}" for w in words)


def _address(family: str, address: str, netmask: str, scope: str) -> dict[str, str]:
    return {"family": family, "address": address, "netmask": netmask, "scope": scope}


def _nic(
    addresses: list[dict[str, str]], hwaddr: str, host: str, mtu: int, kind: str
) -> dict[str, Any]:
    return {
        "addresses": addresses,
        "counters": dict.fromkeys(COUNTERS, 0),
        "hwaddr": hwaddr,
        "host_name": host,
        "mtu": mtu,
        "state": "up",
        "type": kind,
    }


def state(inst: Instance, has_address: bool) -> dict[str, Any]:
    status = inst["status"]
    live = status in ("Running", "Frozen")
    network = None
    if live:
        eth0 = [_address("inet6", link_local(inst["hwaddr"]), "64", "link")]
        if has_address and inst.get("ipv4"):
            eth0.insert(0, _address("inet", inst["ipv4"], "24", "global"))
        loopback = [
            _address("inet", "127.0.0.1", "8", "local"),
            _address("inet6", "::1", "128", "local"),
        ]
        network = {
            "eth0": _nic(eth0, inst["hwaddr"], inst["host_name"], 1500, "broadcast"),
            "lo": _nic(loopback, "", "", 65536, "loopback"),
        }
    usage = MEMORY_USAGE if live else 0
    return {
        "status": status,
        "status_code": STATUS_CODES[status],
        "disk": {},
        "memory": {"usage": usage, "usage_peak": usage * 2, "swap_usage": 0, "swap_usage_peak": 0},
        "network": network,
        "pid": int(inst.get("pid") or 0) if live else 0,
        "processes": 9 if live else 0,
        "cpu": {"usage": 2_000_000_000 if live else 0},
    }


def snapshot(
    snap: dict[str, Any], expanded: tuple[dict[str, Any], dict[str, Any]]
) -> dict[str, Any]:
    return {
        "expires_at": ZERO_TIME,
        "architecture": "x86_64",
        "config": dict(sorted(snap["config"].items())),
        "created_at": snap["created_at"],
        "devices": snap.get("devices") or {},
        "ephemeral": False,
        "expanded_config": dict(sorted(expanded[0].items())),
        "expanded_devices": dict(sorted(expanded[1].items())),
        "last_used_at": ZERO_TIME,
        "name": snap["name"],
        "profiles": list(snap.get("profiles") or []),
        "stateful": False,
        "size": -1,
    }


def instance(
    inst: Instance,
    expanded: tuple[dict[str, Any], dict[str, Any]],
    has_address: bool,
    member_down: bool,
) -> dict[str, Any]:
    """One element of `lxc list --format json` (recursion=2, InstanceFull)."""
    if member_down:  # what the cluster knows without the member: no config, no state
        return {
            "architecture": "",
            "config": None,
            "devices": None,
            "ephemeral": False,
            "profiles": None,
            "stateful": False,
            "description": "",
            "created_at": ZERO_TIME,
            "name": inst["name"],
            "status": "Error",
            "status_code": 112,
            "last_used_at": ZERO_TIME,
            "location": inst["location"],
            "type": "",
            "project": inst["project"],
            "backups": None,
            "state": None,
            "snapshots": None,
        }
    snaps = [snapshot(s, expanded) for s in inst.get("snapshots") or []]
    return {
        "architecture": "x86_64",
        "config": dict(sorted(inst["config"].items())),
        "devices": dict(sorted((inst.get("devices") or {}).items())),
        "ephemeral": bool(inst.get("ephemeral")),
        "profiles": list(inst.get("profiles") or []),
        "stateful": False,
        "description": inst.get("description", ""),
        "created_at": inst["created_at"],
        "expanded_config": dict(sorted(expanded[0].items())),
        "expanded_devices": dict(sorted(expanded[1].items())),
        "name": inst["name"],
        "status": inst["status"],
        "status_code": STATUS_CODES[inst["status"]],
        "last_used_at": inst.get("last_used_at") or NEVER_USED,
        "location": inst["location"],
        "type": "container",
        "project": inst["project"],
        "backups": None,
        "state": state(inst, has_address),
        "snapshots": snaps or None,  # null, not [], until the first snapshot
    }


def info_text(inst: Instance, has_address: bool, clustered: bool) -> str:
    """`lxc info NAME` (the parts labctl could read; counters are synthetic)."""
    lines = [
        f"Name: {inst['name']}",
        f"Status: {inst['status'].upper()}",
        "Type: container",
        "Architecture: x86_64",
    ]
    if clustered:
        lines.append(f"Location: {inst['location']}")
    live = inst["status"] in ("Running", "Frozen")
    if live:
        lines.append(f"PID: {inst.get('pid') or 0}")
    lines.append(f"Created: {_minute(inst['created_at'])}")
    if inst.get("last_used_at", NEVER_USED) != NEVER_USED:
        lines.append(f"Last Used: {_minute(inst['last_used_at'])}")
    if live:
        addresses = (
            [f"        inet:  {inst['ipv4']}/24 (global)"]
            if has_address and inst.get("ipv4")
            else []
        )
        addresses.append(f"        inet6: {link_local(inst['hwaddr'])}/64 (link)")
        lines += [
            "",
            "Resources:",
            "  Processes: 9",
            "  CPU usage:",
            "    CPU usage (in seconds): 2",
            "  Memory usage:",
            "    Memory (current): 62.00MiB",
            "    Memory (peak): 124.00MiB",
            "  Network usage:",
            "    eth0:",
            "      Type: broadcast",
            "      State: UP",
            f"      Host interface: {inst['host_name']}",
            f"      MAC address: {inst['hwaddr']}",
            "      MTU: 1500",
            "      IP addresses:",
            *addresses,
        ]
    snaps = inst.get("snapshots") or []
    if snaps:
        rule = "+-------+----------------------+------------+----------+"
        lines += [
            "",
            "Snapshots:",
            rule,
            "| NAME  |       TAKEN AT       | EXPIRES AT | STATEFUL |",
            rule,
        ]
        lines += [
            f"| {s['name']:<5} | {_minute(s['created_at'])} |            | NO       |"
            for s in snaps
        ]
        lines.append(rule)
    return "\n".join(lines) + "\n"


def _minute(stamp: str) -> str:
    return f"{stamp[:4]}/{stamp[5:7]}/{stamp[8:10]} {stamp[11:16]} UTC"


def cluster_member(
    name: str, address: str, roles: list[str], down_for: float | None
) -> dict[str, Any]:
    online = down_for is None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - (down_for or 0)))
    return {
        "roles": roles,
        "failure_domain": "default",
        "description": "",
        "config": {},
        "groups": ["default"],
        "server_name": name,
        "url": f"https://{address}",
        "database": any(role.startswith("database") for role in roles),
        "status": "Online" if online else "Offline",
        "message": "Fully operational"
        if online
        else f"No heartbeat for {down_for:.9f}s ({stamp}.000000000 +0000 UTC)",
        "architecture": "x86_64",
    }


def member_roles(index: int, size: int) -> list[str]:
    """The first member leads; up to three are voters, a second of two stands by."""
    if index == 0:
        return ["database-leader", "database"]
    if size == 2 or index >= 3:
        return ["database-standby"]
    return ["database"]
