"""The instance table of a fake server: lookups, the checks every verb makes first (exists, busy,
member down), profiles expanded into config and devices, placement and addresses."""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any, Final

from .context import Context, Target, key
from .errors import LxcError, not_found
from .state import Instance, Server

MEMBER_DOWN: Final = "Missing event connection with target cluster member"
OPERATION_NOT_FOUND: Final = "Operation not found"  # a launch on a member catching up
IDMAP: Final = (
    '[{"Isuid":true,"Isgid":false,"Hostid":100000,"Nsid":0,"Maprange":10000001},'
    '{"Isuid":false,"Isgid":true,"Hostid":100000,"Nsid":0,"Maprange":10000001}]'
)


def busy(op: str) -> LxcError:
    return LxcError(
        f'Failed to create instance {op} operation: Instance is busy running a "create" operation'
    )


def clustered(server: Server) -> bool:
    return bool(server.get("members"))


def is_member_down(ctx: Context, server: Server, inst: Instance) -> bool:
    return clustered(server) and ctx.settings.on("members_down", str(inst["location"]))


def lookup(ctx: Context, server: Server, target: Target, name: str, op: str = "") -> Instance:
    """The instance, after the checks the daemon makes before an operation on it."""
    inst = server["instances"].get(key(target.project, name))
    if inst is None:
        raise not_found()
    if op and is_member_down(ctx, server, inst):
        raise LxcError(MEMBER_DOWN)  # callers stall first (stall_if_member_down), unlocked
    if op and (
        time.time() < float(inst.get("creating_until") or 0)
        or ctx.settings.on("busy_creating", name)
    ):
        raise busy(op)
    return inst


def stall_if_member_down(ctx: Context, target: Target, name: str) -> None:
    """A down member's instance: LXD waits for the member's event connection, then fails.
    A member that has just come back: no event connection yet, so it fails at once."""
    with ctx.server(target, write=False) as server:
        inst = server["instances"].get(key(target.project, name))
        down = inst is not None and is_member_down(ctx, server, inst)
        catching_up = inst is not None and is_member_catching_up(ctx, server, inst["location"])
    if down:
        ctx.sleep("member_down_stall")
        raise LxcError(MEMBER_DOWN)
    if catching_up:
        raise LxcError(MEMBER_DOWN)


def is_member_catching_up(ctx: Context, server: Server, member: str | None) -> bool:
    until = ctx.settings.get("member_catching_up_until", str(member)) if member else None
    return clustered(server) and isinstance(until, int | float) and time.time() < until


def profiles_of(server: Server, project: str) -> dict[str, dict[str, Any]]:
    """A project without its own profiles (features.profiles=false) uses the default's."""
    config = server["projects"].get(project, {}).get("config", {})
    owner = project if config.get("features.profiles", "true") == "true" else "default"
    prefix = f"{owner}/"
    return {k[len(prefix) :]: v for k, v in server["profiles"].items() if k.startswith(prefix)}


def expanded(server: Server, inst: Instance) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expanded_config, expanded_devices): the profiles in order, then the instance's own."""
    profiles = profiles_of(server, inst["project"])
    config: dict[str, Any] = {}
    devices: dict[str, Any] = {}
    for name in inst.get("profiles") or []:
        profile = profiles.get(name, {})
        config.update(profile.get("config") or {})
        devices.update(profile.get("devices") or {})
    config.update(inst["config"])
    devices.update(inst.get("devices") or {})
    return config, devices


def has_address(ctx: Context, inst: Instance) -> bool:
    """DHCP takes a moment after a start: until then eth0 has only its link-local address."""
    started = float(inst.get("started_at") or 0)
    return time.time() >= started + ctx.settings.seconds("address_latency", inst["name"])


def place(server: Server, target: str | None) -> str:
    """--target, or the member with the fewest instances (LXD 5.0's scheduler)."""
    members = list(server.get("members") or {})
    if not members:
        return "none"
    if target:
        return target
    counts = {m: 0 for m in members}
    for inst in server["instances"].values():
        if inst["location"] in counts:
            counts[inst["location"]] += 1
    return min(members, key=lambda m: (counts[m], members.index(m)))


def allocate_ip(ctx: Context, server: Server) -> str:
    """127.81.<server>.<n> by default: loopback, so a stray probe never leaves the machine."""
    pool = ipaddress.ip_network(str(ctx.settings.get("ip_pool")), strict=False)
    number = int(server["ip_next"])
    server["ip_next"] = number + 1
    address = pool.network_address + int(server["index"]) * 256 + number
    if number > 254 or address not in pool:
        raise LxcError("fake lxc: IP pool exhausted", 2)
    return str(address)


def new_instance(
    ctx: Context,
    server: Server,
    target: Target,
    name: str,
    image: dict[str, Any],
    body: dict[str, Any],
    location: str,
) -> Instance:
    from .shapes import NEVER_USED, iso

    hwaddr = "00:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
    config = {f"image.{k}": v for k, v in image.get("properties", {}).items()}
    config.update(body.get("config") or {})
    config.update(
        {
            "volatile.apply_template": "create",
            "volatile.base_image": image["fingerprint"],
            "volatile.cloud-init.instance-id": _uuid(),
            "volatile.eth0.hwaddr": hwaddr,
            "volatile.idmap.base": "0",
            "volatile.idmap.next": IDMAP,
            "volatile.last_state.idmap": "[]",
            "volatile.uuid": _uuid(),
        }
    )
    return {
        "name": name,
        "project": target.project,
        "status": "Stopped",
        "location": location,
        "config": config,
        "devices": body.get("devices") or {},
        "profiles": body["profiles"],
        "ephemeral": bool(body.get("ephemeral")),
        "description": str(body.get("description") or ""),
        "created_at": iso(time.time()),
        "last_used_at": NEVER_USED,
        "ipv4": allocate_ip(ctx, server),
        "hwaddr": hwaddr,
        "host_name": "",
        "boot": 0,
        "files": {},
        "snapshots": [],
        "pending": [],
    }


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())
