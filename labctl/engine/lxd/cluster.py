"""A cluster's members and what each one has, asked of LXD's REST API through `lxc query`.

Members come from `/1.0/cluster/members?recursion=1`: each member's `status` (Online, Offline,
Evacuated) and the cluster's `message` about it, so a member that is down is known even when it
holds none of the class's instances (an instance list only shows the members that hold some).
Capacity comes from `/1.0/resources?target=MEMBER` (CPU threads, memory total and in use) and
`/1.0/storage-pools/POOL/resources?target=MEMBER` (space in the pool the instances' root disks
go on), which LXD measures on the member itself: the figures an instructor would otherwise have
to look up on each server and copy into lab.yaml.

The answers are read by key and type: an odd one is an EngineError that says which field, never
a crash.
"""

from __future__ import annotations

from typing import Any, Final, Protocol
from urllib.parse import quote

from labctl.engine.base import ClusterMember, MemberCapacity
from labctl.engine.lxd import projects
from labctl.engine.lxd import server as setup
from labctl.engine.lxd.parse import ServerInfo
from labctl.errors import EngineError, LabctlError

ONLINE: Final = "Online"


class LxdEngine(projects.LxdEngine, Protocol):
    """What these helpers use of the adapter (adapter.LxdEngine), without importing it."""

    def server(self) -> ServerInfo: ...

    def profile_documents(self) -> list[Any]: ...


def _count(document: dict[str, Any], *keys: str) -> int:
    """A non-negative integer at document[k1][k2]..., else -1 (absent or not a count)."""
    value: Any = document
    for key in keys:
        value = setup.as_dict(value).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _odd(path: str, field: str) -> EngineError:
    return EngineError(
        f"unexpected answer from `lxc query {path}`: no {field} in it",
        hint="The API may have changed in this LXD version; please report it with `lxc version`.",
    )


def parse_members(document: Any) -> list[ClusterMember]:
    """`/1.0/cluster/members?recursion=1` -> the members, in the cluster's order."""
    found = []
    for item in document if isinstance(document, list) else []:
        item = setup.as_dict(item)
        name = item.get("server_name")
        if not isinstance(name, str) or not name:
            continue
        status = str(item.get("status") or "Unknown")
        message = str(item.get("message") or "")
        found.append(
            ClusterMember(name, status == ONLINE, f"{status}: {message}" if message else status)
        )
    return found


def parse_capacity(resources: Any, pool: str = "", pool_resources: Any = None) -> MemberCapacity:
    """`/1.0/resources` (and the root pool's `resources`) -> what the member has."""
    document = setup.as_dict(resources)
    cpus = _count(document, "cpu", "total")
    total = _count(document, "memory", "total")
    used = _count(document, "memory", "used")
    for value, field in ((cpus, "cpu.total"), (total, "memory.total"), (used, "memory.used")):
        if value < 0:
            raise _odd("/1.0/resources", field)
    space_total = _count(setup.as_dict(pool_resources), "space", "total")
    space_used = _count(setup.as_dict(pool_resources), "space", "used")
    free = space_total - space_used if space_total >= 0 and space_used >= 0 else None
    return MemberCapacity(cpus, total, used, free, pool if free is not None else "")


def members(engine: LxdEngine) -> list[ClusterMember]:
    """The cluster's members; [] when the server is no cluster."""
    if not engine.server().clustered:
        return []
    return parse_members(engine.query("/1.0/cluster/members?recursion=1"))


def root_pool(engine: LxdEngine) -> str:
    """The pool the lab's instances get their root disk from ("" when the profiles say none):
    their project's profiles, else (a student's own project, made from them, or not made yet)
    the default project's."""
    if not engine.target.own_project:
        try:
            return setup.root_pool(setup.profile_devices(engine.profile_documents()))
        except EngineError:
            pass  # a class's `{student}` project as such: no project of that name
    return setup.root_pool(projects.source_devices(engine))


def capacity(engine: LxdEngine, member: str) -> MemberCapacity:
    """What `member` has, measured there by LXD. The pool's free space is left unknown when
    the pool cannot be told or read (the CPUs and memory still count)."""
    target = f"target={quote(member)}"
    resources = engine.query(f"/1.0/resources?{target}")
    try:
        pool = root_pool(engine)
        pool_resources = (
            engine.query(f"/1.0/storage-pools/{quote(pool)}/resources?{target}") if pool else None
        )
    except LabctlError:
        pool, pool_resources = "", None
    return parse_capacity(resources, pool, pool_resources)
