"""`labctl snapshot save|list|restore|delete NAME`: whole-lab snapshots with a manifest.

Multipass snapshots only stopped instances (multipass.md §2.8), so save and restore stop the VMs,
act on each, start them again, re-sync the LB and hosts entry with the (maybe new) IPs, and wait
until the domain serves. The manifest (`snapshots.json` in the lab's state dir) records the name,
the time, lab.yaml's digest and which VMs have the snapshot; Multipass itself stays the truth for
what exists (`list --snapshots`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from labctl.errors import ConfigError, ForeignInstanceError, LabctlError, MultipassError
from labctl.model import Vm
from labctl.multipass.adapter import (
    OPERATION_TIMEOUT,
    SNAPSHOT_MIN_VERSION,
    SnapshotsUnsupportedError,
    VersionInfo,
)
from labctl.ops.context import LabContext, classify_instances, require_daemon
from labctl.ops.wire import Wiring, wire_and_wait
from labctl.scalars import NAME_RE

BASELINE: Final = "baseline"
_NO_SNAPSHOT_DRIVERS: Final = ("lxd", "libvirt")


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

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_tried and (self.wiring is None or self.wiring.ok)


@dataclass(frozen=True)
class SnapshotEntry:
    name: str
    created: str
    lab_digest: str
    vms: dict[str, str]  # vm -> instance, per the manifest
    present: list[str]  # VMs that have it in Multipass right now (None-safe: [] if unknown)
    missing: list[str]  # lab VMs without it
    config_changed: bool  # lab.yaml differs from when it was taken


@dataclass(frozen=True)
class SnapshotList:
    lab: str
    entries: list[SnapshotEntry]
    unrecorded: list[str] = field(default_factory=list)  # "vm.snapshot" Multipass has, not recorded
    note: str = ""  # why Multipass could not be asked, if it could not


class SnapshotsUnavailableError(MultipassError):
    """This Multipass cannot take snapshots (too old, or a driver without them)."""


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ConfigError(
            [
                f"snapshot name {name!r} is not valid: use letters, digits and hyphens, start with "
                "a letter and end with a letter or digit (Multipass's instance name rule)"
            ]
        )


def unavailable_reason(ctx: LabContext, info: VersionInfo | None = None) -> str | None:
    """Why this Multipass cannot snapshot (version, driver), or None when it can."""
    info = info or ctx.multipass.version()
    found = info.daemon_tuple()
    if found is not None and found < SNAPSHOT_MIN_VERSION:
        wanted = ".".join(map(str, SNAPSHOT_MIN_VERSION))
        return f"Multipass {info.daemon} has no snapshots (they need {wanted} or newer)"
    try:
        driver = ctx.multipass.get("local.driver")
    except MultipassError:
        return None  # unknown: the snapshot call itself will tell
    if driver in _NO_SNAPSHOT_DRIVERS:
        return f"the {driver} driver cannot take snapshots (multipass #3328)"
    return None


def _require_support(ctx: LabContext) -> None:
    info = ctx.multipass.version()
    require_daemon(ctx.multipass, info)
    reason = unavailable_reason(ctx, info)
    if reason:
        raise SnapshotsUnavailableError(
            f"{reason}; nothing was changed",
            hint="Upgrade Multipass (sudo snap refresh multipass; brew upgrade multipass) or use the "
            "qemu driver (multipass set local.driver=qemu). `labctl reset --rebuild` works without.",
        )


def _lab_instances(ctx: LabContext, vms: list[Vm]) -> dict[str, str]:
    """vm -> instance for `vms`, refusing (nothing done) when one is missing or not this lab's."""
    ownership = classify_instances(ctx, ctx.multipass.list())
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
    return {(snap.instance, snap.name) for snap in ctx.multipass.list_snapshots()}


def cycle(
    ctx: LabContext,
    vms: list[Vm],
    name: str,
    action: str,
    each: Callable[[str], None],
    *,
    stage: str = "snapshot",
    manage_hosts: bool | None = None,
    wire: bool = True,
) -> SnapshotOutcome:
    """Stop `vms`, run `each(instance)` on every one, start them again (always), re-wire, wait.

    A failing VM does not stop the others; a driver without snapshots stops at the first VM.
    Only `vms` are stopped: the LB routes around a stopped app VM, so the others keep serving.
    """
    started = time.monotonic()
    mp, lab = ctx.multipass, ctx.lab
    names = [ctx.instance(vm) for vm in vms]
    done: list[str] = []
    failed: dict[str, str] = {}
    not_tried: list[str] = []
    try:
        ctx.emit(stage, "start", f"stopping {', '.join(names)}")
        mp.stop(names, timeout=OPERATION_TIMEOUT)
        for index, vm in enumerate(vms):
            try:
                each(ctx.instance(vm))
            except SnapshotsUnsupportedError as exc:
                failed[vm.name] = exc.message
                not_tried = [other.name for other in vms[index + 1 :]]
                ctx.emit(stage, "fail", exc.message, vm=vm.name)
                break
            except MultipassError as exc:
                failed[vm.name] = exc.message
                ctx.emit(stage, "fail", exc.message, vm=vm.name)
                continue
            done.append(vm.name)
            verb = {"save": "took", "restore": "restored"}.get(action, action)
            ctx.emit(stage, "done", f"{verb} {name}", vm=vm.name)
    finally:  # also on Ctrl-C: never leave the lab stopped
        ctx.emit(stage, "start", f"starting {', '.join(names)}")
        mp.start(names, timeout=lab.waits.launch)
    wiring = wire_and_wait(ctx, manage_hosts=manage_hosts) if wire else None
    return SnapshotOutcome(
        lab.name, name, action, done, failed, not_tried, wiring, time.monotonic() - started
    )


