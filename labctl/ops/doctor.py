"""`labctl doctor`: can this machine run this lab? One line per check; any `fail` means no.

`up` runs the cheap part (`capacity_checks`, `domain_check`) before it launches anything and refuses
on a failure unless forced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal

from labctl.errors import LabctlError, MultipassError
from labctl.host.hostsfile import managed_entries, read_hosts
from labctl.host.resources import HostResources
from labctl.model import Vm
from labctl.multipass.adapter import MIN_VERSION, SNAPSHOT_MIN_VERSION
from labctl.ops.context import LabContext
from labctl.scalars import size_in_bytes

CheckStatus = Literal["ok", "warn", "fail", "skip"]
GIB: Final = 1024**3
NO_SNAPSHOT_DRIVERS: Final = ("lxd", "libvirt")  # multipass #3328


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class DoctorReport:
    lab: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)


class PreflightError(LabctlError):
    """`up` refused before launching anything: the lab cannot fit or its domain is taken."""


def _version_text(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def doctor(ctx: LabContext) -> DoctorReport:
    checks: list[Check] = []
    mp = ctx.multipass
    running: set[str] = set()
    existing: set[str] = set()
    try:
        info = mp.version()
    except MultipassError as exc:
        checks.append(Check("multipass", "fail", exc.message, exc.hint or ""))
        info = None
    if info is not None:
        checks.append(Check("multipass", "ok", f"client {info.client} ({mp.executable})"))
        found = info.daemon_tuple()
        if info.daemon is None:
            checks.append(
                Check(
                    "daemon",
                    "fail",
                    "multipassd does not answer",
                    "Linux: sudo snap restart multipass; macOS/Windows: restart the Multipass app.",
                )
            )
        elif found is not None and found < MIN_VERSION:
            checks.append(
                Check(
                    "daemon",
                    "fail",
                    f"multipassd {info.daemon}; labctl needs {_version_text(MIN_VERSION)} or newer",
                    "sudo snap refresh multipass (Linux), brew upgrade multipass (macOS)",
                )
            )
        else:
            checks.append(Check("daemon", "ok", f"multipassd {info.daemon} answers"))
        if info.daemon is not None:
            driver = _driver(ctx, checks)
            checks.append(_snapshot_check(found, driver))
            try:
                instances = mp.list()
                existing = {inst.name for inst in instances}
                running = {inst.name for inst in instances if inst.state == "Running"}
            except MultipassError as exc:
                checks.append(Check("instances", "warn", f"cannot list instances: {exc.message}"))
    if info is None or info.daemon is None:
        checks.append(Check("driver", "skip", "needs the daemon"))
        checks.append(Check("snapshots", "skip", "needs the daemon"))
    to_start = [vm for vm in ctx.lab.vms if ctx.instance(vm) not in running]
    to_create = [vm for vm in ctx.lab.vms if ctx.instance(vm) not in existing]
    checks.extend(capacity_checks(ctx, to_start, to_create))
    checks.append(hosts_writable_check(ctx))
    checks.append(domain_check(ctx))
    return DoctorReport(ctx.lab.name, checks)


def _driver(ctx: LabContext, checks: list[Check]) -> str | None:
    try:
        driver = ctx.multipass.get("local.driver")
    except MultipassError as exc:
        checks.append(Check("driver", "warn", f"cannot read local.driver: {exc.message}"))
        return None
    if driver in NO_SNAPSHOT_DRIVERS:
        checks.append(
            Check(
                "driver",
                "warn",
                f"{driver} (deprecated; no snapshots, so no baseline and `reset` relaunches)",
                "multipass set local.driver=qemu (with no instances running)",
            )
        )
    else:
        checks.append(Check("driver", "ok", driver or "(default)"))
    return driver


def _snapshot_check(version: tuple[int, int, int] | None, driver: str | None) -> Check:
    wanted = _version_text(SNAPSHOT_MIN_VERSION)
    if version is not None and version < SNAPSHOT_MIN_VERSION:
        return Check(
            "snapshots",
            "warn",
            f"Multipass {_version_text(version)} has no snapshots (needs {wanted}); "
            "the baseline is skipped and `reset` relaunches VMs",
            "Upgrade Multipass to get `labctl snapshot` and fast `labctl reset`.",
        )
    if driver in NO_SNAPSHOT_DRIVERS:
        return Check("snapshots", "warn", f"the {driver} driver cannot take snapshots")
    return Check("snapshots", "ok", f"available (Multipass >= {wanted})")


def capacity_checks(
    ctx: LabContext,
    to_start: list[Vm],
    to_create: list[Vm],
    *,
    host: HostResources | None = None,
    every: list[Vm] | None = None,
) -> list[Check]:
    """CPU, memory and disk for the VMs that would start (to_start) or be created (to_create).

    `host` defaults to this machine (ctx.host()); a class checks each Multipass host with the
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
        # VM on it (the README promises `up` refuses this unless --force).
        checks.append(
            Check(
                "disk",
                "fail",
                f"{len(to_create)} new VM(s) ask for {_gib(disk)} of disk; "
                f"{_gib(host.disk_free)} free in {where}",
                "Lower disk: in lab.yaml, free disk space or remove unused instances "
                "(multipass delete --purge NAME).",
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
    return checks


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


def preflight(ctx: LabContext, to_start: list[Vm], to_create: list[Vm], *, force: bool) -> None:
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
    if force:
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
