"""`labctl snapshot save|list|restore|delete NAME`: whole-lab snapshots with a manifest.

Where the engine snapshots only stopped instances (Multipass), save and restore stop the VMs, act
on each, and start them again; elsewhere (LXD) they act on the running instances. Either way the
LB and hosts entry are re-synced with the (maybe new) addresses and the domain is waited on. The
manifest (`snapshots.json` in the lab's state dir) records the name, the time, lab.yaml's digest
and which VMs have the snapshot; the engine itself stays the truth for what exists.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from labctl.engine.base import OPERATION_TIMEOUT
from labctl.errors import (
    ConfigError,
    EngineError,
    ForeignInstanceError,
    LabctlError,
    SnapshotsUnsupportedError,
)
from labctl.model import Vm
from labctl.ops.context import LabContext, classify_instances
from labctl.ops.wire import Wiring, wire_and_wait
from labctl.render.userdata import CLOUD_INIT_WAIT_COMMAND
from labctl.scalars import NAME_RE

BASELINE: Final = "baseline"


@dataclass(frozen=True)
class SnapshotOutcome:
    """What save/restore/delete did, VM by VM (lab VM names), and whether the lab serves again."""

    lab: str
    name: str
    action: str  # save | restore | delete
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # vm -> why
    not_tried: list[str] = field(default_factory=list)
    wiring: Wiring | None = None
    seconds: float = 0.0
    unsupported: str = ""  # why the engine cannot snapshot, when a call said so

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_tried and (self.wiring is None or self.wiring.ok)


@dataclass(frozen=True)
class SnapshotEntry:
    name: str
    created: str
    lab_digest: str
    vms: dict[str, str]  # vm -> instance, per the manifest
    present: list[str]  # VMs that have it in the engine right now (None-safe: [] if unknown)
    missing: list[str]  # lab VMs without it
    config_changed: bool  # lab.yaml differs from when it was taken


@dataclass(frozen=True)
class SnapshotList:
    lab: str
    entries: list[SnapshotEntry]
    unrecorded: list[str] = field(default_factory=list)  # "vm.snapshot" the engine has, unrecorded
    note: str = ""  # why the engine could not be asked, if it could not


class SnapshotsUnavailableError(EngineError):
    """This engine cannot take snapshots here (its version, driver or storage)."""


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ConfigError(
            [
                f"snapshot name {name!r} is not valid: use letters, digits and hyphens, start with "
                "a letter and end with a letter or digit (the instance name rule)"
            ]
        )


def _require_support(ctx: LabContext) -> None:
    ctx.engine.ready()
    reason = ctx.engine.snapshots_unavailable()
    if reason:
        raise SnapshotsUnavailableError(
            f"{reason}; nothing was changed",
            hint="`labctl reset --rebuild` works without snapshots; `labctl doctor` says what "
            "this engine needs for them.",
        )


def _lab_instances(ctx: LabContext, vms: list[Vm]) -> dict[str, str]:
    """vm -> instance for `vms`, refusing (nothing done) when one is missing or not this lab's."""
    ownership = classify_instances(ctx, ctx.engine.list())
    foreign = [ownership.foreign[vm.name].name for vm in vms if vm.name in ownership.foreign]
    if foreign:
        raise ForeignInstanceError(
            f"{', '.join(foreign)} exist(s) but not as lab {ctx.lab.name!r}'s; nothing was changed",
            hint="labctl never touches instances it did not create.",
        )
    missing = [vm.name for vm in vms if vm.name in ownership.missing]
    if missing:
        raise LabctlError(
            f"lab {ctx.lab.name!r} is not complete ({', '.join(missing)} missing); nothing was changed",
            hint="Run `labctl up` first.",
        )
    return {vm.name: ctx.instance(vm) for vm in vms}


def _have(ctx: LabContext) -> set[tuple[str, str]]:
    return {(snap.instance, snap.name) for snap in ctx.engine.list_snapshots()}


def cycle(
    ctx: LabContext,
    vms: list[Vm],
    name: str,
    action: str,
    each: Callable[[str], None],
    *,
    stage: str = "snapshot",
    wire: bool = True,
) -> SnapshotOutcome:
    """Run `each(instance)` on every one of `vms` (stopped first and started again after, always,
    where the engine needs that), then re-wire and wait.

    A failing VM does not stop the others; an engine without snapshots stops at the first VM.
    Only `vms` are stopped: the LB routes around a stopped app VM, so the others keep serving.
    """
    started = time.monotonic()
    engine, lab = ctx.engine, ctx.lab
    names = [ctx.instance(vm) for vm in vms]
    stops = engine.capabilities.snapshot_needs_stop
    done: list[str] = []
    failed: dict[str, str] = {}
    not_tried: list[str] = []
    unsupported = ""
    try:
        if stops:
            ctx.emit(stage, "start", f"stopping {', '.join(names)}")
            engine.stop(names, timeout=OPERATION_TIMEOUT)
        for index, vm in enumerate(vms):
            try:
                each(ctx.instance(vm))
            except SnapshotsUnsupportedError as exc:
                failed[vm.name] = unsupported = exc.message
                not_tried = [other.name for other in vms[index + 1 :]]
                ctx.emit(stage, "fail", exc.message, vm=vm.name)
                break
            except EngineError as exc:
                failed[vm.name] = exc.message
                ctx.emit(stage, "fail", exc.message, vm=vm.name)
                continue
            done.append(vm.name)
            verb = {"save": "took", "restore": "restored"}.get(action, action)
            ctx.emit(stage, "done", f"{verb} {name}", vm=vm.name)
    finally:  # also on Ctrl-C: never leave the lab stopped
        if stops:
            ctx.emit(stage, "start", f"starting {', '.join(names)}")
            engine.start(names, timeout=lab.waits.launch)
    if action == "restore":
        _wait_booted(ctx, [vm for vm in vms if vm.name in done])
    wiring = wire_and_wait(ctx) if wire else None
    return SnapshotOutcome(
        lab.name,
        name,
        action,
        done,
        failed,
        not_tried,
        wiring,
        time.monotonic() - started,
        unsupported,
    )


