"""`labctl doctor`: can this machine run this lab? One line per check; any `fail` means no.

`up` runs the cheap part (`capacity_checks`, `domain_check`) before it launches anything and refuses
on a failure unless forced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from labctl.engine.base import HealthLine, State
from labctl.engine.registry import EngineProbe, probe_engines
from labctl.errors import EngineError, LabctlError
from labctl.host.browser.discover import TURNED_OFF
from labctl.host.browser.errors import BrowserError, BrowserUnavailableError
from labctl.host.browser.process import probe_browser
from labctl.host.hostsfile import managed_entries, read_hosts
from labctl.host.resources import HostResources
from labctl.model import Lab, Vm
from labctl.ops.context import LabContext
from labctl.scalars import size_in_bytes

GIB: Final = 1024**3
# systemd, journald, udev, cloud-init, nginx and pm2 in each system container
INOTIFY_PER_CONTAINER: Final = 6
Check = HealthLine  # one line of doctor: the engine's own, and the ones about this machine


@dataclass(frozen=True)
class DoctorReport:
    lab: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)


class PreflightError(LabctlError):
    """`up` refused before launching anything: the lab cannot fit or its domain is taken."""


def doctor(
    ctx: LabContext, *, engines: Callable[[], list[EngineProbe]] = probe_engines
) -> DoctorReport:
    """Which engines this machine has (each usable or why not), then the lab's own engine, this
    machine's capacity for the lab, the hosts file and the domain."""
    engine = ctx.engine
    checks = [probe.line() for probe in engines()]
    checks += engine.health(image=ctx.lab.image)
    running: set[str] = set()
    existing: set[str] = set()
    if not any(check.status == "fail" for check in checks):  # the engine answers
        try:
            instances = engine.list()
            existing = {inst.name for inst in instances}
            running = {inst.name for inst in instances if inst.state is State.RUNNING}
        except EngineError as exc:
            checks.append(Check("instances", "warn", f"cannot list instances: {exc.message}"))
    to_start = [vm for vm in ctx.lab.vms if ctx.instance(vm) not in running]
    to_create = [vm for vm in ctx.lab.vms if ctx.instance(vm) not in existing]
    checks.extend(capacity_checks(ctx, to_start, to_create))
    checks.append(hosts_writable_check(ctx))
    checks.append(domain_check(ctx))
    checks.append(browser_check(ctx.lab))
    return DoctorReport(ctx.lab.name, checks)


def browser_check(lab: Lab) -> Check:
    """Whether `labctl check` can open the lab in a headless browser (it skips that check if not;
    the lab itself does not need one)."""
    if not lab.browser.enabled:
        return Check("browser", "skip", "the browser check is off (browser: {enabled: false})")
    try:
        found = probe_browser()
    except BrowserUnavailableError as exc:
        turned_off = os.environ.get("LABCTL_BROWSER", "").strip().lower() in TURNED_OFF
        return Check(
            "browser",
            "skip" if turned_off else "warn",
            f"{exc.message}: `labctl check` skips its browser check",
            exc.hint or "",
        )
    except BrowserError as exc:
        return Check(
            "browser",
            "warn",
            f"{exc.message}: `labctl check` skips its browser check",
            "Try LABCTL_BROWSER=/path/to/another/chrome, or run `labctl --debug doctor`.",
        )
    return Check("browser", "ok", f"{found} (for `labctl check`)")


