"""What a class's cluster says about its members, asked once per command and kept.

Three uses: a class on a cluster with no `hosts:` in lab.yaml is spread over every member the
cluster lists (one student's lab still on one member); a member's capacity is measured by the
cluster when lab.yaml declares none; and a member the cluster calls offline (or evacuated) takes
no new student, even when it holds none of the class's instances yet. A server that is no
cluster, an engine that cannot tell, or a server that does not answer gives no members: the
class then runs as it would without this (placement by declared figures or by head count, and
`up` reports the unreachable server on its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from labctl.engine.base import ClusterMember, ClusterMembers, Engine, MemberCapacity
from labctl.errors import LabctlError


class ClusterView:
    """Answers about the cluster behind each remote, cached; safe to share between the threads
    a class command runs its students in."""

    def __init__(self, engine_at: Callable[[str | None], Engine]) -> None:
        self._engine_at = engine_at
        self._lock = threading.Lock()
        self._members: dict[str | None, list[ClusterMember]] = {}
        self._capacity: dict[tuple[str | None, str], MemberCapacity | str] = {}

    def members(self, remote: str | None) -> list[ClusterMember]:
        """The members of the cluster `remote` is; [] when it is none or cannot tell."""
        with self._lock:
            if remote not in self._members:
                self._members[remote] = self._ask_members(remote)
            return self._members[remote]

    def _ask_members(self, remote: str | None) -> list[ClusterMember]:
        try:
            engine = self._engine_at(remote)
            return engine.members() if isinstance(engine, ClusterMembers) else []
        except LabctlError:
            return []

    def offline(self, remote: str | None) -> set[str]:
        return {member.name for member in self.members(remote) if not member.online}

    def capacity(self, remote: str | None, member: str) -> MemberCapacity | str:
        """What `member` has, or why it could not be measured."""
        key = (remote, member)
        with self._lock:
            if key not in self._capacity:
                self._capacity[key] = self._ask_capacity(remote, member)
            return self._capacity[key]

    def _ask_capacity(self, remote: str | None, member: str) -> MemberCapacity | str:
        try:
            engine = self._engine_at(remote)
            if not isinstance(engine, ClusterMembers):
                return "the engine does not measure cluster members"
            return engine.member_capacity(member)
        except LabctlError as exc:
            return exc.message