def save(
    ctx: LabContext,
    name: str,
    *,
    vms: list[Vm] | None = None,
    supported: bool = False,
) -> SnapshotOutcome:
    """Snapshot every VM (or `vms`) as `name`; the lab ends running and serving. `supported`:
    the caller has just asked whether this engine can (take_baseline)."""
    validate_name(name)
    targets = list(vms or ctx.lab.vms)
    with ctx.locked(f"snapshot save {name}"):
        if not supported:
            _require_support(ctx)
        instances = _lab_instances(ctx, targets)
        have = _have(ctx)
        already = sorted(vm for vm, inst in instances.items() if (inst, name) in have)
        if already:
            raise ConfigError(
                [
                    f"snapshot {name!r} already exists on {', '.join(already)}; nothing was changed "
                    f"(delete it first: labctl snapshot delete {name})"
                ]
            )

        def take(instance: str) -> None:
            ctx.engine.snapshot(instance, name, comment=f"labctl lab {ctx.lab.name}")

        outcome = cycle(ctx, targets, name, "save", take)
        if outcome.done:
            previous = ctx.lab_state.snapshots().get(name, {})
            vms_done = {**previous.get("vms", {}), **{vm: instances[vm] for vm in outcome.done}}
            ctx.lab_state.record_snapshot(
                name,
                {
                    "name": name,
                    "created": previous.get("created") or now_utc(),
                    "lab_digest": ctx.lab_file.digest,
                    "vms": vms_done,
                },
            )
        return outcome


def _wait_booted(ctx: LabContext, vms: list[Vm]) -> None:
    """A restored instance boots again (LXD restarts a running one; Multipass's are started):
    wait for that boot's cloud-init, or `status` right after reports it still running. What
    it ends with is `status`'s to report, not a restore failure."""
    for vm in vms:
        try:
            ctx.engine.exec(
                ctx.instance(vm), CLOUD_INIT_WAIT_COMMAND, timeout=ctx.lab.waits.cloud_init
            )
        except EngineError:
            continue


def restore(
    ctx: LabContext,
    name: str,
    *,
    vms: list[Vm] | None = None,
) -> SnapshotOutcome:
    """Restore every VM (or `vms`) to `name`, discarding their current state; the lab ends
    running and serving."""
    validate_name(name)
    targets = list(vms or ctx.lab.vms)
    with ctx.locked(f"snapshot restore {name}"):
        _require_support(ctx)
        instances = _lab_instances(ctx, targets)
        have = _have(ctx)
        lacking = sorted(vm for vm, inst in instances.items() if (inst, name) not in have)
        if len(lacking) == len(targets):
            known = sorted({snap for _, snap in have} | set(ctx.lab_state.snapshots()))
            raise ConfigError(
                [
                    f"no snapshot named {name!r} in lab {ctx.lab.name!r} (snapshots: "
                    f"{', '.join(known) or 'none'})"
                ]
            )
        if lacking:
            raise LabctlError(
                f"no snapshot {name!r} on {', '.join(lacking)} (rebuilt since?); nothing was restored",
                hint=f"Restore the others with `labctl reset VM...`, or rebuild with "
                f"`labctl reset {' '.join(lacking)} --rebuild`.",
            )

        def back(instance: str) -> None:
            ctx.engine.restore(instance, name)

        return cycle(ctx, targets, name, "restore", back)


