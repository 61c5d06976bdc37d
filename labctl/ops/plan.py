"""`labctl plan`: `up` run against an engine that records instead of acting. Launches nothing.

The plan is what `up` itself does, not a second description of it: `up` runs on a
RecordingEngine (questions go to the real engine, changes are written down with the command line
the engine would run), on a scratch copy of the lab's state and hosts file, and with probes that
report the domain serving. Each recorded call becomes a step, named by what it does, under the
stage `up` announced for it; a refusal (names in use, a lab that does not fit) is what `up` would
say.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from labctl.engine.base import State
from labctl.engine.recording import PLACEHOLDER_NET, Journal, RecordedCall, RecordingEngine
from labctl.errors import EngineError, LabctlError
from labctl.host.probes import DomainCheck, HttpAnswer
from labctl.host.state import LabState
from labctl.ops.context import Event, LabContext, classify_instances
from labctl.ops.launch_order import lpt_order
from labctl.ops.up import up
from labctl.render.userdata import (
    CLOUD_INIT_WAIT_COMMAND,
    INSTANCE_MARKER_PATH,
    LB_APPLY_COMMAND,
)

_MAIN: Final = "MainThread"
_PLACEHOLDER_RE: Final = re.compile(re.escape(PLACEHOLDER_NET) + r"\d+")
_MARKER_READ: Final = ["cat", INSTANCE_MARKER_PATH]


@dataclass(frozen=True)
class PlannedVm:
    vm: str
    instance: str
    roles: list[str]
    cpus: int
    memory: str
    disk: str
    action: str  # launch | start | recover | keep | refuse (not this lab's) | rebuild (broken)


@dataclass(frozen=True)
class PlanStep:
    order: int
    what: str
    argv: list[str] | None = None  # the engine's command line; None: a step on this machine
    parallel: bool = False  # runs concurrently with the other steps of the same order
    max_seconds: float | None = None  # the longest this step may take before up gives up
    stage: str = ""  # the stage `up` shows while it runs


@dataclass(frozen=True)
class PlanResult:
    lab: str
    vms: list[PlannedVm]
    steps: list[PlanStep]
    max_parallel: int
    notes: list[str] = field(default_factory=list)
    refused: str = ""  # what `up` would refuse with, if it would


def plan(ctx: LabContext) -> PlanResult:
    journal = Journal()
    engine = RecordingEngine(
        ctx.engine,
        journal,
        reads=lambda argv: list(argv) == _MARKER_READ,
        instances=[ctx.instance(vm) for vm in ctx.lab.vms],
        max_parallel=ctx.options.max_parallel,
    )
    notes: list[str] = []
    refused = ""
    with _scratch(ctx) as (state, hosts_file):
        recording = replace(
            ctx,
            engine=engine,
            state=state,
            hosts_file=hosts_file,
            on_event=journal.add_event,
            probe_domain=_serving,
            probe_app=_answering,
            sleep=lambda seconds: None,
            launch_slots=None,
            status_agent=None,
        )
        vms = _planned_vms(recording, engine, notes)
        try:
            up(recording)
        except LabctlError as exc:
            refused = exc.message
            notes.append(f"up would refuse: {exc.message}")
        steps = _steps(ctx, journal, engine, hosts_file)
    if not ctx.lab.snapshots.baseline:
        notes.append("no baseline snapshot: snapshots.baseline is false in lab.yaml")
    elif any(step.stage == "baseline" for step in steps):
        notes.append(_early_note(ctx, vms))
    return PlanResult(ctx.lab.name, vms, steps, ctx.options.max_parallel, notes, refused)


@contextmanager
def _scratch(ctx: LabContext) -> Iterator[tuple[LabState, Path]]:
    """Copies of the lab's state files and of the hosts file, for `up` to write freely."""
    with tempfile.TemporaryDirectory(prefix="labctl-plan-") as tmp:
        state_dir = Path(tmp) / "state"
        state_dir.mkdir(mode=0o700)
        source = ctx.lab_state.directory
        for name in ("state.json", "snapshots.json"):
            if (source / name).is_file() and not (source / name).is_symlink():
                shutil.copyfile(source / name, state_dir / name)
        hosts_file = Path(tmp) / "hosts"
        try:
            shutil.copyfile(ctx.hosts_file, hosts_file)
        except OSError:
            hosts_file.write_text("", encoding="utf-8")
        yield LabState(state_dir), hosts_file


