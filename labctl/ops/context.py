"""What every use case works with: the lab (at its course stage), the engine, the run's options,
and injectable side doors (hosts file, resolver, clock, status agent)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

from labctl.config.load import LabFile
from labctl.engine.base import Engine, Instance, State
from labctl.errors import ConfigError, EngineError
from labctl.host import privileged
from labctl.host.agent import StatusAgent, fetch_report
from labctl.host.hostsfile import hosts_path
from labctl.host.probes import DomainCheck, HttpAnswer, Resolver, check_domain, http_get, resolve
from labctl.host.resources import HostResources, host_resources
from labctl.host.state import LabState, LockHolder, state_dir
from labctl.model import Lab, Vm
from labctl.ops.vm_schema import AnswerMisfitError, marker_of, parse_json
from labctl.render.userdata import INSTANCE_MARKER_PATH

EventKind = Literal["start", "done", "fail", "info", "skip", "log"]  # log: a line of a VM's log
LABEL_LAB: Final = "labctl.lab"  # ownership labels, on engines that keep them
LABEL_VM: Final = "labctl.vm"
LABEL_STUDENT: Final = "labctl.student"


class DomainProbe(Protocol):
    """Checks the domain end to end (host/probes.check_domain); plan records instead."""

    def __call__(
        self,
        domain: str,
        *,
        port: int,
        expected_ip: str | None,
        expected_backends: frozenset[str],
        requests: int,
        resolver: Resolver,
        use_resolution: bool,
        deadline: float | None = None,
    ) -> DomainCheck: ...


class AppProbe(Protocol):
    """One GET to an app instance directly (host/probes.http_get); plan records instead."""

    def __call__(self, ip: str, port: int, host: str, *, timeout: float) -> HttpAnswer: ...


@dataclass(frozen=True)
class Event:
    """Progress, for the CLI to show; use cases never print."""

    stage: str
    kind: EventKind
    message: str = ""
    vm: str | None = None


STAGE_NOTE: Final = "stage"  # where the lab's course stage is recorded in its state


@dataclass(frozen=True)
class RunOptions:
    """The command line's overrides, resolved once when the context is built."""

    stage: str | None = None  # --stage: bring the lab to this stage (and record it)
    no_hosts: bool = False  # --no-hosts: never touch the hosts file, print the line instead
    force: bool = False  # --force: go on past capacity and domain refusals
    max_parallel: int = 4  # --max-parallel: launches at once


@dataclass
class LabContext:
    """One lab as a command acts on it. Built once per command: the lab is put at its course stage
    (`--stage`, else where it was brought up, else lab.yaml's) when the context is made."""

    lab_file: LabFile
    engine: Engine
    options: RunOptions = field(default_factory=RunOptions)
    on_event: Callable[[Event], None] = lambda event: None
    hosts_file: Path = field(default_factory=hosts_path)
    resolver: Resolver = resolve
    probe_domain: DomainProbe = check_domain
    probe_app: AppProbe = http_get
    sleep: Callable[[float], None] = time.sleep
    probe_interval: float = 2.0
    state: LabState | None = None
    host: Callable[[], HostResources] = host_resources  # CPU/memory/disk, for capacity checks
    can_sudo: Callable[[], bool] = privileged.can_sudo
    # A launch bound shared with other labs (a class's students): `up` uses it instead of its own
    # --max-parallel semaphore, so the whole class stays under one bound.
    launch_slots: threading.BoundedSemaphore | None = None
    # How status reads a VM's report from its status agent; None: by the engine's exec only.
    status_agent: StatusAgent | None = fetch_report

    student: str | None = None  # in a class: whose lab this is
    # The cluster member every instance of this lab is launched on (None: the engine chooses):
    # one lab stays on one member, whose network its LB shares with its app instances.
    member: str | None = None
    yaml_stage: str = ""  # lab.yaml's own stage (lab_file is put at the stage that applies)
    # Why the lab is not at lab.yaml's stage, for `up`, `reset` and `status` to say ("" if it is).
    stage_note: str = ""

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = LabState(state_dir(self.lab_file.base_dir, self.lab.name))
        self.yaml_stage = self.yaml_stage or self.lab.stage
        self._apply_stage()

    def _apply_stage(self) -> None:
        recorded = self.lab_state.note(STAGE_NOTE)
        stage = self.options.stage or recorded or self.yaml_stage
        try:
            self.lab_file = self.lab_file.with_stage(stage)
        except ConfigError:
            if self.options.stage:
                raise
            self.lab_file = self.lab_file.with_stage(self.yaml_stage)  # not labctl's: lab.yaml's
        self.stage_note = ""
        if not self.options.stage and self.lab.stage != self.yaml_stage:
            self.stage_note = (
                f"lab {self.lab.name} stays at stage {self.lab.stage} (where it was brought up; "
                f"lab.yaml says {self.yaml_stage}): `--stage {self.yaml_stage}` on up/reset moves it"
            )

    @property
    def manage_hosts(self) -> bool:
        """Whether labctl writes the hosts entry: lab.yaml at this stage, unless --no-hosts."""
        return not self.options.no_hosts and self.lab.hosts_managed

    @property
    def lab(self) -> Lab:
        return self.lab_file.lab

    @property
    def lab_state(self) -> LabState:
        assert self.state is not None
        return self.state

    def emit(self, stage: str, kind: EventKind, message: str = "", vm: str | None = None) -> None:
        self.on_event(Event(stage, kind, message, vm))

    def instance(self, vm: Vm) -> str:
        return self.lab.instance_name(vm)

    def locked(self, command: str) -> AbstractContextManager[None]:
        """The lab's lock for a command that changes the lab (LabBusyError if another holds it)."""

        def stale(holder: LockHolder) -> None:
            self.emit(
                "lock",
                "info",
                f"took over the lock left by `labctl {holder.command}` (PID {holder.pid}), "
                "which is no longer running",
            )

        return self.lab_state.lock(self.lab.name, command, on_stale=stale)