def delete(ctx: LabContext, name: str) -> SnapshotOutcome:
    """Delete `name` from every VM that has it, for good, and from the manifest."""
    validate_name(name)
    started = time.monotonic()
    with ctx.locked(f"snapshot delete {name}"):
        _require_support(ctx)
        have = _have(ctx)
        holders = [vm for vm in ctx.lab.vms if (ctx.instance(vm), name) in have]
        if not holders and name not in ctx.lab_state.snapshots():
            raise ConfigError([f"no snapshot named {name!r} in lab {ctx.lab.name!r}"])
        done: list[str] = []
        failed: dict[str, str] = {}
        for vm in holders:
            try:
                ctx.engine.delete_snapshot(ctx.instance(vm), name)
                done.append(vm.name)
                ctx.emit("snapshot", "done", f"deleted {name}", vm=vm.name)
            except EngineError as exc:
                failed[vm.name] = exc.message
        if failed:
            entry = ctx.lab_state.snapshots().get(name)
            if entry:
                kept = {vm: inst for vm, inst in entry.get("vms", {}).items() if vm in failed}
                ctx.lab_state.record_snapshot(name, {**entry, "vms": kept})
        else:
            ctx.lab_state.forget_snapshot(name)
        return SnapshotOutcome(
            ctx.lab.name, name, "delete", done, failed, seconds=time.monotonic() - started
        )


def list_snapshots(ctx: LabContext) -> SnapshotList:
    """The manifest, checked against the engine's own list of snapshots when it can answer."""
    manifest = ctx.lab_state.snapshots()
    note = ""
    have: set[tuple[str, str]] | None
    try:
        ctx.engine.ready()
        reason = ctx.engine.snapshots_unavailable()
        have = None if reason else _have(ctx)
        note = reason or ""
    except EngineError as exc:
        have, note = None, exc.message
    ours = {ctx.instance(vm): vm.name for vm in ctx.lab.vms}
    entries = []
    for name, raw in sorted(manifest.items(), key=lambda kv: str(kv[1].get("created", ""))):
        recorded: dict[str, Any] = raw.get("vms", {})
        if have is None:
            present = sorted(recorded)
        else:
            present = [vm.name for vm in ctx.lab.vms if (ctx.instance(vm), name) in have]
        entries.append(
            SnapshotEntry(
                name,
                str(raw.get("created", "")),
                str(raw.get("lab_digest", "")),
                {str(k): str(v) for k, v in recorded.items()},
                present,
                [vm.name for vm in ctx.lab.vms if vm.name not in present],
                raw.get("lab_digest") != ctx.lab_file.digest,
            )
        )
    unrecorded = sorted(
        f"{ours[inst]}.{snap}"
        for inst, snap in (have or set())
        if inst in ours and snap not in manifest
    )
    return SnapshotList(ctx.lab.name, entries, unrecorded, note)


class BaselineSupport:
    """Why this lab cannot take its baseline (None: it can), asked of the engine once per `up`
    (version, driver) by whichever comes first: a VM's early baseline or take_baseline.

    A reason is kept in the lab's notes ("baseline_skipped"), so a later `up` does not ask again.
    """

    def __init__(self, ctx: LabContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._checked = False
        self._why_not: str | None = None

    def why_not(self) -> str | None:
        with self._lock:
            if not self._checked:
                state = self.ctx.lab_state
                self._why_not = (
                    state.note("baseline_skipped") or self.ctx.engine.snapshots_unavailable()
                )
                if self._why_not:
                    state.set_note("baseline_skipped", self._why_not)
                self._checked = True
            return self._why_not

    def refuse(self, why: str) -> None:
        """A snapshot call said this engine has none: never try again."""
        with self._lock:
            self._checked, self._why_not = True, why
        self.ctx.lab_state.set_note("baseline_skipped", why)


def take_baseline(
    ctx: LabContext,
    *,
    early: list[str] | None = None,
    support: BaselineSupport | None = None,
) -> tuple[str, SnapshotOutcome | None]:
    """After a healthy up: the `baseline` snapshot of every VM that has none yet (the ones that
    took theirs while others launched are `early`). Skipped (an event) when unavailable."""
    if not ctx.lab.snapshots.baseline:
        return "off", None
    have = ctx.lab_state.snapshot_vms(BASELINE)
    missing = [vm for vm in ctx.lab.vms if vm.name not in have]
    if not missing and early:
        ctx.emit(
            "baseline", "done", f"baseline snapshot of {len(early)} VM(s), while others launched"
        )
        return "taken", None
    if not missing:
        return "exists", None
    support = support or BaselineSupport(ctx)
    why_not = support.why_not()
    if why_not:
        ctx.emit("baseline", "skip", f"no baseline snapshot: {why_not}")
        return f"skipped: {why_not}", None
    which = "the lab" if len(missing) == len(ctx.lab.vms) else ", ".join(vm.name for vm in missing)
    if ctx.engine.capabilities.snapshot_needs_stop:
        ctx.emit("baseline", "start", f"stopping {which} to take the baseline snapshot")
    else:
        ctx.emit("baseline", "start", f"taking the baseline snapshot of {which}")
    outcome = save(ctx, BASELINE, vms=missing, supported=True)
    if outcome.unsupported and not outcome.done:
        support.refuse(outcome.unsupported)
        ctx.emit("baseline", "skip", f"no baseline snapshot: {outcome.unsupported}")
        return f"skipped: {outcome.unsupported}", outcome
    if outcome.failed or outcome.not_tried:
        return "partial", outcome
    total = len(outcome.done) + len(early or [])
    ctx.emit("baseline", "done", f"baseline snapshot of {total} VM(s)")
    return "taken", outcome


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
