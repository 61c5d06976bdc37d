"""What every use case works with: the lab, the Multipass adapter, and injectable side doors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from labctl.config.load import LabFile
from labctl.errors import DaemonUnreachableError, MultipassError
from labctl.host import privileged
from labctl.host.agent import StatusAgent, fetch_report
from labctl.host.hostsfile import hosts_path
from labctl.host.probes import Resolver, resolve
from labctl.host.resources import HostResources, host_resources
from labctl.host.state import LabState, LockHolder, state_dir
from labctl.model import Lab, Vm
from labctl.multipass.adapter import MIN_VERSION, Instance, Multipass, VersionInfo
from labctl.render.userdata import INSTANCE_MARKER_PATH

EventKind = Literal["start", "done", "fail", "info", "skip", "log"]  # log: a line of a VM's log


@dataclass(frozen=True)
class Event:
    """Progress, for the CLI to show; use cases never print."""

    stage: str
    kind: EventKind
    message: str = ""
    vm: str | None = None


@dataclass
class LabContext:
    lab_file: LabFile
    multipass: Multipass
    on_event: Callable[[Event], None] = lambda event: None
    hosts_file: Path = field(default_factory=hosts_path)
    resolver: Resolver = resolve
    sleep: Callable[[float], None] = time.sleep
    probe_interval: float = 2.0
    state: LabState | None = None
    host: Callable[[], HostResources] = host_resources  # CPU/memory/disk, for capacity checks
    can_sudo: Callable[[], bool] = privileged.can_sudo
    # A launch bound shared with other labs (a class's students): `up` uses it instead of its own
    # --max-parallel semaphore, so the whole class stays under one bound (multipass #3336).
    launch_slots: threading.BoundedSemaphore | None = None
    # How status reads a VM's report from its status agent; None: by `multipass exec` only.
    status_agent: StatusAgent | None = fetch_report

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = LabState(state_dir(self.lab_file.base_dir, self.lab.name))

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


def require_daemon(mp: Multipass, info: VersionInfo | None = None) -> str:
    """Check multipassd answers and is new enough (`info`: its `version`, if just asked)."""
    info = info or mp.version()
    if info.daemon is None:
        raise DaemonUnreachableError(
            "multipass is installed but its daemon (multipassd) does not answer",
            hint="Start it (Linux: sudo snap restart multipass; macOS/Windows: restart the "
            "Multipass app) and try again.",
        )
    found = info.daemon_tuple()
    if found is not None and found < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        raise MultipassError(
            f"Multipass {info.daemon} is too old; labctl needs {wanted} or newer",
            hint="Upgrade it: sudo snap refresh multipass (Linux), brew upgrade multipass (macOS).",
        )
    return info.daemon


@dataclass(frozen=True)
class Ownership:
    """How each lab VM's instance name is used right now."""

    ours: dict[str, Instance]  # vm name -> instance
    missing: list[str]  # vm names with no instance
    foreign: dict[str, Instance]  # vm name -> an instance that is not this lab's


def classify_instances(ctx: LabContext, instances: list[Instance]) -> Ownership:
    """Sort the lab's instance names into ours / missing / foreign. Never touches foreign ones.

    An instance is ours if the local state says labctl launched it, or (state lost) if it is
    running and its marker file names this lab and VM. A stopped unknown instance stays foreign:
    exec would auto-start it (multipass.md §2.4), which is not ours to do.
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
        elif name in owned or (inst.state == "Running" and _marker_matches(ctx, inst, vm)):
            ours[vm.name] = inst
            if name not in owned:
                ctx.lab_state.record(name, vm.name)
        else:
            foreign[vm.name] = inst
    return Ownership(ours, missing, foreign)


def _marker_matches(ctx: LabContext, inst: Instance, vm: Vm) -> bool:
    try:
        result = ctx.multipass.exec(
            inst.name, ["cat", INSTANCE_MARKER_PATH], timeout=ctx.lab.waits.check
        )
    except MultipassError:
        return False
    if result.returncode != 0:
        return False
    try:
        marker = json.loads(result.stdout)
    except json.JSONDecodeError:
        return False
    return (
        isinstance(marker, dict)
        and marker.get("lab") == ctx.lab.name
        and marker.get("vm") == vm.name
    )