def _serving(
    domain: str, *, expected_ip: str | None, expected_backends: frozenset[str], **_: object
) -> DomainCheck:
    """What `up` waits for, reported as reached: the plan sends no request."""
    resolved = (expected_ip,) if expected_ip else ()
    return DomainCheck(domain, expected_ip, resolved, (200,), expected_backends, expected_backends)


def _answering(ip: str, port: int, host: str, **_: object) -> HttpAnswer:
    return HttpAnswer(200, None)


def _planned_vms(ctx: LabContext, engine: RecordingEngine, notes: list[str]) -> list[PlannedVm]:
    lab = ctx.lab
    actions: dict[str, str] = {}
    try:
        ownership = classify_instances(ctx, engine.found())
    except EngineError as exc:
        notes.append(f"could not ask the engine what exists ({exc.message})")
    else:
        for vm_name, inst in ownership.ours.items():
            actions[vm_name] = {
                State.STOPPED: "start",
                State.DELETED: "recover",
                State.BROKEN: "rebuild",
            }.get(inst.state, "keep")
        for vm_name, inst in ownership.foreign.items():
            actions[vm_name] = "refuse"
            notes.append(f"{inst.name} exists and is not this lab's: up would refuse")
    return [
        PlannedVm(
            vm.name,
            ctx.instance(vm),
            list(vm.roles),
            lab.cpus_of(vm),
            lab.memory_of(vm),
            lab.disk_of(vm),
            actions.get(vm.name, "launch"),
        )
        for vm in lab.vms
    ]


def _early_note(ctx: LabContext, vms: list[PlannedVm]) -> str:
    slotted = [p.vm for p in vms if p.action in ("launch", "start", "recover")]
    if len(slotted) <= ctx.options.max_parallel:
        return "every VM takes its baseline snapshot once the lab first serves"
    order = lpt_order(ctx.lab, [vm for vm in ctx.lab.vms if vm.name in slotted])
    early = [vm.name for vm in order[: len(order) - ctx.options.max_parallel]]
    return (
        f"{len(slotted)} VMs take launch slots, at most {ctx.options.max_parallel} at once: a VM "
        "done while others still wait for a slot stops, takes its baseline snapshot and starts "
        f"again right away (likely {', '.join(early)})"
    )


# --- from the journal to steps ------------------------------------------------------------------


_OP_RANK: Final = {"version": 0, "list": 1}  # steps asked at once are shown in this order


@dataclass(frozen=True)
class _Item:
    seq: int
    op: str
    thread: str
    stage: str
    what: str
    argv: list[str] | None
    max_seconds: float | None
    instances: tuple[str, ...] = ()


def _steps(
    ctx: LabContext, journal: Journal, engine: RecordingEngine, hosts_file: Path
) -> list[PlanStep]:
    """Steps in the order `up` ran them. Calls from the VMs' own threads that ran side by side
    are grouped by stage (same order number = concurrent); the others each take a number."""
    items = [_call_item(ctx, call, journal) for call in journal.calls]
    items += _host_items(ctx, journal, engine, hosts_file)
    items.sort(key=lambda item: item.seq)
    groups: list[list[_Item]] = []
    run: dict[str, list[_Item]] = {}  # stage -> group, within a run of side-by-side threads
    for item in items:
        side_by_side = item.thread != _MAIN
        previous = groups[-1][-1] if groups else None
        if side_by_side and item.stage in run:
            run[item.stage].append(item)
            continue
        if previous is not None and previous.stage == item.stage and previous.thread != item.thread:
            groups[-1].append(item)
        else:
            groups.append([item])
        if side_by_side:
            run[item.stage] = groups[-1]
        else:
            run = {}
    order = _instance_order(ctx)
    steps: list[PlanStep] = []
    for number, group in enumerate(groups, start=1):
        threads = {item.thread for item in group}
        for item in sorted(group, key=lambda i: (order(i.instances), _OP_RANK.get(i.op, 2), i.seq)):
            steps.append(
                PlanStep(
                    number,
                    item.what,
                    item.argv,
                    parallel=len(threads) > 1,
                    max_seconds=item.max_seconds,
                    stage=item.stage,
                )
            )
    return steps