def save(
    ctx: LabContext,
    name: str,
    *,
    vms: list[Vm] | None = None,
    manage_hosts: bool | None = None,
    supported: bool = False,
) -> SnapshotOutcome:
    """Snapshot every VM (or `vms`) as `name`; the lab ends running and serving. `supported`:
    the caller has just asked whether this Multipass can (take_baseline)."""
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
            ctx.multipass.snapshot(instance, name, comment=f"labctl lab {ctx.lab.name}")

        outcome = cycle(ctx, targets, name, "save", take, manage_hosts=manage_hosts)
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


def restore(
    ctx: LabContext,
    name: str,
    *,
    vms: list[Vm] | None = None,
    manage_hosts: bool | None = None,
) -> SnapshotOutcome:
    """Restore every VM (or `vms`) to `name` (`--destructive`); the lab ends running and serving."""
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
            ctx.multipass.restore(instance, name)

        return cycle(ctx, targets, name, "restore", back, manage_hosts=manage_hosts)


def delete(ctx: LabContext, name: str) -> SnapshotOutcome:
    """Delete `name` from every VM that has it (snapshots can only be purged) and the manifest."""
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
                ctx.multipass.delete_snapshot(ctx.instance(vm), name)
                done.append(vm.name)
                ctx.emit("snapshot", "done", f"deleted {name}", vm=vm.name)
            except MultipassError as exc:
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
    """The manifest, checked against `multipass list --snapshots` when Multipass can answer."""
    manifest = ctx.lab_state.snapshots()
    note = ""
    have: set[tuple[str, str]] | None
    try:
        require_daemon(ctx.multipass)
        reason = unavailable_reason(ctx)
        have = None if reason else _have(ctx)
        note = reason or ""
    except MultipassError as exc:
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


def take_baseline(
    ctx: LabContext, *, manage_hosts: bool | None = None, early: list[str] | None = None
) -> tuple[str, SnapshotOutcome | None]:
    """After a healthy up: the `baseline` snapshot of every VM that has none yet (the ones that
    took theirs while others launched are `early`). Skipped (an event) when unavailable."""
    if not ctx.lab.snapshots.baseline:
        return "off", None
    have = ctx.lab_state.snapshots().get(BASELINE, {}).get("vms", {})
    missing = [vm for vm in ctx.lab.vms if vm.name not in have]
    if not missing and early:
        ctx.emit(
            "baseline", "done", f"baseline snapshot of {len(early)} VM(s), while others launched"
        )
        return "taken", None
    if not missing:
        return "exists", None
    skipped = ctx.lab_state.note("baseline_skipped")
    if skipped:
        ctx.emit("baseline", "skip", f"no baseline snapshot: {skipped}")
        return f"skipped: {skipped}", None
    reason = unavailable_reason(ctx)
    if reason:
        ctx.lab_state.set_note("baseline_skipped", reason)
        ctx.emit("baseline", "skip", f"no baseline snapshot: {reason}")
        return f"skipped: {reason}", None
    which = "the lab" if len(missing) == len(ctx.lab.vms) else ", ".join(vm.name for vm in missing)
    ctx.emit("baseline", "start", f"stopping {which} to take the baseline snapshot")
    outcome = save(ctx, BASELINE, vms=missing, manage_hosts=manage_hosts, supported=True)
    unsupported = [why for why in outcome.failed.values() if "cannot take snapshots" in why]
    if unsupported and not outcome.done:
        ctx.lab_state.set_note("baseline_skipped", unsupported[0])
        ctx.emit("baseline", "skip", f"no baseline snapshot: {unsupported[0]}")
        return f"skipped: {unsupported[0]}", outcome
    if outcome.failed or outcome.not_tried:
        return "partial", outcome
    total = len(outcome.done) + len(early or [])
    ctx.emit("baseline", "done", f"baseline snapshot of {total} VM(s)")
    return "taken", outcome


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