def capacity_checks(
    ctx: LabContext,
    to_start: list[Vm],
    to_create: list[Vm],
    *,
    host: HostResources | None = None,
    every: list[Vm] | None = None,
) -> list[Check]:
    """CPU, memory and disk for the VMs that would start (to_start) or be created (to_create).

    `host` defaults to this machine (ctx.host()); a class checks each engine host with the
    VMs of every student placed there (`every`, default: the lab's VMs). `cpus` 0 = unknown.
    """
    lab = ctx.lab
    host = host or ctx.host()
    every = lab.vms if every is None else every
    checks: list[Check] = []
    widest = max((lab.cpus_of(vm) for vm in every), default=1)
    total_cpus = sum(lab.cpus_of(vm) for vm in every)
    if host.cpus <= 0:
        checks.append(Check("cpu", "skip", f"CPU count of {host.disk_path} unknown"))
    elif widest > host.cpus:
        checks.append(
            Check(
                "cpu",
                "fail",
                f"a VM asks for {widest} CPUs; this host has {host.cpus}",
                "Lower cpus: in lab.yaml.",
            )
        )
    elif total_cpus > host.cpus:
        checks.append(
            Check(
                "cpu",
                "warn",
                f"{total_cpus} vCPUs on {host.cpus} host CPUs (shared; slower cloud-init)",
            )
        )
    else:
        checks.append(Check("cpu", "ok", f"{total_cpus} vCPUs on {host.cpus} host CPUs"))
    memory = sum(size_in_bytes(lab.memory_of(vm)) for vm in to_start)
    if host.memory_available is None:
        checks.append(Check("memory", "skip", "available memory unknown on this OS"))
    elif memory > (host.memory_total or host.memory_available + GIB) - GIB:
        # Cannot fit at all (the host keeps 1 GiB); what is merely in use now is only a warning,
        # since it comes and goes and qemu commits guest memory lazily.
        checks.append(
            Check(
                "memory",
                "fail",
                f"{len(to_start)} VM(s) to start need {_gib(memory)}; this host has "
                f"{_gib(host.memory_total or host.memory_available + GIB)} in all",
                "Lower memory: in lab.yaml (or use fewer VMs).",
            )
        )
    elif memory > host.memory_available:
        checks.append(
            Check(
                "memory",
                "warn",
                f"{len(to_start)} VM(s) to start need {_gib(memory)}; only "
                f"{_gib(host.memory_available)} available right now (the host may swap)",
                "Close other VMs/apps first.",
            )
        )
    else:
        checks.append(
            Check(
                "memory",
                "ok",
                f"{_gib(memory)} for {len(to_start)} VM(s) to start; "
                f"{_gib(host.memory_available)} available",
            )
        )
    disk = sum(size_in_bytes(lab.disk_of(vm)) for vm in to_create)
    where = host.disk_path
    if host.disk_free is None:
        checks.append(Check("disk", "skip", f"cannot read free space of {where}"))
    elif host.disk_free < disk:
        # VM disks are sparse but grow up to their size; a host disk that fills up stops every
        # VM on it (docs/commands.md promises `up` refuses this unless --force).
        checks.append(
            Check(
                "disk",
                "fail",
                f"{len(to_create)} new VM(s) ask for {_gib(disk)} of disk; "
                f"{_gib(host.disk_free)} free in {where}",
                "Lower disk: in lab.yaml, free disk space or remove unused instances.",
            )
        )
    else:
        checks.append(
            Check(
                "disk",
                "ok",
                f"{_gib(disk)} for {len(to_create)} new VM(s); {_gib(host.disk_free)} free",
            )
        )
    # system containers share the host's kernel, and its per-user limits
    kind = lab.engine.lxd_type if lab.engine is not None else "container"
    containers = ctx.engine.capabilities.name == "lxd" and kind == "container"
    if containers and host.inotify_instances:
        checks += _inotify_checks(len(every), host.inotify_instances)
    return checks


def _inotify_checks(containers: int, limit: int) -> list[Check]:
    """Only when the containers would need more than the host allows: then systemd stalls in
    the containers past the limit, and their cloud-init never finishes (measured: at 128, from
    about the 20th container of a class on)."""
    need = containers * INOTIFY_PER_CONTAINER
    if need <= limit:
        return []
    raised = max(1024, 1 << (need - 1).bit_length())
    return [
        Check(
            "inotify",
            "fail",
            f"{containers} containers need about {need} inotify instances; this host allows "
            f"{limit} for all of them together (past it, systemd stalls in the newest ones "
            "and their cloud-init never finishes)",
            f"Raise it: sudo sysctl -w fs.inotify.max_user_instances={raised} (and in "
            "/etc/sysctl.d/ to keep it after a reboot).",
        )
    ]


def hosts_writable_check(ctx: LabContext) -> Check:
    path = ctx.hosts_file
    if not ctx.lab.manage_hosts:
        return Check("hosts file", "skip", "manage_hosts: false (up prints the line instead)")
    target = path if path.exists() else path.parent
    if os.access(target, os.W_OK):
        return Check("hosts file", "ok", f"{path} is writable")
    if ctx.can_sudo():
        return Check("hosts file", "ok", f"{path} is written through sudo")
    return Check(
        "hosts file",
        "warn",
        f"{path} is not writable and `sudo -n true` fails (sudo will prompt, or fail without a TTY)",
        "Run labctl from a terminal where sudo can ask, or use --no-hosts / manage_hosts: false.",
    )


def domain_check(ctx: LabContext) -> Check:
    lab = ctx.lab
    try:
        entries = managed_entries(read_hosts(ctx.hosts_file))
    except LabctlError as exc:
        return Check("domain", "warn", exc.message)
    wanted = set(lab.server_names)
    for entry in entries:
        taken = wanted & set(entry.names)
        if entry.lab != lab.name and taken:
            return Check(
                "domain",
                "fail",
                f"{', '.join(sorted(taken))} already claimed by lab {entry.lab!r} ({entry.ip}) "
                f"in {ctx.hosts_file}",
                "Pick another domain in lab.yaml, or take that lab down (labctl down in its "
                "folder) — two labs cannot share a domain.",
            )
    return Check("domain", "ok", f"{lab.domain} is not claimed by another lab")


def preflight(ctx: LabContext, to_start: list[Vm], to_create: list[Vm]) -> None:
    """Refuse before launching anything when the lab cannot fit or its domain is taken."""
    checks = [*capacity_checks(ctx, to_start, to_create)]
    if ctx.lab.manage_hosts:
        checks.append(domain_check(ctx))
    for check in checks:
        if check.status == "warn":
            ctx.emit("preflight", "info", f"{check.name}: {check.detail}")
    failed = [check for check in checks if check.status == "fail"]
    if not failed:
        return
    if ctx.options.force:
        for check in failed:
            ctx.emit("preflight", "skip", f"{check.name}: {check.detail} (--force: going on)")
        return
    raise PreflightError(
        "refusing to launch anything: "
        + "; ".join(f"{check.name}: {check.detail}" for check in failed),
        hint=" ".join(check.hint for check in failed if check.hint)
        + " Run `labctl doctor` for every check; `labctl up --force` launches anyway.",
    )


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"
