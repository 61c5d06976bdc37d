"""`labctl up`: launch what is missing, wait for cloud-init, wire the LB, the hosts entry, and
return only when the domain serves through every backend.

Every VM runs its own pipeline (ops/bringup.py: launch or start, cloud-init, and an early
baseline snapshot where it costs nothing); then the LB is wired and the domain waited on; then the
VMs still without a baseline snapshot take it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from labctl.engine.base import Instance, State
from labctl.errors import EngineError, ForeignInstanceError, LabctlError
from labctl.host.probes import DomainCheck
from labctl.ops.archive import app_archive
from labctl.ops.bringup import EarlyBaseline, VmOutcome, bring_up_vms
from labctl.ops.context import LabContext, classify_instances
from labctl.ops.doctor import preflight
from labctl.ops.failures import StageFailure
from labctl.ops.member import one_member
from labctl.ops.snapshot import BaselineSupport, take_baseline
from labctl.ops.stage import left_to_student, record_stage
from labctl.ops.wire import HostsOutcome, wire_and_wait


@dataclass(frozen=True)
class UpResult:
    lab: str
    domain: str
    vms: list[VmOutcome] = field(default_factory=list)
    failures: list[StageFailure] = field(default_factory=list)
    lb_ip: str | None = None
    lb_config: str = ""  # applied | unchanged
    hosts: HostsOutcome | None = None
    check: DomainCheck | None = None
    backend_names: dict[str, str] = field(default_factory=dict)  # "ip:port" -> vm
    seconds: float = 0.0
    baseline: str = ""  # taken | exists | off | partial | skipped: why
    stage: str = "lb"  # the course stage brought up
    left: list[str] = field(default_factory=list)  # what that stage leaves to the student
    url: str = ""  # the site's URL (with the LB port when it is not 80)

    @property
    def ok(self) -> bool:
        return not self.failures


class UpInterruptedError(LabctlError):
    """Ctrl-C during up: nothing more is launched; the message says what exists."""

    exit_code = 130


def up(ctx: LabContext) -> UpResult:
    with ctx.locked("up"):
        if ctx.stage_note:
            ctx.emit("stage", "info", ctx.stage_note)
        try:
            return _up(ctx)
        except KeyboardInterrupt:
            raise _interrupted(ctx) from None


def _interrupted(ctx: LabContext) -> UpInterruptedError:
    try:
        by_name = {inst.name: inst for inst in ctx.engine.list()}
    except (LabctlError, KeyboardInterrupt):
        return UpInterruptedError(
            "interrupted; could not list what exists (the engine did not answer)",
            hint="Run `labctl status` to see the lab, `labctl up` to finish it.",
        )
    exists = [
        f"{ctx.instance(vm)} ({by_name[ctx.instance(vm)].shown_state})"
        for vm in ctx.lab.vms
        if ctx.instance(vm) in by_name
    ]
    absent = [ctx.instance(vm) for vm in ctx.lab.vms if ctx.instance(vm) not in by_name]
    unknown = [
        ctx.instance(vm)
        for vm in ctx.lab.vms
        if by_name.get(ctx.instance(vm)) and by_name[ctx.instance(vm)].state is State.BROKEN
    ]
    return UpInterruptedError(
        "interrupted; nothing more was launched. Exists: "
        + (", ".join(exists) or "nothing")
        + (f"; not launched: {', '.join(absent)}" if absent else ""),
        hint="Run `labctl up` again to finish (it keeps what exists and launches the rest), or "
        "`labctl down` to remove it all."
        + (
            f" A broken instance is rebuilt with `labctl reset VM --rebuild` ({', '.join(unknown)})."
            if unknown
            else ""
        ),
    )


def _up(ctx: LabContext) -> UpResult:
    started = time.monotonic()
    lab, engine = ctx.lab, ctx.engine
    # Bad input (an app too big for user-data) is refused before any engine call.
    archive = app_archive(ctx.lab_file)
    ctx.emit("preflight", "start", f"checking {engine.capabilities.name}")
    # Two independent questions to the daemon: asked at once, they cost one round trip.
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="preflight") as pool:
            instances = pool.submit(engine.list)
            version = engine.ready()
            ownership = classify_instances(ctx, instances.result())
    except EngineError as exc:  # the engine cannot take the lab: say that nothing happened yet
        exc.message = f"{exc.message}; up launched nothing and changed nothing"
        raise
    if ownership.foreign:
        names = ", ".join(
            f"{inst.name} ({inst.shown_state})" for inst in ownership.foreign.values()
        )
        raise ForeignInstanceError(
            f"instance name(s) already used by something that is not lab {lab.name!r}: {names}",
            hint="labctl never touches instances it did not create. Rename the lab (name: in "
            "lab.yaml) or remove those instances yourself.",
        )
    running = {name for name, inst in ownership.ours.items() if inst.state is State.RUNNING}
    preflight(
        ctx,
        [vm for vm in lab.vms if vm.name not in running],
        [vm for vm in lab.vms if vm.name in ownership.missing],
    )
    ctx.emit(
        "preflight",
        "done",
        f"{version}; {len(ownership.ours)} of {len(lab.vms)} {engine.capabilities.instance_noun}s "
        "exist",
    )
    try:  # after every refusal: what the engine needs before a launch (a student's project)
        prepared = engine.prepare()
    except EngineError as exc:
        exc.message = f"{exc.message}; up launched nothing"
        raise
    if prepared:
        ctx.emit("preflight", "info", prepared)
    if ctx.member is None and ctx.student is None and ownership.missing:  # a class places its own
        ctx.member = one_member(ctx.engine, ownership.ours)
        if ctx.member is not None:
            ctx.emit("preflight", "info", f"the lab goes on cluster member {ctx.member}")
    record_stage(ctx)
    # The LB's addresses are asked for as soon as no VM can stop again, while the last VM's
    # cloud-init is still being checked: one round trip less before the wiring.
    listings: list[Future[list[Instance]]] = []
    support = BaselineSupport(ctx)  # asked of the engine once, early baseline or after serving
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="listing") as lister:
        outcomes, failures = bring_up_vms(
            ctx,
            lab.vms,
            ownership.ours,
            archive=archive,
            baseline=EarlyBaseline(ctx, support),
            settled=lambda: listings.append(lister.submit(engine.list)),
        )
        listing = _result_or_none(listings)
    result = UpResult(
        lab.name, lab.domain, outcomes, failures, seconds=time.monotonic() - started, url=lab.url
    )
    result = replace(result, stage=lab.stage, left=left_to_student(lab))
    if failures:
        return result
    wiring = wire_and_wait(ctx, listing=listing)
    vms = [replace(o, ip=wiring.ips.get(o.vm)) for o in result.vms]
    result = replace(
        result,
        vms=vms,
        failures=wiring.failures,
        lb_ip=wiring.lb_ip,
        lb_config=wiring.lb_config,
        hosts=wiring.hosts,
        check=wiring.check,
        backend_names=wiring.backend_names,
    )
    if result.ok:
        early = [o.vm for o in outcomes if o.early_baseline]
        baseline, outcome = take_baseline(ctx, early=early, support=support)
        result = replace(result, baseline=baseline)
        if outcome is not None and outcome.wiring is not None and not outcome.wiring.ok:
            result = replace(result, failures=outcome.wiring.failures, check=outcome.wiring.check)
    return replace(result, seconds=time.monotonic() - started)


def _result_or_none(futures: list[Future[list[Instance]]]) -> list[Instance] | None:
    """The prefetched listing; None (the wiring lists again) when it was not taken or failed."""
    if not futures:
        return None
    try:
        return futures[0].result()
    except LabctlError:
        return None
