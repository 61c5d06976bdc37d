"""What the use cases need from an engine (Multipass, LXD, ...), in the engine's neutral terms.

The use cases in `labctl/ops` speak only this module's protocols and types: an `Instance` with a
normalised `State` (the engine's own word for it is kept for messages), `Capabilities` that say
which of labctl's policies apply (a snapshot cycle only where a snapshot needs a stopped
instance, a recover step only where deleted instances can come back, ...), a `LaunchSpec`, and the
command lines an engine runs (`CommandLines`), which `plan` shows. Each engine lives in its own
package below `labctl/engine/` and is the only code that runs its CLI.

The protocols are narrow on purpose (`Inventory`, `GuestExec`, `Lifecycle`, `Snapshots`): a use
case annotates with the part it uses, so a test double or a wrapper implements only that part.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, Protocol, TypeVar, runtime_checkable

from labctl.errors import EngineError

Argv = Sequence[str]  # a command line, one argument per element
Stdin = str | None  # what a command reads on stdin, if anything


class State(StrEnum):
    """An instance's state as the use cases act on it."""

    RUNNING = "running"
    STARTING = "starting"  # booting or changing state: wait for it, do not start it
    STOPPED = "stopped"  # stopped or suspended: `start` brings it back
    DELETED = "deleted"  # deleted but recoverable (Capabilities.recovers_deleted)
    BROKEN = "broken"  # the engine lost track of it: only a rebuild helps


@dataclass(frozen=True)
class Instance:
    """One instance as the engine lists it."""

    name: str
    state: State
    shown_state: str  # the engine's own word ("Running", "Suspended", "ERROR"), for people
    ipv4: tuple[str, ...] = ()
    location: str = ""  # the cluster member or host it runs on; "" when the engine does not say
    labels: Mapping[str, str] = field(default_factory=dict)  # ownership labels, where kept
    # Why the engine cannot reach or manage it at all (its cluster member is down); "" if it can.
    unreachable: str = ""

    @property
    def ip(self) -> str | None:
        """The address labctl reaches the instance at: the first valid IPv4, else None."""
        if not self.ipv4:
            return None
        try:
            ipaddress.IPv4Address(self.ipv4[0])
        except ValueError:
            return None
        return self.ipv4[0]


@dataclass(frozen=True)
class ExecResult:
    """A command run in an instance: its own exit code and (bounded) output."""

    returncode: int
    stdout: str
    stderr: str


_Failure = TypeVar("_Failure", bound=EngineError)


def exec_failure(
    kind: type[_Failure],
    name: str,
    argv: Argv,
    full: list[str],
    result: ExecResult,
    *,
    why: str,
    tail: str,
) -> _Failure:
    """The error of `exec(check=True)` when the command ran in `name` and exited non-zero:
    `why` is the engine's one-line reading of its stderr and `tail` its last lines, `full` the
    command line the engine ran."""
    return kind(
        f"`{shlex.join(argv)}` in {name} exited {result.returncode}: {why}",
        argv=full,
        returncode=result.returncode,
        stderr=tail,
    )


@dataclass(frozen=True)
class Snapshot:
    instance: str
    name: str
    comment: str = ""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an engine needs to create and start one instance."""

    name: str
    image: str
    cpus: int
    memory: str  # "1G", "512M": lab.yaml's size syntax
    disk: str
    user_data: str  # cloud-init user-data; may hold secrets: never logged
    timeout: float  # how long the launch may take before the engine gives up
    labels: Mapping[str, str] = field(default_factory=dict)  # ownership (lab, vm, student)
    target: str | None = None  # the cluster member to place it on


@dataclass(frozen=True)
class Capabilities:
    """Which of labctl's policies apply to an engine."""

    name: str  # "multipass", "lxd": what `engine:` in lab.yaml says
    display_name: str  # "Multipass", "LXD": for messages
    instance_noun: str  # "VM", "container"
    snapshot_needs_stop: bool  # stop, snapshot, start (Multipass) or snapshot running (LXD)
    recovers_deleted: bool  # a deleted instance can be recovered until purged
    keeps_labels: bool  # instances carry ownership labels (else: local state + a marker file)
    launch_waits_for_cloud_init: bool  # launch returns only after cloud-init's boot-finished
    places_instances: bool  # a cluster that places instances on members (LaunchSpec.target)


HealthStatus = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class HealthLine:
    """One line of `labctl doctor` about the engine."""

    name: str
    status: HealthStatus
    detail: str
    hint: str = ""


@runtime_checkable
class Inventory(Protocol):
    def list(self) -> list[Instance]:
        """Every instance the engine knows, in no particular order."""
        ...


@runtime_checkable
class GuestExec(Protocol):
    def exec(
        self, name: str, argv: Argv, *, stdin: Stdin = None, timeout: float, check: bool = False
    ) -> ExecResult:
        """Run argv in the instance as its default user (who has sudo).

        The result carries the remote exit code; the engine's own failures raise EngineError
        (CommandTimeoutError after `timeout`). `check` raises for a non-zero remote code too.
        """
        ...


