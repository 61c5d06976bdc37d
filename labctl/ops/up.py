"""`labctl up`: launch what is missing, wait for cloud-init, wire the LB, the hosts entry, and
return only when the domain serves through every backend.

Every VM runs its own pipeline (launch or start, then cloud-init) in a thread, so the LB VM is
never queued behind the app VMs; a semaphore bounds concurrent launches (multipass #3336 crashes
the daemon on many simultaneous launches).
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Final

from labctl.config.files import FileRefusedError, read_limited
from labctl.config.load import LabFile
from labctl.config.sources import MAX_SOURCE_BYTES, walk_source
from labctl.errors import (
    CommandTimeoutError,
    ConfigError,
    ForeignInstanceError,
    LabctlError,
    MultipassError,
)
from labctl.host.agent import lab_key, vm_key
from labctl.host.probes import DomainCheck
from labctl.model import Vm
from labctl.multipass.adapter import Instance
from labctl.ops.context import LabContext, classify_instances, require_daemon
from labctl.ops.doctor import preflight
from labctl.ops.failures import StageFailure, cloud_init_failure
from labctl.ops.hints import after_launch_failure
from labctl.ops.launch_order import LaunchOrder, lpt_order
from labctl.ops.logtail import tail_cloud_init_log
from labctl.ops.snapshot import take_baseline
from labctl.ops.stage import left_to_student, record_stage, staged
from labctl.ops.wire import HostsOutcome, wire_and_wait
from labctl.render.assets import Assets, read_assets
from labctl.render.userdata import render_user_data

MAX_ARCHIVE_BYTES: Final = 8 * 1024 * 1024


@dataclass(frozen=True)
class VmOutcome:
    vm: str
    instance: str
    action: str  # launched | started | recovered | existing
    ip: str | None = None
    cloud_init: str = ""  # done | degraded


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
    stage: str = "lb"  # the course stage brought up (issue 13)
    left: list[str] = field(default_factory=list)  # what that stage leaves to the student
    url: str = ""  # the site's URL (with the LB port when it is not 80)

    @property
    def ok(self) -> bool:
        return not self.failures


class UpInterruptedError(LabctlError):
    """Ctrl-C during up: nothing more is launched; the message says what exists."""

    exit_code = 130


def up(
    ctx: LabContext,
    *,
    max_parallel: int = 4,
    manage_hosts: bool | None = None,
    force: bool = False,
    stage: str | None = None,
) -> UpResult:
    with ctx.locked("up"):
        ctx = staged(ctx, stage)
        try:
            return _up(ctx, max_parallel=max_parallel, manage_hosts=manage_hosts, force=force)
        except KeyboardInterrupt:
            raise _interrupted(ctx) from None


def _interrupted(ctx: LabContext) -> UpInterruptedError:
    try:
        by_name = {inst.name: inst for inst in ctx.multipass.list()}
    except (LabctlError, KeyboardInterrupt):
        return UpInterruptedError(
            "interrupted; could not list what exists (multipass did not answer)",
            hint="Run `labctl status` to see the lab, `labctl up` to finish it.",
        )
    exists = [
        f"{ctx.instance(vm)} ({by_name[ctx.instance(vm)].state})"
        for vm in ctx.lab.vms
        if ctx.instance(vm) in by_name
    ]
    absent = [ctx.instance(vm) for vm in ctx.lab.vms if ctx.instance(vm) not in by_name]
    unknown = [
        ctx.instance(vm)
        for vm in ctx.lab.vms
        if by_name.get(ctx.instance(vm)) and by_name[ctx.instance(vm)].state == "Unknown"
    ]
    return UpInterruptedError(
        "interrupted; nothing more was launched. Exists: "
        + (", ".join(exists) or "nothing")
        + (f"; not launched: {', '.join(absent)}" if absent else ""),
        hint="Run `labctl up` again to finish (it keeps what exists and launches the rest), or "
        "`labctl down` to remove it all."
        + (
            f" An instance in state Unknown is rebuilt with `labctl reset VM --rebuild` ({', '.join(unknown)})."
            if unknown
            else ""
        ),
    )


def _up(ctx: LabContext, *, max_parallel: int, manage_hosts: bool | None, force: bool) -> UpResult:
    started = time.monotonic()
    lab = ctx.lab
    mp = ctx.multipass
    # Bad input (an app too big for user-data) is refused before any multipass call.
    archive = app_archive(ctx.lab_file)
    ctx.emit("preflight", "start", "checking multipass")
    version = require_daemon(mp)
    ownership = classify_instances(ctx, mp.list())
    if ownership.foreign:
        names = ", ".join(f"{inst.name} ({inst.state})" for inst in ownership.foreign.values())
        raise ForeignInstanceError(
            f"instance name(s) already used by something that is not lab {lab.name!r}: {names}",
            hint="labctl never touches instances it did not create. Rename the lab (name: in "
            "lab.yaml) or remove those instances yourself (multipass delete --purge NAME).",
        )
    running = {name for name, inst in ownership.ours.items() if inst.state == "Running"}
    preflight(
        ctx,
        [vm for vm in lab.vms if vm.name not in running],
        [vm for vm in lab.vms if vm.name in ownership.missing],
        force=force,
    )
    ctx.emit(
        "preflight",
        "done",
        f"multipass {version}; {len(ownership.ours)} of {len(lab.vms)} VMs exist",
    )
    record_stage(ctx)
    outcomes, failures = bring_up_vms(
        ctx, lab.vms, ownership.ours, max_parallel=max_parallel, archive=archive
    )
    result = UpResult(
        lab.name, lab.domain, outcomes, failures, seconds=time.monotonic() - started, url=lab.url
    )
    result = replace(result, stage=lab.stage, left=left_to_student(lab))
    if failures:
        return result
    wiring = wire_and_wait(ctx, manage_hosts=manage_hosts)
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
        baseline, outcome = take_baseline(ctx, manage_hosts=manage_hosts)
        result = replace(result, baseline=baseline)
        if outcome is not None and outcome.wiring is not None and not outcome.wiring.ok:
            result = replace(result, failures=outcome.wiring.failures, check=outcome.wiring.check)
    return replace(result, seconds=time.monotonic() - started)


def bring_up_vms(
    ctx: LabContext,
    vms: list[Vm],
    existing: Mapping[str, Instance],
    *,
    max_parallel: int = 4,
    archive: bytes | None = None,
) -> tuple[list[VmOutcome], list[StageFailure]]:
    """Launch (or start) each VM and wait for its cloud-init, one thread per VM.

    On Ctrl-C nothing more is launched: the VMs still waiting for a launch slot give up, and the
    KeyboardInterrupt goes on to the caller.
    """
    assets = read_assets()
    archive = archive if archive is not None else app_archive(ctx.lab_file)
    launch_slots = ctx.launch_slots or threading.BoundedSemaphore(max(1, max_parallel))
    # Only the VMs that will take a slot queue for one, heaviest first (LPT, issue 14).
    slotted = [vm for vm in vms if _takes_slot(existing.get(vm.name))]
    order = LaunchOrder(launch_slots, [vm.name for vm in lpt_order(ctx.lab, slotted)])
    cancel = threading.Event()

    def pipeline(vm: Vm) -> VmOutcome | StageFailure | None:
        try:
            return _bring_up(ctx, vm, existing.get(vm.name), assets, archive, order, cancel)
        except (
            KeyboardInterrupt
        ):  # (tests inject it in a launch; a real Ctrl-C hits the main thread)
            cancel.set()
            raise
        except LabctlError as exc:
            if cancel.is_set():
                return None  # Ctrl-C killed this VM's multipass call: not a failure of the VM
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
) -> VmOutcome | None:
    lab, mp, name = ctx.lab, ctx.multipass, ctx.instance(vm)
    if existing is None:
        action = "launched"
        key = lab_key(ctx.lab_state.directory, create=True)
        status_key = vm_key(key, name) if key is not None else None
        user_data = render_user_data(lab, vm, assets, app_archive=archive, status_key=status_key)
        with launch_slots.slot(vm.name):
            if cancel.is_set():
                return None
            ctx.emit("launch", "start", f"launching {name}", vm=vm.name)
            ctx.lab_state.record(name, vm.name)  # before launching: an interrupted up still owns it
            try:
                # launch itself waits for cloud-init's boot-finished (multipass.md §7): tail it
                with tail_cloud_init_log(ctx, vm, stage="launch"):
                    mp.launch(
                        name=name,
                        image=lab.image,
                        cpus=lab.cpus_of(vm),
                        memory=lab.memory_of(vm),
                        disk=lab.disk_of(vm),
                        cloud_init=user_data,
                        timeout=lab.waits.launch,
                    )
            except MultipassError as exc:
                hint, resumable = after_launch_failure(ctx, vm, exc)
                raise _StageError(
                    "launch", LabctlError(exc.message, hint=hint), resumable=resumable
                ) from None
        ctx.emit("launch", "done", f"{name} launched", vm=vm.name)
    elif existing.state in ("Stopped", "Suspended"):
        action = "started"
        with launch_slots.slot(vm.name):
            ctx.emit("launch", "start", f"starting {name} ({existing.state})", vm=vm.name)
            mp.start([name], timeout=lab.waits.launch)
    elif existing.state == "Deleted":
        action = "recovered"
        with launch_slots.slot(vm.name):
            ctx.emit("launch", "start", f"recovering deleted {name}", vm=vm.name)
            mp.recover([name])
            mp.start([name], timeout=lab.waits.launch)
    elif existing.state == "Unknown":
        raise _StageError(
            "launch",
            LabctlError(
                f"{name} is in state Unknown (an earlier launch or start timed out)",
                hint=f"Rebuild it: `labctl reset {vm.name} --rebuild` (or multipass delete "
                f"--purge {name} and `labctl up` again).",
            ),
            resumable=False,
        )
    else:
        action = "existing"  # Running, or Starting (a launch an earlier up left): cloud-init waits
    if cancel.is_set():
        return None
    ctx.emit("cloud-init", "start", "waiting for cloud-init", vm=vm.name)
    ci = _wait_cloud_init(ctx, vm)
    ctx.emit("cloud-init", "done", ci, vm=vm.name)
    return VmOutcome(vm.name, name, action, cloud_init=ci)


def _takes_slot(existing: Instance | None) -> bool:
    return existing is None or existing.state in ("Stopped", "Suspended", "Deleted")


class _StageError(LabctlError):
    """A VM's pipeline failed at `stage` (launch or cloud-init); becomes that VM's StageFailure."""

    def __init__(
        self, stage: str, cause: LabctlError, log_tail: str = "", *, resumable: bool = True
    ) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.stage = stage
        self.log_tail = log_tail
        self.resumable = resumable


def _wait_cloud_init(ctx: LabContext, vm: Vm) -> str:
    """`cloud-init status --wait`: 0 done, 2 degraded done (recoverable), 1 error (multipass.md §7.1)."""
    name = ctx.instance(vm)
    limit = ctx.lab.waits.cloud_init
    try:
        with tail_cloud_init_log(ctx, vm):
            result = ctx.multipass.exec(name, ["cloud-init", "status", "--wait"], timeout=limit)
    except CommandTimeoutError:
        raise _StageError(
            "cloud-init",
            LabctlError(
                f"cloud-init on {name} did not finish within {limit:.0f} s (waits.cloud_init), or "
                f"the VM stopped answering; {name} was left running",
                hint=f"`labctl up` again keeps the VM and waits again; see its progress with "
                f"`multipass exec {name} -- cloud-init status --long`; raise waits.cloud_init in "
                "lab.yaml for a slow app; `labctl down` removes the lab.",
            ),
        ) from None
    except MultipassError as exc:
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


def app_archive(lab_file: LabFile) -> bytes | None:
    """A `source: path` app travels inside the user-data as a gzipped tar (no mounts needed).

    Exactly what `walk_source` allows is packed (config/sources.py: confined, no private files,
    links kept as links); each file is opened without following links and read with a limit.
    """
    src = lab_file.lab.app.source
    if src.path is None:
        return None
    walk = walk_source(lab_file.base_dir, src.path, src.include_private)
    where = ("app", "source", "path")
    if walk.problems:
        raise ConfigError([lab_file.problem(where, problem) for problem in walk.problems])
    buffer = io.BytesIO()
    left = MAX_SOURCE_BYTES
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in walk.entries:
            info = tarfile.TarInfo(f"./{entry.relative}" if entry.relative else ".")
            info.mtime = 0  # the same folder packs to the same bytes
            content = None
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif entry.kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
            else:
                full = walk.root / entry.relative
                try:
                    data = read_limited(full, left, what="an app file", follow_symlinks=False)
                    executable = full.lstat().st_mode & 0o100
                except (FileRefusedError, OSError) as exc:
                    why = exc.message if isinstance(exc, FileRefusedError) else exc.strerror
                    raise ConfigError(
                        [lab_file.problem(where, f"cannot pack {entry.relative!r}: {why}")]
                    ) from None
                left -= len(data)
                info.size, info.mode = len(data), 0o755 if executable else 0o644
                content = io.BytesIO(data)
            tar.addfile(info, content)
    data = buffer.getvalue()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ConfigError(
            [
                lab_file.problem(
                    where,
                    f"{walk.root} packs to {len(data) // 1024} KiB; over "
                    f"{MAX_ARCHIVE_BYTES // 1024 // 1024} MiB does not fit in cloud-init "
                    "user-data (use a git source instead)",
                )
            ]
        )
    return data
