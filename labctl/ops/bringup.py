"""Each VM's own pipeline, for `up` and `reset --rebuild`: launch (or start) it, wait for its
cloud-init and, while other VMs of the lab still wait for a launch slot, take its baseline.

Every VM runs in a thread, so the LB VM is never queued behind the app VMs; a semaphore bounds
concurrent launches (many simultaneous launches crash an engine's daemon: Multipass #3336),
handed out longest-expected first (ops/launch_order.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from labctl.engine.base import OPERATION_TIMEOUT, Instance, LaunchSpec, State
from labctl.errors import CommandTimeoutError, EngineError, LabctlError, SnapshotsUnsupportedError
from labctl.host.agent import lab_key, vm_key
from labctl.model import Vm
from labctl.ops.archive import app_archive
from labctl.ops.context import LabContext, ownership_labels
from labctl.ops.failures import StageFailure, cloud_init_failure
from labctl.ops.hints import after_launch_failure
from labctl.ops.launch_order import LaunchOrder, lpt_order
from labctl.ops.logtail import tail_cloud_init_log
from labctl.ops.snapshot import BASELINE, BaselineSupport, now_utc
from labctl.render.assets import Assets, read_assets
from labctl.render.userdata import CLOUD_INIT_WAIT_COMMAND, render_user_data


@dataclass(frozen=True)
class VmOutcome:
    vm: str
    instance: str
    action: str  # launched | started | recovered | existing
    ip: str | None = None
    cloud_init: str = ""  # done | degraded
    early_baseline: bool = False  # its baseline was taken while other VMs launched


class EarlyBaseline:
    """The baseline snapshot of a VM that is done while others of its lab still wait for a launch
    slot: stop, snapshot, start, before the LB points at it.

    On an engine whose snapshots need a stopped instance, a healthy `up` would otherwise stop and
    start the whole lab once more while the user waits. A VM that finishes while
    another VM of the lab has not even begun its launch is off the critical path by a whole launch
    (minutes; a stop/snapshot/start cycle takes seconds), and nothing serves through it yet: its
    cycle costs the user nothing. The VMs of the last wave take theirs after `up` served
    (snapshot.take_baseline), as before. A restore later re-wires the LB (ops/wire.py), so a
    baseline taken before the wiring is as good as one taken after.
    """

    def __init__(self, ctx: LabContext, support: BaselineSupport) -> None:
        self.ctx = ctx
        self.support = support  # shared with the baseline step after serving
        # Until one snapshot was taken or refused, one VM at a time tries: on an engine or
        # driver without snapshots only the first VM pays the stop and start to find out.
        self._first = threading.Lock()
        self._known = False

    def wanted(self, vm: Vm) -> bool:
        """Baselines are on, this VM has none yet, and this engine can take one (only where a
        snapshot needs a stopped instance: elsewhere the baseline costs nothing after serving)."""
        ctx = self.ctx
        if not ctx.engine.capabilities.snapshot_needs_stop:
            return False
        if not ctx.lab.snapshots.baseline or vm.name in ctx.lab_state.snapshot_vms(BASELINE):
            return False
        return self.support.why_not() is None

    def take(self, vm: Vm) -> bool:
        """True when the snapshot was taken. The VM always ends running: _StageError if not."""
        if self._known:
            return self._take(vm)
        with self._first:
            if self.support.why_not() is not None:  # refused while this VM waited its turn
                return False
            return self._take(vm)

    def _take(self, vm: Vm) -> bool:
        ctx, engine, name = self.ctx, self.ctx.engine, self.ctx.instance(vm)
        ctx.emit(
            "baseline", "start", f"baseline snapshot of {name} while others launch", vm=vm.name
        )
        taken = False
        try:
            engine.stop([name], timeout=OPERATION_TIMEOUT)
            engine.snapshot(name, BASELINE, comment=f"labctl lab {ctx.lab.name}")
            taken = self._known = True
            ctx.lab_state.add_snapshot_vm(
                BASELINE, vm.name, name, created=now_utc(), lab_digest=ctx.lab_file.digest
            )
        except SnapshotsUnsupportedError as exc:
            self.support.refuse(exc.message)
            self._known = True
            ctx.emit("baseline", "skip", f"no baseline snapshot: {exc.message}", vm=vm.name)
        except EngineError as exc:  # the lab-wide baseline after serving tries it again
            ctx.emit("baseline", "info", f"not now ({exc.message}); after serving", vm=vm.name)
        finally:
            try:
                engine.start([name], timeout=ctx.lab.waits.launch)
            except EngineError as exc:
                raise _StageError(
                    "baseline",
                    LabctlError(
                        f"{name} did not start again after its baseline snapshot: {exc.message}",
                        hint="`labctl up` again starts it.",
                    ),
                ) from None
        if taken:
            ctx.emit("baseline", "done", f"took {BASELINE}", vm=vm.name)
        return taken


class _Countdown:
    """Calls `then` once, when every name was counted (each name counts once)."""

    def __init__(self, names: list[str], then: Callable[[], None] | None) -> None:
        self._left = set(names)
        self._then = then
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            if name not in self._left:
                return
            self._left.discard(name)
            fire = not self._left
        if fire and self._then is not None:
            self._then()


def bring_up_vms(
    ctx: LabContext,
    vms: list[Vm],
    existing: Mapping[str, Instance],
    *,
    archive: bytes | None = None,
    baseline: EarlyBaseline | None = None,
    settled: Callable[[], None] | None = None,
) -> tuple[list[VmOutcome], list[StageFailure]]:
    """Launch (or start) each VM and wait for its cloud-init, one thread per VM; with `baseline`,
    a VM done while others wait for a launch slot takes its baseline snapshot there and then.

    `settled` is called once every VM is running for good (launched or started, and past any
    stop of its own for an early baseline), while the last ones may still wait for cloud-init:
    from then on the engine's listing shows the addresses the LB will get (`up` asks then).

    On Ctrl-C nothing more is launched: the VMs still waiting for a launch slot give up, and the
    KeyboardInterrupt goes on to the caller.
    """
    assets = read_assets()
    archive = archive if archive is not None else app_archive(ctx.lab_file)
    launch_slots = ctx.launch_slots or threading.BoundedSemaphore(max(1, ctx.options.max_parallel))
    # Only the VMs that will take a slot queue for one, heaviest first (LPT: the longest first).
    slotted = [vm for vm in vms if _takes_slot(existing.get(vm.name))]
    order = LaunchOrder(launch_slots, [vm.name for vm in lpt_order(ctx.lab, slotted)])
    cancel = threading.Event()
    running_for_good = _Countdown([vm.name for vm in vms], settled)

    def pipeline(vm: Vm) -> VmOutcome | StageFailure | None:
        def launched(others_queued: bool) -> None:
            if not others_queued:  # no early baseline can stop it again
                running_for_good.count(vm.name)

        try:
            outcome, others_queued = _bring_up(
                ctx, vm, existing.get(vm.name), assets, archive, order, cancel, launched
            )
            # Others still queued when this VM's launch ended: one of them launches from scratch
            # after it, far longer than this VM's stop/snapshot/start.
            if (
                outcome is not None
                and others_queued
                and baseline is not None
                and not cancel.is_set()
                and baseline.wanted(vm)
            ):
                outcome = replace(outcome, early_baseline=baseline.take(vm))
            return outcome
        except (
            KeyboardInterrupt
        ):  # (tests inject it in a launch; a real Ctrl-C hits the main thread)
            cancel.set()
            raise
        except LabctlError as exc:
            if cancel.is_set():
                return None  # Ctrl-C killed this VM's engine call: not a failure of the VM
            # _StageError says which stage failed; any other error came from the launch itself
            stage = exc.stage if isinstance(exc, _StageError) else "launch"
            ctx.emit(stage, "fail", exc.message, vm=vm.name)
            return StageFailure(
                stage,
                exc.message,
                vm=vm.name,
                log_tail=exc.log_tail if isinstance(exc, _StageError) else "",
                hint=exc.hint,
                resumable=exc.resumable if isinstance(exc, _StageError) else True,
            )
        finally:
            order.withdraw(vm.name)  # failed or done before its turn: the next one goes
            running_for_good.count(vm.name)

    with ThreadPoolExecutor(max_workers=max(1, len(vms)), thread_name_prefix="vm") as pool:
        futures = [pool.submit(pipeline, vm) for vm in vms]
        try:
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            cancel.set()  # the pool's exit waits for launches already running, then we re-raise
            raise
    outcomes = [r for r in results if isinstance(r, VmOutcome)]
    failures = [r for r in results if isinstance(r, StageFailure)]
    return outcomes, failures


def _bring_up(
    ctx: LabContext,
    vm: Vm,
    existing: Instance | None,
    assets: Assets,
    archive: bytes | None,
    launch_slots: LaunchOrder,
    cancel: threading.Event,
    launched: Callable[[bool], None],
) -> tuple[VmOutcome | None, bool]:
    """The VM's outcome, and whether other VMs were still queued for a slot when it got its own
    launch or start done (read before its slot goes to the next one; also told to `launched`)."""
    lab, engine, name = ctx.lab, ctx.engine, ctx.instance(vm)
    others_queued = False
    if existing is None:
        action = "launched"
        key = lab_key(
            ctx.lab_state.directory,
            create=True,
            on_distrust=lambda why: ctx.emit("launch", "info", why, vm=vm.name),
        )
        status_key = vm_key(key, name) if key is not None else None
        user_data = render_user_data(lab, vm, assets, app_archive=archive, status_key=status_key)
        with launch_slots.slot(vm.name):
            if cancel.is_set():
                return None, False
            ctx.emit("launch", "start", f"launching {name}", vm=vm.name)
            ctx.lab_state.record(name, vm.name)  # before launching: an interrupted up still owns it
            try:
                # a launch may wait for cloud-init's boot-finished (Multipass does): tail the log
                with tail_cloud_init_log(ctx, vm, stage="launch"):
                    engine.launch(launch_spec(ctx, vm, user_data))
            except EngineError as exc:
                hint, resumable = after_launch_failure(ctx, vm, exc)
                raise _StageError(
                    "launch", LabctlError(exc.message, hint=hint), resumable=resumable
                ) from None
            others_queued = launch_slots.waiting()
        ctx.emit("launch", "done", f"{name} launched", vm=vm.name)
    elif existing.state is State.STOPPED:
        action = "started"
        with launch_slots.slot(vm.name):
            ctx.emit("launch", "start", f"starting {name} ({existing.shown_state})", vm=vm.name)
            engine.start([name], timeout=lab.waits.launch)
            others_queued = launch_slots.waiting()
    elif existing.state is State.DELETED:
        action = "recovered"
        with launch_slots.slot(vm.name):
            ctx.emit("launch", "start", f"recovering deleted {name}", vm=vm.name)
            engine.recover([name])
            engine.start([name], timeout=lab.waits.launch)
            others_queued = launch_slots.waiting()
    elif existing.state is State.BROKEN:
        raise _StageError(
            "launch",
            LabctlError(
                f"{name} is in state {existing.shown_state} (an earlier launch or start timed "
                "out, or the engine lost track of it)",
                hint=f"Rebuild it: `labctl reset {vm.name} --rebuild`.",
            ),
            resumable=False,
        )
    else:
        action = "existing"  # running, or starting (a launch an earlier up left): cloud-init waits
    if cancel.is_set():
        return None, False
    # Running now, with its address. Not so a VM found Starting or Restarting (a launch an
    # earlier up left): it counts once its cloud-init is done, when the pipeline ends.
    if _takes_slot(existing) or (existing is not None and existing.state is State.RUNNING):
        launched(others_queued)
    ctx.emit("cloud-init", "start", "waiting for cloud-init", vm=vm.name)
    ci = _wait_cloud_init(ctx, vm)
    ctx.emit("cloud-init", "done", ci, vm=vm.name)
    return VmOutcome(vm.name, name, action, cloud_init=ci), others_queued


def _takes_slot(existing: Instance | None) -> bool:
    return existing is None or existing.state in (State.STOPPED, State.DELETED)


def launch_spec(ctx: LabContext, vm: Vm, user_data: str) -> LaunchSpec:
    """What the engine launches for `vm`: sizes, image, user-data, ownership labels."""
    lab = ctx.lab
    return LaunchSpec(
        name=ctx.instance(vm),
        image=lab.image,
        cpus=lab.cpus_of(vm),
        memory=lab.memory_of(vm),
        disk=lab.disk_of(vm),
        user_data=user_data,
        timeout=lab.waits.launch,
        labels=ownership_labels(ctx, vm),
        target=ctx.member,
    )


class _StageError(LabctlError):
    """A VM's pipeline failed at `stage` (launch, cloud-init, baseline); becomes its StageFailure."""

    def __init__(
        self, stage: str, cause: LabctlError, log_tail: str = "", *, resumable: bool = True
    ) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.stage = stage
        self.log_tail = log_tail
        self.resumable = resumable


