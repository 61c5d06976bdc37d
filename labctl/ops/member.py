"""Which cluster member a lab that names none goes on.

A lab's LB reaches its app instances over the network of the member they run on, so the whole lab
must be on one member; left to itself, LXD's scheduler would spread its instances over the
members. A class places each student itself (ops/classroom); a single lab without `hosts:` on a
cluster gets the member its instances are already on, else the online member with the most memory
free, as the cluster measures it.
"""

from __future__ import annotations

from collections.abc import Mapping

from labctl.engine.base import ClusterMembers, Engine, Instance
from labctl.errors import EngineError


def one_member(engine: Engine, ours: Mapping[str, Instance]) -> str | None:
    """The member for the lab's new instances; None when the engine is no cluster."""
    if not isinstance(engine, ClusterMembers):
        return None
    here = sorted({inst.location for inst in ours.values() if inst.location})
    if here:
        return here[0]
    online = [member.name for member in engine.members() if member.online]

    def free(member: str) -> int:
        try:
            found = engine.member_capacity(member)
        except EngineError:
            return -1  # not measured: last, and the cluster's order between such members
        return found.memory_total - found.memory_used

    return max(online, key=free, default=None)
