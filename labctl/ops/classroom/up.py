"""`labctl up` for a class: capacity per host, then every selected student's `up` in parallel
under ONE launch bound (many simultaneous launches crash an engine's daemon: Multipass #3336).

One student's failure never stops the others; the result says who is up and who failed at which
stage. A class that does not fit its hosts is refused before anything is launched (--force goes on).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from labctl.engine.base import Instance, State
from labctl.errors import LabctlError
from labctl.model import Vm
from labctl.ops.classroom.contexts import ClassContext, HostRef, place, select_students
from labctl.ops.classroom.fanout import StudentRun, fan_out
from labctl.ops.context import Event, LabContext
from labctl.ops.doctor import Check, capacity_checks
from labctl.ops.up import UpResult, up


@dataclass(frozen=True)
class HostCapacity:
    """What the selected students placed on one host need, against what the host has."""

    host: str
    remote: str | None  # the LXD remote it is on; None: the local server
    students: list[str]
    source: str  # measured on this machine | declared in lab.yaml ... | remote; declare ...
    checks: list[Check]
    listing_error: str = ""

    @property
    def fits(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)


@dataclass(frozen=True)
class ClassUpResult:
    lab: str
    students: list[StudentRun[UpResult]] = field(default_factory=list)
    capacity: list[HostCapacity] = field(default_factory=list)
    refused: bool = False  # capacity did not fit: nothing was launched
    forced: bool = False
    seconds: float = 0.0

    @property
    def up(self) -> list[StudentRun[UpResult]]:
        return [run for run in self.students if run.result is not None and run.result.ok]

    @property
    def failed(self) -> list[StudentRun[UpResult]]:
        return [run for run in self.students if run.result is None or not run.result.ok]

    @property
    def ok(self) -> bool:
        return not self.refused and not self.failed


def failed_stage(run: StudentRun[UpResult]) -> str:
    """The stage a student's up stopped at (preflight when it raised before launching)."""
    if run.result is not None and run.result.failures:
        stages = sorted({f.stage for f in run.result.failures})
        return "/".join(stages)
    return "interrupted" if run.exit_code == 130 else "preflight"


class _ClassSlots(threading.BoundedSemaphore):
    """The class's launch bound; once cancelled (Ctrl-C), waiting launches give up."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.cancelled = threading.Event()

    def __enter__(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if self.cancelled.is_set():
            raise KeyboardInterrupt
        got = super().__enter__(blocking, timeout)
        if self.cancelled.is_set():
            self.release()
            raise KeyboardInterrupt
        return got


def class_capacity(cctx: ClassContext, placement: dict[str, HostRef]) -> list[HostCapacity]:
    """Per host: CPU, memory and disk for the placed students' VMs that are not running yet
    (CPU, memory) or do not exist yet (disk). One listing per host."""
    lab = cctx.lab
    probe = LabContext(lab_file=cctx.lab_file, engine=cctx.engine_at(None), state=None)
    rows: list[HostCapacity] = []
    for host in cctx.hosts():
        students = [s for s, h in placement.items() if h.name == host.name]
        if not students:
            continue
        instances: dict[str, Instance] = {}
        error = ""
        try:
            engines = cctx.listing_engines(host.remote, students)
            instances = {i.name: i for engine in engines for i in engine.list()}
        except LabctlError as exc:
            error = exc.message
        every: list[Vm] = []
        to_start: list[Vm] = []
        to_create: list[Vm] = []
        for student in students:
            mine = lab.for_student(student)
            for vm in lab.vms:
                inst = instances.get(mine.instance_name(vm))
                every.append(vm)
                if inst is None:
                    to_create.append(vm)
                if inst is None or inst.state is not State.RUNNING:
                    to_start.append(vm)
        resources, source = cctx.resources(host)
        checks = capacity_checks(probe, to_start, to_create, host=resources, every=every)
        if not host.measurable:
            checks = [_remote(c, host) for c in checks]
        rows.append(HostCapacity(host.name, host.remote, students, source, checks, error))
    return rows


def _remote(check: Check, host: HostRef) -> Check:
    if check.status != "skip":
        return check
    return Check(
        check.name,
        "skip",
        f"not declared for {'cluster member' if host.member else 'remote'} host {host.name} "
        f"(hosts[{host.index}].{_FIELD[check.name]})",
    )


_FIELD = {"cpu": "cpus", "memory": "memory", "disk": "disk"}


def class_up(cctx: ClassContext, students: list[str] | None = None) -> ClassUpResult:
    started = time.monotonic()
    chosen = select_students(cctx.lab, students)
    placement = place(cctx, chosen, persist=False)
    capacity = class_capacity(cctx, placement)
    unfit = [row for row in capacity if not row.fits]
    if unfit and not cctx.options.force:
        return ClassUpResult(
            cctx.lab.name, capacity=capacity, refused=True, seconds=time.monotonic() - started
        )
    for row in unfit:
        for check in row.checks:
            if check.status == "fail":
                cctx.on_event(
                    Event(
                        "capacity",
                        "skip",
                        f"{row.host}: {check.name}: {check.detail} (--force: going on)",
                    )
                )
    placement = place(cctx, chosen, persist=True)
    slots = _ClassSlots(max(1, cctx.options.max_parallel))

    def bring_up(ctx: LabContext) -> UpResult:
        # Each student's end is an event too, so a live view can count "12/24 up, 1 failed".
        try:
            result = up(ctx)
        except LabctlError as exc:
            ctx.emit("up", "fail", exc.message)
            raise
        stages = "/".join(sorted({f.stage for f in result.failures}))
        ctx.emit(
            "up", "done" if result.ok else "fail", "up" if result.ok else f"failed at {stages}"
        )
        return result

    runs = fan_out(
        cctx,
        chosen,
        bring_up,
        placement=placement,
        launch_slots=slots,
        on_interrupt=slots.cancelled.set,  # launches still waiting for a slot give up
    )
    return ClassUpResult(
        cctx.lab.name, runs, capacity, forced=bool(unfit), seconds=time.monotonic() - started
    )