@runtime_checkable
class Lifecycle(Protocol):
    def launch(self, spec: LaunchSpec) -> None:
        """Create and start one instance (LaunchTimeoutError may leave it behind)."""
        ...

    def start(self, names: Sequence[str], *, timeout: float) -> None: ...

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None: ...

    def delete(self, names: Sequence[str]) -> None:
        """Delete instances for good; names that are already gone are not an error."""
        ...

    def recover(self, names: Sequence[str]) -> None:
        """Bring deleted instances back as stopped ones (Capabilities.recovers_deleted)."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    def snapshots_unavailable(self) -> str | None:
        """Why this engine cannot take snapshots here (version, driver), or None when it can."""
        ...

    def list_snapshots(self) -> list[Snapshot]: ...

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        """Snapshot `name` (stopped first where Capabilities.snapshot_needs_stop)."""
        ...

    def restore(self, name: str, snapshot: str) -> None:
        """Discard `name`'s current state for `snapshot`'s."""
        ...

    def delete_snapshot(self, name: str, snapshot: str) -> None: ...


class CommandLines(Protocol):
    """The command lines an engine runs for each call, exactly as it runs them (for `plan`)."""

    def version_argv(self) -> list[str]: ...

    def list_argv(self) -> list[str]: ...

    def launch_argv(self, spec: LaunchSpec) -> list[str]: ...

    def start_argv(self, names: Sequence[str], *, timeout: float) -> list[str]: ...

    def stop_argv(self, names: Sequence[str], *, force: bool, timeout: float) -> list[str]: ...

    def delete_argv(self, names: Sequence[str]) -> list[str]: ...

    def recover_argv(self, names: Sequence[str]) -> list[str]: ...

    def exec_argv(self, name: str, argv: Sequence[str]) -> list[str]: ...

    def snapshot_argv(self, name: str, snapshot: str, *, comment: str) -> list[str]: ...

    def restore_argv(self, name: str, snapshot: str) -> list[str]: ...

    def delete_snapshot_argv(self, name: str, snapshot: str) -> list[str]: ...

    def list_snapshots_argv(self) -> list[str]: ...


@runtime_checkable
class Engine(Inventory, GuestExec, Lifecycle, Snapshots, CommandLines, Protocol):
    """A whole engine: what `LabContext.engine` holds."""

    @property
    def capabilities(self) -> Capabilities: ...

    def ready(self) -> str:
        """Check the engine answers and is usable; its version text ("multipass 1.16.3").

        Raises EngineUnreachableError (daemon down), EngineNotFoundError (no CLI) or EngineError.
        """
        ...

    def health(self, *, image: str | None = None) -> list[HealthLine]:
        """doctor's lines about the engine: CLI, daemon, version, storage, snapshots... and,
        where the engine can tell, whether `image` (lab.yaml's) is there to launch from."""
        ...

    def interactive(self, name: str, argv: Sequence[str] | None = None) -> int:
        """Hand the user's terminal to a shell in `name` (argv None) or to argv there; exit code."""
        ...

    def prepare(self) -> str | None:
        """Make what the lab's instances need before the first launch (LXD: a student's own
        project); what was done, or None when nothing was needed. Idempotent."""
        ...

    def prepare_argvs(self) -> list[list[str]]:
        """The command lines `prepare` would run now ([] when nothing is needed): a question to
        the engine, so `plan` can show them."""
        ...


@dataclass(frozen=True)
class AccessGrant:
    """A join token that lets one client reach one project only. `token` is a secret: it goes to
    the instructor who asked for it and nowhere else (no log, no error, no recording)."""

    trust_name: str
    project: str
    token: str = field(repr=False)


@runtime_checkable
class StudentAccess(Protocol):
    """An engine that can let a student's own client in, restricted to the lab's project."""

    def network_addresses(self) -> list[str]:
        """Where clients reach the server over the network ([]: nowhere)."""
        ...

    def grant_access(self, trust_name: str) -> AccessGrant: ...

    def student_command(self, remote: str, token: str, instance: str) -> str:
        """The one command a student runs on their machine: add the remote, open a shell."""
        ...

    def revoke_access(self, trust_name: str) -> int:
        """Remove every trusted client and pending token named `trust_name`; how many."""
        ...


@dataclass(frozen=True)
class ClusterMember:
    """One member of a cluster, as the cluster itself reports it (not through its instances)."""

    name: str
    online: bool  # answers the cluster's heartbeats; an offline or evacuated one takes no lab
    detail: str  # the cluster's own words ("Offline: No heartbeat for 31s"), for people


@dataclass(frozen=True)
class MemberCapacity:
    """What one member has, measured by the engine on that member."""

    cpus: int
    memory_total: int  # bytes
    memory_used: int  # bytes
    disk_free: int | None = None  # bytes free in the pool the instances' root disks are on
    disk_pool: str = ""


@runtime_checkable
class ClusterMembers(Protocol):
    """An engine whose server may be a cluster: which members there are, and what each has."""

    def members(self) -> list[ClusterMember]:
        """Every member of the cluster, in the cluster's order; [] when it is no cluster."""
        ...

    def member_capacity(self, member: str) -> MemberCapacity:
        """CPUs, memory and the root pool's free space on `member` (EngineError if it is down)."""
        ...


# stop, delete, snapshot and restore have no timer of their own in some engines (Multipass):
# labctl gives each call this long before it gives up on the engine.
OPERATION_TIMEOUT: Final = 300.0
