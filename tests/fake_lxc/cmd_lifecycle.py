"""launch / init / start / stop / restart / pause / delete, with LXD 5.0.2's texts (recorded in
tests/fixtures/lxd/calls.json) and its order: `Creating NAME` is printed before the daemon
answers, so a refused create still prints it."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Final

import yaml

from . import guest
from .context import Context, Target, key
from .errors import LxcError, member_unreachable
from .instances import (
    OPERATION_NOT_FOUND,
    busy,
    clustered,
    is_member_catching_up,
    lookup,
    new_instance,
    place,
    profiles_of,
    stall_if_member_down,
)
from .shapes import iso
from .state import Instance, Server

NAME_RE: Final = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$")
SIZE_RE: Final = re.compile(r"^\d+(\.\d+)?(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB|%)?$")
UNITS: Final = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


def bytes_of(size: str) -> int:
    number = re.match(r"^\d+(\.\d+)?", size)
    unit = size[number.end() :] if number else ""
    return int(float(number.group(0) if number else 0) * UNITS.get(unit or "B", 1))


def _body(ctx: Context) -> dict[str, Any]:
    """The InstancePut YAML that `lxc launch`/`init` read when stdin is not a terminal."""
    raw = b"" if os.isatty(0) else ctx.stdin.read()
    ctx.log["stdin"] = raw.decode(errors="replace")
    data = yaml.safe_load(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise LxcError("yaml: unmarshal errors: cannot unmarshal into api.InstancePut")  # [I]
    body: dict[str, Any] = {
        "config": {str(k): str(v) for k, v in (data.get("config") or {}).items()},
        "devices": data.get("devices") or {},
        "ephemeral": data.get("ephemeral"),
        "description": data.get("description"),
        "profiles": data.get("profiles"),
    }
    for item in ctx.args.values("config"):
        name, _, value = item.partition("=")
        body["config"][name] = value
    for item in ctx.args.values("device"):  # -d root,size=5GiB overrides a profile device key
        device, _, setting = item.partition(",")
        name, _, value = setting.partition("=")
        body["devices"].setdefault(device, {})[name] = value
    if ctx.args.has("no-profiles"):
        body["profiles"] = []
    elif ctx.args.values("profile"):
        body["profiles"] = ctx.args.values("profile")
    elif body["profiles"] is None:
        body["profiles"] = ["default"]
    body["ephemeral"] = bool(body["ephemeral"] or ctx.args.has("ephemeral"))
    return body


def cmd_create(ctx: Context) -> int:
    image_ref = ctx.args.positionals[0]
    name_ref = ctx.args.positionals[1] if len(ctx.args.positionals) > 1 else "lxt-random"
    target, name = ctx.target(name_ref)
    ctx.reach(target)
    body = _body(ctx)
    creating = f"Creating {name}\n"
    ctx.out(creating)
    wanted = ctx.args.value("target") or None
    with ctx.server(target) as server:
        location = _check_create(ctx, server, target, name, image_ref, body, wanted)
        image = server["images"][image_ref.split(":")[-1]]
        inst = new_instance(ctx, server, target, name, image, body, location)
        inst["creating_until"] = time.time() + ctx.settings.seconds("create_latency", name)
        server["instances"][key(target.project, name)] = inst
    ctx.sleep("create_latency", name)
    with ctx.server(target, write=False) as server:
        if is_member_catching_up(ctx, server, location):
            raise LxcError(OPERATION_NOT_FOUND)  # created, never started: the reply was lost
    if ctx.args.command == "launch":
        ctx.out(f"Starting {name}\n")
        start(ctx, target, name)
    return 0


def _check_create(
    ctx: Context,
    server: Server,
    target: Target,
    name: str,
    image_ref: str,
    body: dict[str, Any],
    wanted: str | None,
) -> str:
    if target.project not in server["projects"]:
        raise LxcError("Check if project has images: fetch project: Project not found")
    alias = image_ref.split(":")[-1]
    if alias not in server["images"] or ctx.settings.on("image_missing", alias):
        raise LxcError("Image not found")
    if ctx.args.has("vm") or ctx.args.value("type") == "virtual-machine":
        raise LxcError("Asked for a VM but image is of type container")
    profiles = profiles_of(server, target.project)
    for profile in body["profiles"]:
        if profile not in profiles:
            raise LxcError(f'Requested profile "{profile}" doesn\'t exist')
    if wanted is not None:
        _check_target(ctx, server, target, wanted)
    if not NAME_RE.match(name):
        raise LxcError(
            "Invalid instance name: Name can only contain alphanumeric and hyphen characters"
        )
    if key(target.project, name) in server["instances"]:
        raise LxcError(
            "Failed creating instance record: Add instance info to the database: "
            'This "instances" entry already exists'
        )
    memory = str(body["config"].get("limits.memory", ""))
    if memory and not SIZE_RE.match(memory):
        raise LxcError(f"Failed creating instance record: Invalid value: {memory}")
    _check_quota(server, target, body)
    return place(server, wanted)


def _check_target(ctx: Context, server: Server, target: Target, wanted: str) -> None:
    if not clustered(server):
        raise LxcError("Target only allowed when clustered")
    project = server["projects"][target.project].get("config", {})
    restricted = project.get("restricted") == "true"
    # server admins are exempt (LXD's CheckClusterTargetRestriction; seen on the real 3-member
    # cluster: labctl places each student's lab in their restricted project); clients that
    # joined with a restricted token are not
    if restricted and project.get("restricted.cluster.target") != "allow" and target.allowed:
        raise LxcError("This project doesn't allow cluster member targeting")
    if wanted not in server["members"]:
        raise LxcError("Cluster member not found")
    if ctx.settings.on("members_down", wanted):
        address = server["members"][wanted]["address"]
        raise member_unreachable(
            address, "Post", f"/1.0/instances?project={target.project}&target={wanted}"
        )


def _check_quota(server: Server, target: Target, body: dict[str, Any]) -> None:
    limits = server["projects"][target.project].get("config", {})
    siblings = [i for k, i in server["instances"].items() if k.startswith(f"{target.project}/")]
    if "limits.memory" in limits:
        used = sum(bytes_of(str(i["config"].get("limits.memory", "0"))) for i in siblings)
        wanted = bytes_of(str(body["config"].get("limits.memory", "0")))
        if used + wanted > bytes_of(limits["limits.memory"]):
            raise LxcError(
                "Failed checking if instance creation allowed: Reached maximum aggregate value "
                f'"{limits["limits.memory"]}" for "limits.memory" in project "{target.project}"'
            )
    if "limits.instances" in limits and len(siblings) >= int(limits["limits.instances"]):
        raise LxcError(f'Reached maximum number of instances in project "{target.project}"')


# -- start / stop -------------------------------------------------------------------------------
def start(ctx: Context, target: Target, name: str) -> None:
    stall_if_member_down(ctx, target, name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name, "start")
        if inst["status"] == "Running":
            raise LxcError("The instance is already running")
        frozen = inst["status"] == "Frozen"
    ctx.sleep("start_latency", name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name)
        if frozen:
            inst["status"] = "Running"
            return
        _boot(ctx, inst)


def _boot(ctx: Context, inst: Instance) -> None:
    import secrets

    now = time.time()
    first = inst["config"].pop("volatile.apply_template", None) == "create"
    inst.update(
        status="Running",
        started_at=now,
        last_used_at=iso(now),
        pid=1000 + secrets.randbelow(60000),
        host_name=f"veth{secrets.token_hex(4)}",
    )
    inst["config"].update(
        {
            "volatile.eth0.host_name": inst["host_name"],
            "volatile.idmap.current": inst["config"]["volatile.idmap.next"],
            "volatile.last_state.idmap": inst["config"]["volatile.idmap.next"],
            "volatile.last_state.power": "RUNNING",
        }
    )
    guest.reboot(inst)
    if first:  # the templates render and cloud-init runs the user-data once
        user_data = inst["config"].get("cloud-init.user-data") or inst["config"].get(
            "user.user-data", ""
        )
        guest.seed_files(inst, str(user_data))
        result = "error" if ctx.settings.on("cloud_init_error", inst["name"]) else "done"
        latency = ctx.settings.seconds("cloud_init_latency", inst["name"])
        inst["cloud_init"] = {"done_at": now + latency, "result": result}


def stop(ctx: Context, target: Target, name: str, op: str = "stop") -> None:
    stall_if_member_down(ctx, target, name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name, op)
        if inst["status"] == "Stopped":
            raise LxcError("The instance is already stopped")
    ctx.sleep("stop_latency", name)
    with ctx.server(target) as server:
        inst = lookup(ctx, server, target, name)
        inst.update(status="Stopped", pid=0, host_name="")
        inst["config"].pop("volatile.eth0.host_name", None)
        inst["config"]["volatile.last_state.power"] = "STOPPED"


def cmd_start(ctx: Context) -> int:
    for ref in ctx.args.positionals:
        target, name = ctx.target(ref)
        ctx.reach(target)
        start(ctx, target, name)
    return 0


def cmd_stop(ctx: Context) -> int:
    for ref in ctx.args.positionals:
        target, name = ctx.target(ref)
        ctx.reach(target)
        stop(ctx, target, name)
        if ctx.args.command == "restart":
            start(ctx, target, name)
    return 0


def cmd_pause(ctx: Context) -> int:
    for ref in ctx.args.positionals:
        target, name = ctx.target(ref)
        ctx.reach(target)
        stall_if_member_down(ctx, target, name)
        with ctx.server(target) as server:
            inst = lookup(ctx, server, target, name, "freeze")
            if inst["status"] != "Running":
                raise LxcError("The instance isn't running")  # [I]
            inst["status"] = "Frozen"
    return 0


def cmd_delete(ctx: Context) -> int:
    for ref in ctx.args.positionals:
        target, name = ctx.target(ref)
        ctx.reach(target)
        if "/" in name:
            from .cmd_snapshot import delete_snapshot

            delete_snapshot(ctx, target, *name.split("/", 1))
            continue
        with ctx.server(target, write=False) as server:
            if key(target.project, name) not in server["instances"]:
                raise LxcError(
                    f'Failed checking instance exists "{target.remote}:{name}": Instance not found'
                )
        stall_if_member_down(ctx, target, name)
        with ctx.server(target) as server:
            inst = lookup(ctx, server, target, name, "delete")
            if inst["status"] != "Stopped" and not ctx.args.has("force"):
                raise LxcError("The instance is currently running, stop it first or pass --force")
            del server["instances"][key(target.project, name)]
    return 0


__all__ = ["busy", "cmd_create", "cmd_delete", "cmd_pause", "cmd_start", "cmd_stop"]
