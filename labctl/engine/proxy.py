"""An engine that forwards every call to another one: the base for wrappers that change one or
two calls (a class's shared listing, plan's recording engine) and still type-check as an Engine."""

from __future__ import annotations

from collections.abc import Sequence

from labctl.engine.base import (
    Argv,
    Capabilities,
    ClusterMember,
    ClusterMembers,
    Engine,
    ExecResult,
    HealthLine,
    Instance,
    LaunchSpec,
    MemberCapacity,
    Snapshot,
    Stdin,
)
from labctl.errors import EngineError

# Aliases: inside the class body, `list` names the method, not the builtin.
_Argv = list[str]
_Argvs = list[list[str]]
_Instances = list[Instance]
_Snapshots = list[Snapshot]
_Health = list[HealthLine]
_Members = list[ClusterMember]


class EngineProxy:
    """Forwards everything to `inner`; subclasses override what they change."""

    def __init__(self, inner: Engine) -> None:
        self._inner = inner

    @property
    def inner(self) -> Engine:
        """The engine every call goes to."""
        return self._inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def ready(self) -> str:
        return self.inner.ready()

    def health(self, *, image: str | None = None) -> _Health:
        return self.inner.health(image=image)

    def list(self) -> _Instances:
        return self.inner.list()

    def exec(
        self, name: str, argv: Argv, *, stdin: Stdin = None, timeout: float, check: bool = False
    ) -> ExecResult:
        return self.inner.exec(name, argv, stdin=stdin, timeout=timeout, check=check)

    def launch(self, spec: LaunchSpec) -> None:
        self.inner.launch(spec)

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        self.inner.start(names, timeout=timeout)

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        self.inner.stop(names, force=force, timeout=timeout)

    def delete(self, names: Sequence[str]) -> None:
        self.inner.delete(names)

    def recover(self, names: Sequence[str]) -> None:
        self.inner.recover(names)

    def snapshots_unavailable(self) -> str | None:
        return self.inner.snapshots_unavailable()

    def list_snapshots(self) -> _Snapshots:
        return self.inner.list_snapshots()

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        self.inner.snapshot(name, snapshot, comment=comment)

    def restore(self, name: str, snapshot: str) -> None:
        self.inner.restore(name, snapshot)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        self.inner.delete_snapshot(name, snapshot)

    def interactive(self, name: str, argv: Sequence[str] | None = None) -> int:
        return self.inner.interactive(name, argv)

    def prepare(self) -> str | None:
        return self.inner.prepare()

    def prepare_argvs(self) -> _Argvs:
        return self.inner.prepare_argvs()

    # a cluster's members: read-only questions, answered by an inner engine that can
    def members(self) -> _Members:
        inner = self.inner
        return inner.members() if isinstance(inner, ClusterMembers) else []

    def member_capacity(self, member: str) -> MemberCapacity:
        inner = self.inner
        if not isinstance(inner, ClusterMembers):
            raise EngineError(f"{inner.capabilities.display_name} has no cluster members")
        return inner.member_capacity(member)

    # the command lines
    def version_argv(self) -> _Argv:
        return self.inner.version_argv()

    def list_argv(self) -> _Argv:
        return self.inner.list_argv()

    def launch_argv(self, spec: LaunchSpec) -> _Argv:
        return self.inner.launch_argv(spec)

    def start_argv(self, names: Sequence[str], *, timeout: float) -> _Argv:
        return self.inner.start_argv(names, timeout=timeout)

    def stop_argv(self, names: Sequence[str], *, force: bool, timeout: float) -> _Argv:
        return self.inner.stop_argv(names, force=force, timeout=timeout)

    def delete_argv(self, names: Sequence[str]) -> _Argv:
        return self.inner.delete_argv(names)

    def recover_argv(self, names: Sequence[str]) -> _Argv:
        return self.inner.recover_argv(names)

    def exec_argv(self, name: str, argv: Sequence[str]) -> _Argv:
        return self.inner.exec_argv(name, argv)

    def snapshot_argv(self, name: str, snapshot: str, *, comment: str) -> _Argv:
        return self.inner.snapshot_argv(name, snapshot, comment=comment)

    def restore_argv(self, name: str, snapshot: str) -> _Argv:
        return self.inner.restore_argv(name, snapshot)

    def delete_snapshot_argv(self, name: str, snapshot: str) -> _Argv:
        return self.inner.delete_snapshot_argv(name, snapshot)

    def list_snapshots_argv(self) -> _Argv:
        return self.inner.list_snapshots_argv()