@dataclass(frozen=True)
class Ownership:
    """How each lab VM's instance name is used right now."""

    ours: dict[str, Instance]  # vm name -> instance
    missing: list[str]  # vm names with no instance
    foreign: dict[str, Instance]  # vm name -> an instance that is not this lab's


def classify_instances(ctx: LabContext, instances: list[Instance]) -> Ownership:
    """Sort the lab's instance names into ours / missing / foreign. Never touches foreign ones.

    An instance is ours if the local state says labctl launched it, or (state lost) if its
    ownership labels name this lab and VM (engines that keep labels), or it is running and its
    marker file says so. A stopped unknown instance stays foreign: an exec could start it (some
    engines start a stopped instance to exec into it), which is not ours to do.
    """
    by_name = {inst.name: inst for inst in instances}
    owned = ctx.lab_state.owned()
    ours: dict[str, Instance] = {}
    missing: list[str] = []
    foreign: dict[str, Instance] = {}
    for vm in ctx.lab.vms:
        name = ctx.instance(vm)
        inst = by_name.get(name)
        if inst is None:
            missing.append(vm.name)
        elif name in owned or _labelled(ctx, inst, vm) or _marked(ctx, inst, vm):
            ours[vm.name] = inst
            if name not in owned:
                ctx.lab_state.record(name, vm.name)
        else:
            foreign[vm.name] = inst
    return Ownership(ours, missing, foreign)


def ownership_labels(ctx: LabContext, vm: Vm) -> dict[str, str]:
    """The labels an instance of `vm` carries on engines that keep them."""
    labels = {LABEL_LAB: ctx.lab.name, LABEL_VM: vm.name}
    if ctx.student:
        labels[LABEL_STUDENT] = ctx.student
    return labels


def _labelled(ctx: LabContext, inst: Instance, vm: Vm) -> bool:
    if not ctx.engine.capabilities.keeps_labels:
        return False
    return inst.labels.get(LABEL_LAB) == ctx.lab.name and inst.labels.get(LABEL_VM) == vm.name


def _marked(ctx: LabContext, inst: Instance, vm: Vm) -> bool:
    if inst.state is not State.RUNNING:
        return False
    try:
        result = ctx.engine.exec(
            inst.name, ["cat", INSTANCE_MARKER_PATH], timeout=ctx.lab.waits.check
        )
    except EngineError:
        return False
    if result.returncode != 0:
        return False
    try:
        marker = marker_of(parse_json(result.stdout))
    except AnswerMisfitError:  # whatever the VM answered instead, it is not labctl's marker
        return False
    return marker.lab == ctx.lab.name and marker.vm == vm.name
