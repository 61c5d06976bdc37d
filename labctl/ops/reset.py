"""`labctl reset [VM...] [--rebuild]`: put VMs back to how `up` left them.

Where a VM has the `baseline` snapshot, it is restored (stopped first and started after where
the engine needs that); otherwise (or with --rebuild, or when the engine lost track of it) it is
deleted and launched again.
Then the LB and hosts entry are re-synced and `reset` waits until the domain serves through every
backend. Only the VMs being reset are stopped, so resetting one app VM leaves the others serving
(nginx routes around the stopped one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labctl.engine.base import State
from labctl.errors import ConfigError, EngineError, ForeignInstanceError, LabctlError
from labctl.model import Vm
from labctl.ops.bringup import bring_up_vms
from labctl.ops.context import LabContext, classify_instances
from labctl.ops.failures import StageFailure
from labctl.ops.snapshot import BASELINE, SnapshotOutcome, cycle, save
from labctl.ops.stage import record_stage
from labctl.ops.wire import Wiring, wire_and_wait


@dataclass(frozen=True)
class VmReset:
    vm: str
    instance: str
    how: str  # restored | rebuilt
    why: str = ""  # why rebuilt rather than restored


@dataclass(frozen=True)
class ResetResult:
    lab: str
    domain: str
    vms: list[VmReset] = field(default_factory=list)
    failures: list[StageFailure] = field(default_factory=list)
    wiring: Wiring | None = None
    baseline: str = ""  # retaken: baseline snapshot taken again for rebuilt VMs
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.wiring is not None and self.wiring.ok


def choose_vms(ctx: LabContext, names: list[str] | None) -> list[Vm]:
    if not names:
        return list(ctx.lab.vms)
    chosen: list[Vm] = []
    for name in names:
        vm = ctx.lab.vm(name)
        if vm is None:
            known = ", ".join(v.name for v in ctx.lab.vms)
            raise ConfigError([f"no VM named {name!r} in lab {ctx.lab.name!r} (VMs: {known})"])
        if vm not in chosen:
            chosen.append(vm)
    return chosen


def reset(ctx: LabContext, vms: list[str] | None = None, *, rebuild: bool = False) -> ResetResult:
    targets = choose_vms(ctx, vms)
    with ctx.locked("reset"):
        if ctx.options.stage:
            record_stage(ctx)
        elif ctx.stage_note:
            ctx.emit("stage", "info", ctx.stage_note)
        return _reset(ctx, targets, rebuild)


def _reset(ctx: LabContext, targets: list[Vm], rebuild: bool) -> ResetResult:
    started = time.monotonic()
    lab, engine = ctx.lab, ctx.engine
    engine.ready()
    ownership = classify_instances(ctx, engine.list())
    foreign = [ownership.foreign[vm.name].name for vm in targets if vm.name in ownership.foreign]
    if foreign:
        raise ForeignInstanceError(
            f"{', '.join(foreign)}: not lab {lab.name!r}'s instance(s); nothing was reset",
            hint="labctl never touches instances it did not create.",
        )
    if not ownership.ours:  # as `snapshot save`: refuse rather than half-launch a lab
        raise LabctlError(
            f"lab {lab.name!r} is not up (none of its VMs exist); nothing was reset",
            hint="Run `labctl up` first.",
        )
    have: set[tuple[str, str]] = set()
    why_not = "--rebuild"
    if not rebuild:
        reason = engine.snapshots_unavailable()
        if reason:
            why_not = reason
        else:
            try:
                have = {(s.instance, s.name) for s in engine.list_snapshots()}
            except EngineError as exc:
                why_not = exc.message
            else:
                why_not = "no baseline snapshot"
    to_restore: list[Vm] = []
    to_rebuild: list[tuple[Vm, str]] = []
    for vm in targets:
        inst = ownership.ours.get(vm.name)
        if inst is None:
            to_rebuild.append((vm, "missing"))
        elif inst.state is State.BROKEN:
            to_rebuild.append((vm, f"state {inst.shown_state}"))
        elif (inst.name, BASELINE) in have:
            to_restore.append(vm)
        else:
            to_rebuild.append((vm, why_not))
    done: list[VmReset] = []
    failures: list[StageFailure] = []
    if to_restore:
        outcome = _restore(ctx, to_restore)
        instances = {vm.name: ctx.instance(vm) for vm in to_restore}
        done += [VmReset(vm, instances[vm], "restored") for vm in outcome.done]
        failures += [StageFailure("restore", why, vm=vm) for vm, why in outcome.failed.items()]
    if to_rebuild:
        rebuilt, problems = _rebuild(ctx, to_rebuild)
        done += rebuilt
        failures += problems
    if failures:
        return ResetResult(lab.name, lab.domain, done, failures, seconds=time.monotonic() - started)
    wiring = wire_and_wait(ctx)
    result = ResetResult(lab.name, lab.domain, done, list(wiring.failures), wiring)
    rebuilt_vms = [vm for vm, _ in to_rebuild]
    if (
        wiring.ok
        and rebuilt_vms
        and lab.snapshots.baseline
        and BASELINE in ctx.lab_state.snapshots()
    ):
        # The rebuilt instances are new: give them the baseline the others have.
        ctx.emit(
            "baseline", "start", f"baseline snapshot of {', '.join(v.name for v in rebuilt_vms)}"
        )
        again = save(ctx, BASELINE, vms=rebuilt_vms)
        failures = [StageFailure("baseline", why, vm=vm) for vm, why in again.failed.items()]
        wiring = again.wiring or wiring
        result = ResetResult(
            lab.name, lab.domain, done, failures + list(wiring.failures), wiring, "retaken"
        )
    return ResetResult(
        result.lab,
        result.domain,
        result.vms,
        result.failures,
        result.wiring,
        result.baseline,
        time.monotonic() - started,
    )


def _restore(ctx: LabContext, vms: list[Vm]) -> SnapshotOutcome:
    """Restore only these VMs' baseline (stopped and started where needed; wiring comes after)."""

    def back(instance: str) -> None:
        ctx.engine.restore(instance, BASELINE)

    return cycle(ctx, vms, BASELINE, "restore", back, stage="reset", wire=False)


def _rebuild(
    ctx: LabContext, vms: list[tuple[Vm, str]]
) -> tuple[list[VmReset], list[StageFailure]]:
    names = [ctx.instance(vm) for vm, _ in vms]
    ctx.emit("reset", "start", f"purging {', '.join(names)} to launch them again")
    try:
        ctx.engine.delete(names)  # missing ones are fine
    except LabctlError as exc:
        return [], [StageFailure("delete", exc.message, hint=exc.hint)]
    for vm, _ in vms:
        ctx.lab_state.forget_snapshot_vm(BASELINE, vm.name)
    outcomes, failures = bring_up_vms(ctx, [vm for vm, _ in vms], {})
    why = {vm.name: reason for vm, reason in vms}
    return [VmReset(o.vm, o.instance, "rebuilt", why[o.vm]) for o in outcomes], failures