def _call_item(ctx: LabContext, call: RecordedCall, journal: Journal) -> _Item:
    stage = _stage_before(journal, call.seq, call.thread)
    what = _describe(ctx, call)
    return _Item(
        call.seq, call.op, call.thread, stage, what, list(call.argv), call.timeout, call.instances
    )


def _stage_before(journal: Journal, seq: int, thread: str) -> str:
    """The stage `up` showed for this thread just before `seq`; any thread's when it showed none
    (a helper thread that only lists)."""
    own = [e for s, t, e in journal.events if s < seq and t == thread and isinstance(e, Event)]
    if own:
        return own[-1].stage
    shown = [e for s, _, e in journal.events if s < seq and isinstance(e, Event)]
    return shown[-1].stage if shown else "preflight"


def _host_items(
    ctx: LabContext, journal: Journal, engine: RecordingEngine, hosts_file: Path
) -> list[_Item]:
    """The steps on this machine, from the events `up` showed: the hosts entry, the waits."""
    items: list[_Item] = []
    for seq, thread, event in journal.events:
        if not isinstance(event, Event):
            continue
        if event.stage == "hosts" and event.kind in ("done", "skip"):
            what = _unplaceholder(
                engine, event.message.replace(str(hosts_file), str(ctx.hosts_file))
            )
            items.append(_Item(seq, "hosts", thread, "hosts", what, None, None))
        elif event.stage == "serve" and event.kind == "start":
            what = f"{event.message} (waits.serve)"
            items.append(_Item(seq, "serve", thread, "serve", what, None, ctx.lab.waits.serve))
    return items


def _unplaceholder(engine: RecordingEngine, text: str) -> str:
    """The recording's stand-in addresses shown as what they stand for: `<lab-lb's address>`."""

    def shown(match: re.Match[str]) -> str:
        name = engine.placeholder(match[0])
        return f"<{name}'s address>" if name else match[0]

    return _PLACEHOLDER_RE.sub(shown, text)


def _describe(ctx: LabContext, call: RecordedCall) -> str:
    names = ", ".join(call.instances)
    vm_of = {ctx.instance(vm): vm.name for vm in ctx.lab.vms}
    if call.op == "version":
        return f"check that {ctx.engine.capabilities.display_name} answers"
    if call.op == "list":
        return "list instances (and their addresses)"
    if call.op == "launch":
        vm = vm_of.get(names, names)
        wait = "; it returns once cloud-init finished" if _waits(ctx) else ""
        return f"launch {names} (user-data on stdin: labctl render {vm}{wait}; waits.launch)"
    if call.op == "exec":
        command = list(call.command)
        if command == CLOUD_INIT_WAIT_COMMAND:
            return f"wait for cloud-init on {names} (waits.cloud_init)"
        if command == LB_APPLY_COMMAND:
            return f"point nginx on {names} at the app VMs (nginx -t, then reload; site on stdin)"
        return f"run {' '.join(command) or 'a command'} in {names}"
    if call.op in ("snapshot", "restore", "delete-snapshot"):
        return f"{call.op} {names}"
    if call.op == "prepare":
        return "prepare the lab's own project (restricted; its default profile: root disk, NIC)"
    return f"{call.op} {names}"


def _waits(ctx: LabContext) -> bool:
    return ctx.engine.capabilities.launch_waits_for_cloud_init


def _instance_order(ctx: LabContext) -> Callable[[Sequence[str]], int]:
    names = [ctx.instance(vm) for vm in ctx.lab.vms]

    def position(instances: Sequence[str]) -> int:
        found = [names.index(name) for name in instances if name in names]
        return min(found, default=len(names))

    return position
