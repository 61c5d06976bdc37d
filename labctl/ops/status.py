"""`labctl status`: one listing call, per-VM checks in parallel, the domain checked end to end.

A stopped VM, a VM without an IP (`N/A`) or a check that fails is reported as a problem of that
VM; it never sinks the whole report (one wedged VM failing a whole listing is a trap engines fall
into themselves: Multipass #5219).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from labctl.engine.base import Instance, State
from labctl.host.probes import DomainCheck
from labctl.model import Vm
from labctl.ops.context import LabContext
from labctl.ops.vm_report import agent_key_of, read_vm_report
from labctl.ops.vm_schema import AppDoc, CloudInitDoc, ListenerDoc, NginxDoc, VmReportDoc

_CLOUD_INIT_OK: Final = {"done", "degraded done"}
MISSING: Final = "Missing"  # VmStatus.state of a lab VM that has no instance


@dataclass(frozen=True)
class Pm2Process:
    name: str
    status: str
    restarts: int
    pid: int | None = None


@dataclass(frozen=True)
class PortListener:
    """A process listening on the app's port, and the pm2 processes it belongs to (itself, an
    ancestor, or the pm2 daemon for a cluster-mode app), as the VM reports them."""

    pid: int
    command: str
    pm2: list[str]


@dataclass
class VmStatus:
    name: str
    instance: str
    roles: list[str]
    state: str  # the engine's word for its state ("Running", "Stopped"...), or "Missing"
    ipv4: list[str] = field(default_factory=list)
    cloud_init: str | None = None
    pm2: list[Pm2Process] | None = None
    app_port_open: bool | None = None
    app_listeners: list[PortListener] | None = None  # None: the VM did not say
    nginx_active: bool | None = None
    nginx_config_ok: bool | None = None
    nginx_error: str = ""
    problems: list[str] = field(default_factory=list)
    checked_via: str | None = None  # "agent" | "exec": how the report was read (None: not read)
    agent_error: str = ""  # why the VM's status agent was not used, when it was tried
    running: bool = False  # the engine says it runs (`state` is the engine's own word for it)

    @property
    def ip(self) -> str | None:
        first = self.ipv4[0] if self.ipv4 else None
        return first if first and first[0].isdigit() else None

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass
class DomainStatus:
    name: str
    lb_ip: str | None
    resolves: bool
    resolved: list[str]
    serving: bool
    http_statuses: list[int | None]
    backends_seen: list[str]  # VM names
    backends_missing: list[str]  # VM names
    error: str = ""


@dataclass
class StatusReport:
    lab: str
    vms: list[VmStatus]
    domain: DomainStatus
    problems: list[str]
    stage: str = "lb"  # the course stage: what it leaves to the student is not a problem

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lab": self.lab, "healthy": self.healthy, "problems": self.problems}
        data["stage"] = self.stage
        data["vms"] = [
            {
                **asdict(vm),
                "ip": vm.ip,
                "healthy": vm.healthy,
                "pm2": None if vm.pm2 is None else [asdict(p) for p in vm.pm2],
            }
            for vm in self.vms
        ]
        data["domain"] = asdict(self.domain)
        return data


def status(ctx: LabContext, *, announce: bool = True) -> StatusReport:
    """The lab's health; `announce`: say so when the lab is not at lab.yaml's stage."""
    if announce and ctx.stage_note:
        ctx.emit("stage", "info", ctx.stage_note)
    lab = ctx.lab
    instances = {inst.name: inst for inst in ctx.engine.list()}
    vms = [_base_status(ctx, vm, instances.get(ctx.instance(vm))) for vm in lab.vms]
    lb_status = next(v for v in vms if "lb" in v.roles)
    proxied = {vm.name for vm in lab.proxied_vms}  # behind the LB at this stage
    app_addresses = {f"{v.ip}:{lab.app.port}": v.name for v in vms if v.name in proxied and v.ip}
    with ThreadPoolExecutor(max_workers=min(64, len(vms) + 1), thread_name_prefix="status") as pool:
        domain_future = pool.submit(_check_domain, ctx, lb_status.ip, app_addresses)
        key = agent_key_of(ctx)
        list(pool.map(lambda p: _inspect_vm(ctx, p[0], p[1], key), zip(lab.vms, vms, strict=True)))
        check = domain_future.result()
    domain = _domain_status(ctx, lb_status.ip, check, app_addresses)
    for vm in vms:
        # Blame a backend only when the LB serves others; if nothing serves, the domain is the problem.
        if domain.serving and vm.name in domain.backends_missing and vm.ip:
            vm.problems.append(
                f"backend {vm.ip}:{lab.app.port} did not answer through the load balancer"
            )
    problems = [f"{vm.name}: {p}" for vm in vms for p in vm.problems]
    if not domain.resolves and lab.hosts_managed:
        got = ", ".join(domain.resolved) or "nothing"
        problems.append(
            f"domain: {lab.domain} resolves to {got}, not the load balancer {domain.lb_ip or '?'}"
        )
    if not domain.serving and lab.stage != "app":  # at stage app the proxy is the student's
        problems.append(
            f"domain: {lab.url} is not serving ({check.describe() if check else 'no LB address'})"
        )
    return StatusReport(lab.name, vms, domain, problems, lab.stage)


def _base_status(ctx: LabContext, vm: Vm, inst: Instance | None) -> VmStatus:
    name = ctx.instance(vm)
    if inst is None:
        return VmStatus(
            vm.name,
            name,
            list(vm.roles),
            MISSING,
            problems=[f"instance {name} does not exist (run labctl up)"],
        )
    status = VmStatus(vm.name, name, list(vm.roles), inst.shown_state, list(inst.ipv4))
    status.running = inst.state is State.RUNNING
    if not status.running:
        why = f": unreachable: {inst.unreachable}" if inst.unreachable else ""
        status.problems.append(f"VM is {inst.shown_state}{why}")
    elif status.ip is None:
        status.problems.append(f"no IPv4 address ({', '.join(inst.ipv4) or 'none'})")
    return status


def _inspect_vm(ctx: LabContext, vm: Vm, status: VmStatus, key: bytes | None) -> None:
    if not status.running:
        return
    # From the VM's status agent (one signed HTTP GET), else the engine's exec.
    read = read_vm_report(ctx, status.instance, status.ip, key, vm.name)
    status.checked_via, status.agent_error = read.via, read.agent_error
    if read.report is None:
        status.problems.append(read.problem)
        return
    _apply_report(ctx, vm, status, read.report)


def _apply_report(ctx: LabContext, vm: Vm, status: VmStatus, report: VmReportDoc) -> None:
    ci = report.cloud_init or CloudInitDoc()
    status.cloud_init = ci.status or "unknown"
    if status.cloud_init not in _CLOUD_INIT_OK:
        status.problems.append(f"cloud-init: {status.cloud_init}")
    if "app" in vm.roles:
        _apply_app(ctx, status, report.app or AppDoc())
    if "lb" in vm.roles:
        nginx = report.nginx or NginxDoc()
        status.nginx_active = bool(nginx.active)
        status.nginx_config_ok = bool(nginx.config_ok)
        status.nginx_error = nginx.config_error or ""
        if not status.nginx_active:
            status.problems.append("nginx is not running")
        if not status.nginx_config_ok:
            status.problems.append(
                f"nginx config invalid: {status.nginx_error or 'nginx -t failed'}"
            )


def _apply_app(ctx: LabContext, status: VmStatus, app: AppDoc) -> None:
    wanted = ctx.lab.app.name
    processes = [
        Pm2Process(p.name or "?", p.status or "unknown", p.restarts or 0, p.pid)
        for p in app.processes or []
    ]
    status.pm2 = processes
    status.app_port_open = app.port_open
    status.app_listeners = _listeners(app.listeners)
    mine = [p for p in processes if p.name == wanted]
    if not app.pm2_daemon:
        status.problems.append("pm2 daemon is not running")
    elif not mine:
        status.problems.append(f"pm2 has no process named {wanted!r}")
    else:
        down = sorted({p.status for p in mine if p.status != "online"})
        if down:
            status.problems.append(f"pm2 process {wanted!r} is {'/'.join(down)}")
    if status.app_port_open is False:
        status.problems.append(f"nothing listens on port {ctx.lab.app.port}")


def _listeners(listeners: list[ListenerDoc] | None) -> list[PortListener] | None:
    """The report's `listeners` (None: an older labctl-vm-status has none)."""
    if listeners is None:
        return None
    return [PortListener(item.pid or 0, (item.command or "?")[:32], item.pm2) for item in listeners]


