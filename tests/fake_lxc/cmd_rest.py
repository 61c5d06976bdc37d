"""`lxc query [REMOTE:]PATH`: a GET of LXD's REST API, the answer re-encoded as `lxc query`
prints it (Go's MarshalIndent with tabs: keys sorted, `<>&` escaped, then a blank line), as
recorded (`query-*` and `fresh-*` in calls.json). The endpoints labctl reads:

/1.0 (the recorded server document, with this server's version and cluster facts),
/1.0/projects/NAME, /1.0/storage-pools?recursion=1, /1.0/profiles/NAME, /1.0/networks/NAME,
/1.0/images/aliases/NAME, /1.0/cluster/members?recursion=1, and what a member has:
/1.0/resources?target=MEMBER and /1.0/storage-pools/NAME/resources?target=MEMBER (the
`member_resources` knob; a member that is down answers as it does to a launch there). `--project` is refused as the real client refuses it; a project-scoped
path takes `?project=`. A server made by `FakeLxc.make_uninitialised` has no pool, no network
and a default profile without devices, as a daemon nobody ran `lxd init` on.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from .cmd_admin import rest_operations, rest_write
from .cmd_query import member_rows
from .context import Context
from .errors import LxcError, member_unreachable
from .instances import clustered, profiles_of
from .recordings import calls
from .state import Server

#: [I] for a path labctl never asks for, what an unknown route answers
NOT_FOUND: Final = "not found"


def go_indent(value: Any) -> str:
    """`lxc query`'s output: MarshalIndent(value, "", "\\t") of a re-decoded document."""
    text = json.dumps(value, indent="\t", sort_keys=True, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text + "\n\n"


def cmd_query(ctx: Context) -> int:
    if ctx.args.has("project"):
        raise LxcError("--project cannot be used with the query command")
    ref = ctx.args.positionals[0]
    remote, _, path = ref.rpartition(":") if ":" in ref else ("", "", ref)
    target, _ = ctx.target(f"{remote}:" if remote else "")
    ctx.reach(target)
    url = urlsplit(path)
    project = (parse_qs(url.query).get("project") or ["default"])[0]
    parts = [unquote(p) for p in url.path.strip("/").split("/")]
    member = (parse_qs(url.query).get("target") or [""])[0]
    method = ctx.args.value("request", "GET").upper()
    if method != "GET":
        with ctx.server(target, write=True) as server:
            written = rest_write(server, method, parts, ctx.args.value("data"))
        if written is not None:
            ctx.out(go_indent(written))
        return 0
    with ctx.server(target, write=False) as server:
        if parts == ["1.0", "operations"]:
            answer = rest_operations(server)
        elif parts[:2] == ["1.0", "resources"] or parts[-1:] == ["resources"]:
            answer = _resources(ctx, server, parts, member, path)
        else:
            answer = _answer(ctx, server, parts, project, "recursion=1" in url.query)
    ctx.out(go_indent(answer))
    return 0


def _answer(ctx: Context, server: Server, parts: list[str], project: str, full: bool) -> Any:
    if parts == ["1.0"]:
        return _server_document(ctx, server)
    if len(parts) == 3 and parts[1] == "projects":
        if parts[2] not in server["projects"]:
            raise LxcError("Project not found")
        found = server["projects"][parts[2]]
        used = [
            f"/1.0/profiles/{k.split('/', 1)[1]}"
            for k in server["profiles"]
            if k.startswith(f"{parts[2]}/")
        ]
        return {
            "config": found.get("config") or {},
            "description": found.get("description") or "",
            "name": parts[2],
            "used_by": used,
        }
    if parts == ["1.0", "cluster", "members"]:
        if not clustered(server):
            raise LxcError("Server isn't part of a cluster")  # [I] labctl asks /1.0 first
        rows = member_rows(ctx, dict(server["members"]))
        return rows if full else [f"/1.0/cluster/members/{r['server_name']}" for r in rows]
    if parts == ["1.0", "storage-pools"]:
        pools = pools_of(server)
        return pools if full else [f"/1.0/storage-pools/{p['name']}" for p in pools]
    if len(parts) == 3 and parts[1] == "profiles":
        profile = profiles_of(server, project).get(parts[2])  # the default's, if not its own
        if profile is None:
            raise LxcError("Fetch profile: Profile not found")
        return {
            "config": profile.get("config") or {},
            "description": profile.get("description") or "",
            "devices": profile.get("devices") or {},
            "name": parts[2],
            "used_by": [],
        }
    if len(parts) == 3 and parts[1] == "networks":
        network = networks_of(server).get(parts[2])
        if network is None:
            raise LxcError("Network not found")  # [I] not recorded
        return {
            "config": network,
            "description": "",
            "locations": ["none"],
            "managed": True,
            "name": parts[2],
            "status": "Created",
            "type": "bridge",
            "used_by": [],
        }
    if len(parts) == 4 and parts[1:3] == ["images", "aliases"]:
        image = server["images"].get(parts[3])
        if image is None or ctx.settings.on("image_missing", parts[3]):
            raise LxcError("Image alias not found")
        return {
            "description": "",
            "name": parts[3],
            "target": image["fingerprint"],
            "type": "container",
        }
    raise LxcError(NOT_FOUND)


# What a member has when the `member_resources` knob does not say (bytes; LXD measures these on
# the member: CPU threads, memory, and the space of the storage pool on it)
DEFAULT_RESOURCES: Final = {
    "cpus": 4,
    "memory_total": 16 * 1024**3,
    "memory_used": 2 * 1024**3,
    "pool_total": 100 * 1024**3,
    "pool_used": 10 * 1024**3,
}


def _resources(ctx: Context, server: Server, parts: list[str], member: str, path: str) -> Any:
    """/1.0/resources and /1.0/storage-pools/NAME/resources, measured on `member`."""
    members = dict(server.get("members") or {})
    if member and member not in members:
        raise LxcError(f"Failed to get address of cluster member: Member {member!r} not found")
    if member and ctx.settings.on("members_down", member):
        raise member_unreachable(members[member]["address"], "Get", "/" + path.lstrip("/"))
    figures = DEFAULT_RESOURCES | dict(ctx.settings.get("member_resources", member or "local"))
    if parts == ["1.0", "resources"]:
        return {  # the parts labctl reads, in the recorded shape; the rest of it left out
            "cpu": {"architecture": "x86_64", "sockets": [], "total": figures["cpus"]},
            "memory": {
                "hugepages_size": 2097152,
                "hugepages_total": 0,
                "hugepages_used": 0,
                "nodes": [],
                "total": figures["memory_total"],
                "used": figures["memory_used"],
            },
        }
    if len(parts) == 4 and parts[1] == "storage-pools":
        if parts[2] not in {p["name"] for p in pools_of(server)}:
            raise LxcError("Storage pool not found")
        return {
            "inodes": {"total": 0, "used": 0},
            "space": {"total": figures["pool_total"], "used": figures["pool_used"]},
        }
    raise LxcError(NOT_FOUND)


def _server_document(ctx: Context, server: Server) -> Any:
    document = json.loads(calls()["query-server"]["stdout"])
    environment = document["environment"]
    environment["server_version"] = str(ctx.settings.get("version"))
    environment["server_clustered"] = clustered(server)
    members = list(server.get("members") or {})
    environment["server_name"] = members[0] if members else environment["server_name"]
    if server.get("address"):  # listening on the network: core.https_address is set
        document["config"]["core.https_address"] = server["address"]
        environment["addresses"] = [server["address"]]
    return document


def pools_of(server: Server) -> list[dict[str, Any]]:
    if server.get("uninitialised"):
        return []
    if "pools" in server:  # set up by the fake `lxd init --preseed`
        return [
            pool | {"description": "", "locations": ["none"], "status": "Created", "used_by": []}
            for pool in server["pools"]
        ]
    return [
        {
            "config": {"size": "12GiB"},
            "description": "",
            "driver": "btrfs",
            "locations": ["none"],
            "name": "default",
            "status": "Created",
            "used_by": ["/1.0/profiles/default"],
        }
    ]


def networks_of(server: Server) -> dict[str, dict[str, str]]:
    if server.get("uninitialised"):
        return {}
    if "networks" in server:  # set up by the fake `lxd init --preseed`
        return dict(server["networks"])
    return {
        "lxdbr0": {"ipv4.address": "10.252.0.1/24", "ipv4.nat": "false", "ipv6.address": "none"}
    }