def _wait_cloud_init(ctx: LabContext, vm: Vm) -> str:
    """`cloud-init status --wait`: 0 done, 2 degraded done (recoverable), 1 error."""
    name = ctx.instance(vm)
    limit = ctx.lab.waits.cloud_init
    try:
        with tail_cloud_init_log(ctx, vm):
            result = ctx.engine.exec(name, CLOUD_INIT_WAIT_COMMAND, timeout=limit)
    except CommandTimeoutError:
        raise _StageError(
            "cloud-init",
            LabctlError(
                f"cloud-init on {name} did not finish within {limit:.0f} s (waits.cloud_init), or "
                f"the VM stopped answering; {name} was left running",
                hint=f"`labctl up` again keeps the VM and waits again; see its progress with "
                f"`labctl exec {vm.name} -- cloud-init status --long`; raise waits.cloud_init in "
                "lab.yaml for a slow app; `labctl down` removes the lab.",
            ),
        ) from None
    except EngineError as exc:
        raise _StageError("cloud-init", exc) from None
    if result.returncode == 0:
        return "done"
    if result.returncode == 2:
        return "degraded"
    failure = cloud_init_failure(ctx, vm, result.returncode, result.stdout + result.stderr)
    raise _StageError(
        "cloud-init",
        LabctlError(failure.message, hint=failure.hint),
        failure.log_tail,
        resumable=failure.resumable,
    )