def _check_domain(
    ctx: LabContext, lb_ip: str | None, backends: dict[str, str]
) -> DomainCheck | None:
    if lb_ip is None:
        return None
    return ctx.probe_domain(
        ctx.lab.domain,
        port=ctx.lab.lb.port,
        expected_ip=lb_ip,
        expected_backends=frozenset(backends),
        requests=3 * len(backends) + 2,
        deadline=ctx.lab.waits.check,  # a trickling LB costs no more than a hung VM report
        resolver=ctx.resolver,
        use_resolution=ctx.lab.hosts_managed,
    )


def _domain_status(
    ctx: LabContext, lb_ip: str | None, check: DomainCheck | None, backends: dict[str, str]
) -> DomainStatus:
    every_app = [vm.name for vm in ctx.lab.proxied_vms]
    if check is None:
        return DomainStatus(
            ctx.lab.domain,
            None,
            False,
            list(ctx.resolver(ctx.lab.domain)),
            False,
            [],
            [],
            every_app,
            "the load balancer has no address",
        )
    seen = sorted(backends[a] for a in check.backends_seen if a in backends)
    return DomainStatus(
        ctx.lab.domain,
        lb_ip,
        check.resolves,
        list(check.resolved),
        check.serving,
        list(check.statuses),
        seen,
        [n for n in every_app if n not in seen],
        check.error,
    )
