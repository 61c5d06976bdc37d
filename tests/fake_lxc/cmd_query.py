"""list / info / version / cluster list / image, storage and network list (JSON as recorded).

`lxc list` filters as lxc 5.0.2's shouldShow: `key=value` on the expanded config (the value is
an anchored regular expression unless it has ^ or $), the shorthands `status=`, `type=`,
`location=` (case-insensitive), and a bare word as a regular expression searched in the name.
An instance whose member is down has no config in the listing, so a config filter drops it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from . import shapes
from .context import Context, Target
from .errors import LxcError
from .instances import clustered, expanded, has_address, is_member_down
from .state import Server

SHORTHANDS = ("status", "type", "location", "architecture")


def cmd_list(ctx: Context) -> int:
    refs = [p for p in ctx.args.positionals if p.endswith(":") or ":" in p.split("=")[0]]
    target, _ = ctx.target(refs[0] if refs else "")
    filters = [p for p in ctx.args.positionals if p not in refs]
    ctx.reach(target)
    ctx.sleep("list_latency")
    rows = []
    with ctx.server(target, write=False) as server:
        for inst in server["instances"].values():
            if inst["project"] != target.project and not ctx.args.has("all-projects"):
                continue
            down = is_member_down(ctx, server, inst)
            row = shapes.instance(inst, expanded(server, inst), has_address(ctx, inst), down)
            if all(_matches(f, row) for f in filters):
                rows.append(row)
    rows.sort(key=lambda r: (r["project"], r["name"]))
    fmt = ctx.args.value("format", "table")
    if fmt == "json":
        ctx.out(shapes.go_json(rows))
    elif fmt in ("csv", "table", "compact"):  # [fake] name,state,ipv4 only
        for row in rows:
            address = _ipv4(row)
            ctx.out(f"{row['name']},{row['status'].upper()},{address}\n")
    else:
        raise LxcError(f'Invalid format "{fmt}"')
    return 0


def _ipv4(row: dict[str, Any]) -> str:
    network = (row.get("state") or {}).get("network") or {}
    for address in (network.get("eth0") or {}).get("addresses") or []:
        if address["family"] == "inet":
            return f"{address['address']} (eth0)"
    return ""


def _matches(expression: str, row: dict[str, Any]) -> bool:
    if "=" not in expression:
        return re.search(expression, row["name"]) is not None
    name, _, value = expression.partition("=")
    if name in SHORTHANDS:
        return str(row.get(name, "")).lower() == value.lower()
    pattern = value if ("^" in value or "$" in value) else f"^{value}$"
    config = row.get("expanded_config") or {}
    try:
        return name in config and re.search(pattern, str(config[name])) is not None
    except re.error:
        return config.get(name) == value


def cmd_info(ctx: Context) -> int:
    from .instances import lookup, stall_if_member_down

    if not ctx.args.positionals or ctx.args.positionals[0].endswith(":"):
        target, _ = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
        ctx.reach(target)
        with ctx.server(target, write=False) as server:
            ctx.out(_server_info(ctx, server, target))
        return 0
    target, name = ctx.target(ctx.args.positionals[0])
    ctx.reach(target)
    stall_if_member_down(ctx, target, name)
    ctx.sleep("list_latency")
    with ctx.server(target, write=False) as server:
        inst = lookup(ctx, server, target, name)
        ctx.out(shapes.info_text(inst, has_address(ctx, inst), clustered(server)))
    return 0


def _server_info(ctx: Context, server: Server, target: Target) -> str:
    """A reduced `lxc info` (the keys a doctor reads) [fake: the real one lists ~300 API
    extensions, the certificate, kernel and LXC features]."""
    name = next(iter(server.get("members") or {}), "vm")
    return (
        'config:\n  images.auto_update_interval: "0"\napi_extensions:\n- clustering\n'
        '- projects\n- instances\n- cloud_init\napi_status: stable\napi_version: "1.0"\n'
        "auth: trusted\npublic: false\nenvironment:\n  driver: lxc\n  driver_version: 5.0.2\n"
        f"  firewall: xtables\n  project: {target.project}\n  server: lxd\n"
        f"  server_clustered: {str(clustered(server)).lower()}\n  server_name: {name}\n"
        f"  server_version: {ctx.settings.get('version')}\n  storage: btrfs\n"
        '  storage_supported_drivers:\n  - name: btrfs\n    version: "6.2"\n    remote: false\n'
        '  - name: dir\n    version: "1"\n    remote: false\n'
    )


def cmd_version(ctx: Context) -> int:
    version = str(ctx.settings.get("version"))
    target, _ = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
    try:
        ctx.reach(target)
        server_version = version
    except LxcError:
        server_version = "unreachable"
    ctx.out(f"Client version: {version}\nServer version: {server_version}\n")
    return 0


def cmd_cluster_list(ctx: Context) -> int:
    target, _ = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
    ctx.reach(target)
    with ctx.server(target, write=False) as server:
        members = dict(server.get("members") or {})
    if not members:
        raise LxcError("LXD server isn't part of a cluster")  # [I]
    ctx.out(shapes.go_json(member_rows(ctx, members)))
    return 0


def member_rows(ctx: Context, members: dict[str, Any]) -> list[dict[str, Any]]:
    """The members as `cluster list --format json` and `/1.0/cluster/members?recursion=1`
    show them: a down one stays Online until `member_offline_after` has passed."""
    rows = []
    after = ctx.settings.seconds("member_offline_after")
    for index, (name, member) in enumerate(members.items()):
        down_for = None
        since = member.get("down_since")
        if ctx.settings.on("members_down", name) and since is not None:
            elapsed = time.time() - float(since)
            down_for = elapsed if elapsed >= after else None
        rows.append(
            shapes.cluster_member(
                name, member["address"], shapes.member_roles(index, len(members)), down_for
            )
        )
    return rows


def cmd_resource_list(ctx: Context) -> int:
    """image / storage / network list: the recorded shapes with this server's names."""
    target, _ = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
    ctx.reach(target)
    kind = ctx.args.command.split()[0]
    with ctx.server(target, write=False) as server:
        location = ["none"] if not clustered(server) else list(server["members"])
        if kind == "image":
            rows: list[dict[str, Any]] = [
                {
                    "auto_update": False,
                    "properties": image["properties"],
                    "public": False,
                    "expires_at": "1970-01-01T00:00:00Z",
                    "profiles": ["default"],
                    "aliases": [{"name": alias, "description": ""}],
                    "architecture": "x86_64",
                    "cached": False,
                    "filename": "rootfs.tar.gz",
                    "fingerprint": image["fingerprint"],
                    "size": 233961126,
                    "type": "container",
                    "created_at": shapes.NEVER_USED,
                    "last_used_at": shapes.ZERO_TIME,
                    "uploaded_at": shapes.NEVER_USED,
                }
                for alias, image in server["images"].items()
            ]
        elif kind == "storage":
            rows = [
                {
                    "config": {"size": "12GiB"},
                    "description": "",
                    "name": "default",
                    "driver": "btrfs",
                    "used_by": [],
                    "status": "Created",
                    "locations": location,
                }
            ]
        else:
            rows = [
                {
                    "config": {
                        "ipv4.address": "10.252.0.1/24",
                        "ipv4.nat": "false",
                        "ipv6.address": "none",
                    },
                    "description": "",
                    "name": "lxdbr0",
                    "type": "bridge",
                    "used_by": [],
                    "managed": True,
                    "status": "Created",
                    "locations": location,
                }
            ]
    ctx.out(shapes.go_json(rows))
    return 0
