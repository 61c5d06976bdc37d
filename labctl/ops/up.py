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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from labctl.assets import Assets, read_assets
from labctl.config import LabFile
from labctl.errors import (
    ConfigError,
    ForeignInstanceError,
    LabctlError,
    MultipassError,
    ProbeTimeoutError,
)
from labctl.hosts import entry_line, render_block, update_hosts
from labctl.model import Vm
from labctl.multipass import Instance
from labctl.ops.context import LabContext, classify_instances, require_daemon
from labctl.ops.failures import StageFailure, cloud_init_failure, log_tail
from labctl.probes import DomainCheck, check_domain, wait_until
from labctl.render import (
    LB_APPLY_COMMAND,
    NGINX_LOG_COMMAND,
    Backend,
    render_nginx_site,
    render_user_data,
)

MAX_ARCHIVE_BYTES: Final = 8 * 1024 * 1024
_SKIP_DIRS: Final = {"node_modules", ".git", ".labctl", "__pycache__"}


@dataclass(frozen=True)
class VmOutcome:
    vm: str
    instance: str
    action: str  # launched | started | recovered | existing
    ip: str | None = None
    cloud_init: str = ""  # done | degraded


@dataclass(frozen=True)
class HostsOutcome:
    managed: bool
    changed: bool
    line: str
    path: str


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

    @property
    def ok(self) -> bool:
        return not self.failures


def up(ctx: LabContext, *, max_parallel: int = 4, manage_hosts: bool | None = None) -> UpResult:
    started = time.monotonic()
    lab = ctx.lab
    mp = ctx.multipass
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
    ctx.emit(
        "preflight",
        "done",
        f"multipass {version}; {len(ownership.ours)} of {len(lab.vms)} VMs exist",
    )

    assets = read_assets()
    archive = app_archive(ctx.lab_file)
    launch_slots = threading.BoundedSemaphore(max(1, max_parallel))

    def pipeline(vm: Vm) -> VmOutcome | StageFailure:
        try:
            return _bring_up(ctx, vm, ownership.ours.get(vm.name), assets, archive, launch_slots)
        except LabctlError as exc:
            ctx.emit(getattr(exc, "stage", "launch"), "fail", exc.message, vm=vm.name)
            return StageFailure(
                getattr(exc, "stage", "launch"),
                exc.message,
                vm=vm.name,
                log_tail=getattr(exc, "log_tail", ""),
                hint=exc.hint,
            )

    with ThreadPoolExecutor(max_workers=len(lab.vms), thread_name_prefix="vm") as pool:
        results = list(pool.map(pipeline, lab.vms))
    outcomes = [r for r in results if isinstance(r, VmOutcome)]
    failures = [r for r in results if isinstance(r, StageFailure)]
    result = UpResult(lab.name, lab.domain, outcomes, failures, seconds=time.monotonic() - started)
    if failures:
        return result
    return _wire_and_wait(
        ctx, result, manage_hosts if manage_hosts is not None else lab.manage_hosts, started
    )


def _bring_up(
    ctx: LabContext,
    vm: Vm,
    existing: Instance | None,
    assets: Assets,
    archive: bytes | None,
    launch_slots: threading.BoundedSemaphore,
) -> VmOutcome:
    lab, mp, name = ctx.lab, ctx.multipass, ctx.instance(vm)
    if existing is None:
        action = "launched"
        user_data = render_user_data(lab, vm, assets, app_archive=archive)
        with launch_slots:
            ctx.emit("launch", "start", f"launching {name}", vm=vm.name)
            ctx.lab_state.record(name, vm.name)  # before launching: an interrupted up still owns it
            try:
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
                raise _StageError("launch", exc) from None
        ctx.emit("launch", "done", f"{name} launched", vm=vm.name)
    elif existing.state in ("Stopped", "Suspended"):
        action = "started"
        with launch_slots:
            ctx.emit("launch", "start", f"starting {name} ({existing.state})", vm=vm.name)
            mp.start([name], timeout=lab.waits.launch)
    elif existing.state == "Deleted":
        action = "recovered"
        with launch_slots:
            ctx.emit("launch", "start", f"recovering deleted {name}", vm=vm.name)
            mp.recover([name])
            mp.start([name], timeout=lab.waits.launch)
    elif existing.state == "Unknown":
        raise _StageError(
            "launch",
            LabctlError(
                f"{name} is in state Unknown (an earlier launch or start timed out)",
                hint=f"Run `labctl down` (or multipass delete --purge {name}) and `labctl up` again.",
            ),
        )
    else:
        action = "existing"
    ctx.emit("cloud-init", "start", "waiting for cloud-init", vm=vm.name)
    ci = _wait_cloud_init(ctx, vm)
    ctx.emit("cloud-init", "done", ci, vm=vm.name)
    return VmOutcome(vm.name, name, action, cloud_init=ci)


class _StageError(LabctlError):
    def __init__(self, stage: str, cause: LabctlError, log_tail: str = "") -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.stage = stage
        self.log_tail = log_tail


def _wait_cloud_init(ctx: LabContext, vm: Vm) -> str:
    """`cloud-init status --wait`: 0 done, 2 degraded done (recoverable), 1 error (multipass.md §7.1)."""
    name = ctx.instance(vm)
    try:
        result = ctx.multipass.exec(
            name, ["cloud-init", "status", "--wait"], timeout=ctx.lab.waits.cloud_init
        )
    except MultipassError as exc:
        raise _StageError("cloud-init", exc) from None
    if result.returncode == 0:
        return "done"
    if result.returncode == 2:
        return "degraded"
    failure = cloud_init_failure(ctx, vm, result.returncode, result.stdout + result.stderr)
    raise _StageError(
        "cloud-init", LabctlError(failure.message, hint=failure.hint), failure.log_tail
    )


