"""snapshot / restore (docs/engines/multipass.md)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from .cli import Parsed
from .context import Context
from .errors import failed, unhandled, usage
from .model import valid_name
from .spinner import Spinner
from .state import Daemon, Instance

UNSUPPORTED = "The snapshots feature is not implemented on this backend."
FORMAT_ERROR = (
    "Invalid format. Please specify the instance to restore and snapshot to use in the form "
    "<instance>.<snapshot>."
)


def _instance(ctx: Context, daemon: Daemon, command: str, name: str) -> Instance:
    if ctx.settings.flag("snapshots_unsupported", name):
        raise failed(command, UNSUPPORTED)
    inst = daemon.get(name)
    if inst is None:
        raise failed(command, f'instance "{name}" does not exist')
    if inst["state"] == "Deleted":
        raise failed(command, f'instance "{name}" is deleted')  # [I]
    return inst


def take_snapshot(ctx: Context, inst: Instance, name: str | None, comment: str) -> str:
    snaps: dict[str, Any] = inst.setdefault("snapshots", {})
    counter = int(inst.get("snapshot_counter", 0))
    sname = name or f"snapshot{counter + 1}"
    if not valid_name(sname):
        raise failed("snapshot", f'Invalid snapshot name: "{sname}".')
    if sname in snaps:
        raise failed("snapshot", f"Snapshot already exists: {inst['name']}.{sname}")
    parent = str(inst.get("head_snapshot", ""))
    now = dt.datetime.now(dt.UTC)
    snap: dict[str, Any] = {
        "name": sname,
        "comment": comment,
        "parent": parent,
        "children": [],
        "created": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "cpus": inst["cpus"],
        "memory": inst["memory"],
        "disk": inst["disk"],
        "mounts": dict(inst.get("mounts") or {}),
    }
    ctx.backend.snapshot(inst, snap)
    if parent in snaps:
        snaps[parent]["children"].append(sname)
    snaps[sname] = snap
    inst["snapshot_counter"] = counter + 1
    inst["head_snapshot"] = sname
    return sname


def cmd_snapshot(ctx: Context, p: Parsed) -> int:
    if not p.positionals:
        raise usage("Need the name of an instance to snapshot.")
    if len(p.positionals) > 1:
        raise usage("Too many arguments supplied")
    name = p.positionals[0]
    ctx.connect("snapshot")
    spinner = Spinner(ctx.stdout)
    spinner.start("Taking snapshot")
    try:
        with ctx.store.transaction() as daemon:
            inst = _instance(ctx, daemon, "snapshot", name)
            if inst["state"] != "Stopped":
                raise failed("snapshot", "Multipass can only take snapshots of stopped instances.")
            sname = take_snapshot(ctx, inst, p.value("name"), p.value("comment") or "")
    finally:
        spinner.stop()
    ctx.out(f"Snapshot taken: {name}.{sname}\n")
    return 0


def cmd_restore(ctx: Context, p: Parsed) -> int:
    if len(p.positionals) != 1 or "." not in p.positionals[0]:
        raise usage(FORMAT_ERROR)
    name, _, sname = p.positionals[0].partition(".")
    if not name or not sname:
        raise usage(FORMAT_ERROR)
    ctx.connect("restore")
    with ctx.store.transaction(write=False) as daemon:
        inst = _instance(ctx, daemon, "restore", name)
        if inst["state"] != "Stopped":
            raise failed("restore", "Multipass can only restore snapshots of stopped instances.")
        if sname not in (inst.get("snapshots") or {}):
            raise failed("restore", f"No such snapshot: {name}.{sname}")
    keep_current = False
    if not p.is_set("destructive"):
        if not sys.stdin.isatty():
            raise unhandled(
                "Unable to query client for confirmation. Use '--destructive' to automatically "
                "discard current machine state."
            )
        # [fake simplification] interactive callers always get the safety snapshot
        keep_current = True
    spinner = Spinner(ctx.stdout)
    spinner.start("Restoring snapshot")
    with ctx.store.transaction() as daemon:
        inst = daemon.instances[name]
        if keep_current:
            take_snapshot(ctx, inst, None, f"Before restoring {sname}")
        snap = inst["snapshots"][sname]
        inst.update(cpus=snap["cpus"], memory=snap["memory"], disk=snap["disk"])
        inst["mounts"] = dict(snap.get("mounts") or {})
        ctx.backend.restore(inst, snap)
        inst["head_snapshot"] = sname
    spinner.stop()
    ctx.out(f"Snapshot restored: {name}.{sname}\n")
    return 0
