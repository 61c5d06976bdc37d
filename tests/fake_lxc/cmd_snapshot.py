"""snapshot / restore / delete NAME/SNAP. LXD snapshots a running container as it is (a `dir`
pool freezes it during the copy, which the fake does not model); `restore` of a running one
stops it, rolls back and starts it again by itself."""

from __future__ import annotations

import copy
import time

from . import guest
from .context import Context, Target
from .errors import LxcError
from .instances import lookup, stall_if_member_down
from .shapes import iso


def cmd_snapshot(ctx: Context) -> int:
    target, name = ctx.target(ctx.args.positionals[0])
    ctx.reach(target)
    stall_if_member_down(ctx, target, name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name, "snapshot")
        snaps = inst.setdefault("snapshots", [])
        snap_name = (
            ctx.args.positionals[1] if len(ctx.args.positionals) > 1 else f"snap{len(snaps)}"
        )
        existing = [s for s in snaps if s["name"] == snap_name]
        if existing and not ctx.args.has("reuse"):
            raise LxcError(
                f'Failed creating instance snapshot record "{snap_name}": Add snapshot info to '
                'the database: This "instances_snapshots" entry already exists'
            )
        for old in existing:
            snaps.remove(old)
    ctx.sleep("snapshot_latency", name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name)
        inst["snapshots"].append(
            {
                "name": snap_name,
                "created_at": iso(time.time()),
                "config": copy.deepcopy(inst["config"]),
                "devices": copy.deepcopy(inst.get("devices") or {}),
                "profiles": list(inst.get("profiles") or []),
                "files": dict(inst.get("files") or {}),
                "cloud_init": dict(inst.get("cloud_init") or {}),
            }
        )
    return 0


def cmd_restore(ctx: Context) -> int:
    target, name = ctx.target(ctx.args.positionals[0])
    snap_name = ctx.args.positionals[1]
    ctx.reach(target)
    stall_if_member_down(ctx, target, name)
    with ctx.server(target, write=False) as server:
        inst = lookup(ctx, server, target, name, "restore")
        if not any(s["name"] == snap_name for s in inst.get("snapshots") or []):
            raise LxcError(f"Snapshot {name}/{snap_name} does not exist")
    ctx.sleep("restore_latency", name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name)
        snap = next(s for s in inst["snapshots"] if s["name"] == snap_name)
        inst["config"] = copy.deepcopy(snap["config"])
        inst["devices"] = copy.deepcopy(snap["devices"])
        inst["profiles"] = list(snap["profiles"])
        inst["files"] = dict(snap["files"])
        inst["cloud_init"] = dict(snap["cloud_init"])
        if inst["status"] != "Stopped":  # killed, restored, started again: a new boot
            guest.reboot(inst)
            inst["started_at"] = time.time()
            inst["status"] = "Running"
    return 0


def delete_snapshot(ctx: Context, target: Target, name: str, snap_name: str) -> None:
    with ctx.server(target) as server:
        try:
            inst = lookup(ctx, server, target, name)
        except LxcError:
            raise LxcError(
                f'Failed checking instance snapshot exists "{target.remote}:{name}/{snap_name}": '
                f'Failed to fetch snapshot "{snap_name}" of instance "{name}" in project '
                f'"{target.project}": Instance not found'  # [I] the recorded text had a live instance
            ) from None
        snaps = inst.get("snapshots") or []
        if not any(s["name"] == snap_name for s in snaps):
            raise LxcError(
                f'Failed checking instance snapshot exists "{target.remote}:{name}/{snap_name}": '
                f'Failed to fetch snapshot "{snap_name}" of instance "{name}" in project '
                f'"{target.project}": InstanceSnapshot not found'
            )
        inst["snapshots"] = [s for s in snaps if s["name"] != snap_name]