def _wire_and_wait(
    ctx: LabContext, result: UpResult, manage_hosts: bool, started: float
) -> UpResult:
    lab, mp = ctx.lab, ctx.multipass
    instances = {inst.name: inst for inst in mp.list()}
    failures: list[StageFailure] = []
    ips: dict[str, str] = {}
    for vm in lab.vms:
        inst = instances.get(ctx.instance(vm))
        ip = inst.ip if inst else None
        if ip is None:
            shown = ", ".join(inst.ipv4) if inst and inst.ipv4 else "none"
            failures.append(
                StageFailure(
                    "ip",
                    f"{ctx.instance(vm)} has no IPv4 address (multipass list: {shown})",
                    vm=vm.name,
                    hint="Check the VM's network (multipass info NAME); "
                    "restart it with labctl up after fixing it.",
                )
            )
        else:
            ips[vm.name] = ip
    vms = [VmOutcome(o.vm, o.instance, o.action, ips.get(o.vm), o.cloud_init) for o in result.vms]
    result = replace(result, vms=vms)
    if failures:
        return replace(result, failures=failures, seconds=time.monotonic() - started)

    backends = [Backend(vm.name, f"{ips[vm.name]}:{lab.app.port}") for vm in lab.app_vms]
    names = {b.address: b.vm for b in backends}
    lb = lab.lb_vm
    lb_ip = ips[lb.name]
    ctx.emit("lb", "start", f"pointing nginx at {len(backends)} backend(s)", vm=lb.name)
    applied = mp.exec(
        ctx.instance(lb), LB_APPLY_COMMAND, stdin=render_nginx_site(lab, backends), timeout=120
    )
    if applied.returncode != 0:
        message = (applied.stderr.strip() or applied.stdout.strip() or "no output").splitlines()[-1]
        return replace(
            result,
            lb_ip=lb_ip,
            backend_names=names,
            seconds=time.monotonic() - started,
            failures=[
                StageFailure(
                    "lb",
                    f"nginx rejected the generated site; the previous one stays active: {message}",
                    vm=lb.name,
                    log_tail=applied.stderr[-4000:],
                )
            ],
        )
    lb_config = "unchanged" if "unchanged" in applied.stdout else "applied"
    ctx.emit("lb", "done", f"nginx config {lb_config}", vm=lb.name)

    line = entry_line(lb_ip, lab.server_names)
    if manage_hosts:
        changed = update_hosts(
            ctx.hosts_file, lab.name, render_block(lab.name, lb_ip, lab.server_names)
        )
        ctx.emit(
            "hosts", "done", f"{'updated' if changed else 'already has'} {ctx.hosts_file}: {line}"
        )
    else:
        changed = False
        ctx.emit("hosts", "skip", f"not managed; add this line to {ctx.hosts_file}: {line}")
    hosts = HostsOutcome(manage_hosts, changed, line, str(ctx.hosts_file))
    result = replace(result, lb_ip=lb_ip, lb_config=lb_config, hosts=hosts, backend_names=names)

    expected = frozenset(names)
    ctx.emit(
        "serve",
        "start",
        f"waiting for http://{lab.domain}/ to answer through {len(expected)} backend(s)",
    )

    def attempt() -> DomainCheck:
        return check_domain(
            lab.domain,
            port=lab.lb.port,
            expected_ip=lb_ip,
            expected_backends=expected,
            requests=3 * len(expected) + 2,
            resolver=ctx.resolver,
            use_resolution=manage_hosts,
        )

    try:
        check = wait_until(
            attempt,
            lambda c: c.healthy(need_resolution=manage_hosts),
            timeout=lab.waits.serve,
            interval=ctx.probe_interval,
            describe=lambda c: c.describe(),
            what=f"http://{lab.domain}/",
            sleep=ctx.sleep,
        )
    except ProbeTimeoutError as exc:
        tail = log_tail(ctx, lb, NGINX_LOG_COMMAND)
        return replace(
            result,
            seconds=time.monotonic() - started,
            failures=[
                StageFailure(
                    "serve",
                    exc.message,
                    vm=lb.name,
                    log_tail=tail,
                    hint="See `labctl status` for which VM is unhealthy.",
                )
            ],
        )
    ctx.emit("serve", "done", f"http://{lab.domain}/ serves through all {len(expected)} backend(s)")
    return replace(result, check=check, seconds=time.monotonic() - started)


def app_archive(lab_file: LabFile) -> bytes | None:
    """A `source: path` app travels inside the user-data as a gzipped tar (no mounts needed)."""
    source = lab_file.app_source_dir()
    if source is None:
        return None
    buffer = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(part in _SKIP_DIRS for part in parts) or not (info.isfile() or info.isdir()):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname=".", filter=keep)
    data = buffer.getvalue()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ConfigError(
            [
                f"{lab_file.path}: app.source.path: {source} packs to {len(data) // 1024} KiB; "
                f"over {MAX_ARCHIVE_BYTES // 1024 // 1024} MiB does not fit in cloud-init user-data "
                "(use a git source instead)"
            ]
        )
    return data
