"""Point the LB at the app VMs' current IPs, write the hosts entry, wait until the domain serves.

Shared by every use case that changes the VMs under the load balancer (`up`, `snapshot save|restore`,
`reset`): after a stop/start or a relaunch the addresses may have changed (Multipass gives a
restarted VM a new one on some hosts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from labctl.engine.base import Instance, State
from labctl.errors import HostsFileError, ProbeTimeoutError
from labctl.host.hostsfile import entry_line, render_block, update_hosts
from labctl.host.probes import DomainCheck, HttpAnswer, wait_until
from labctl.ops.context import LabContext
from labctl.ops.failures import StageFailure, log_tail
from labctl.render.userdata import LB_APPLY_COMMAND, NGINX_LOG_COMMAND, Backend, render_nginx_site

# A running instance may not have its address yet: an engine whose launch or start returns once
# the instance started (LXD) lists it before DHCP answered (seconds). Listed again this often.
ADDRESS_POLL: Final = 1.0
ADDRESS_POLLS: Final = 60
# nginx stops its old workers accepting 0.1 s after a reload: five times that before confirming
RELOAD_SETTLE: Final = 0.5


@dataclass(frozen=True)
class HostsOutcome:
    managed: bool
    changed: bool
    line: str
    path: str


@dataclass(frozen=True)
class Wiring:
    """What wiring found and did; `failures` empty means the domain serves through every backend."""

    ips: dict[str, str] = field(default_factory=dict)  # vm -> IPv4
    lb_ip: str | None = None
    lb_config: str = ""  # applied | unchanged
    hosts: HostsOutcome | None = None
    check: DomainCheck | None = None
    backend_names: dict[str, str] = field(default_factory=dict)  # "ip:port" -> vm
    failures: list[StageFailure] = field(default_factory=list)
    stage: str = "lb"
    apps_answering: list[str] = field(default_factory=list)  # stage app: VMs whose app answered
    url: str = ""  # the site's URL (with the LB port when it is not 80)

    @property
    def ok(self) -> bool:
        # Stage app leaves the LB to the student: the apps answering is all there is to wait for.
        return not self.failures and (self.check is not None or self.stage == "app")


def wire_and_wait(ctx: LabContext, *, listing: list[Instance] | None = None) -> Wiring:
    """Re-sync nginx (nginx -t first) and the hosts entry with the engine's listing (or `listing`,
    one taken when nothing could change the VMs' addresses any more), then wait. What is wired
    depends on the lab's course stage."""
    lab, engine = ctx.lab, ctx.engine
    manage = ctx.manage_hosts
    instances = _with_addresses(ctx, engine.list() if listing is None else listing)
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
                    f"{ctx.instance(vm)} has no IPv4 address (the engine lists: {shown})",
                    vm=vm.name,
                    hint=f"Check its network (`labctl exec {vm.name} -- ip -4 addr`); once "
                    f"fixed, restart it (`labctl exec {vm.name} -- sudo reboot`) and `labctl up` "
                    f"again (up never restarts a running {engine.capabilities.instance_noun}). "
                    "The load balancer was not changed.",
                )
            )
        else:
            ips[vm.name] = ip
    if failures:
        return Wiring(ips=ips, failures=failures)
    if lab.stage == "app":
        return _wire_app_stage(ctx, ips, manage)

    backends = [Backend(vm.name, f"{ips[vm.name]}:{lab.app.port}") for vm in lab.proxied_vms]
    names = {b.address: b.vm for b in backends}
    lb = lab.lb_vm
    lb_ip = ips[lb.name]
    ctx.emit("lb", "start", f"pointing nginx at {len(backends)} backend(s)", vm=lb.name)
    applied = engine.exec(
        ctx.instance(lb), LB_APPLY_COMMAND, stdin=render_nginx_site(lab, backends), timeout=120
    )
    if applied.returncode == 127:  # the shell found no labctl-lb-apply: not nginx's verdict
        failure = StageFailure(
            "lb",
            f"{ctx.instance(lb)} has no {LB_APPLY_COMMAND[-1]}: it was not provisioned by labctl "
            "(or its cloud-init did not get that far); nginx was not touched",
            vm=lb.name,
            log_tail=applied.stderr[-4000:],
            hint=f"`labctl reset {lb.name} --rebuild` launches it again with labctl's user-data.",
            resumable=False,
        )
        return Wiring(ips=ips, lb_ip=lb_ip, backend_names=names, failures=[failure])
    if applied.returncode != 0:
        message = (applied.stderr.strip() or applied.stdout.strip() or "no output").splitlines()[-1]
        failure = StageFailure(
            "lb",
            f"nginx rejected the generated site; the previous one stays active: {message}",
            vm=lb.name,
            log_tail=applied.stderr[-4000:],
        )
        return Wiring(ips=ips, lb_ip=lb_ip, backend_names=names, failures=[failure])
    lb_config = "unchanged" if "unchanged" in applied.stdout else "applied"
    ctx.emit("lb", "done", f"nginx config {lb_config}", vm=lb.name)

    hosts = _write_hosts(ctx, lb_ip, manage)
    if isinstance(hosts, StageFailure):
        return Wiring(
            ips=ips, lb_ip=lb_ip, lb_config=lb_config, backend_names=names, failures=[hosts]
        )
    wiring = Wiring(
        ips=ips,
        lb_ip=lb_ip,
        lb_config=lb_config,
        hosts=hosts,
        backend_names=names,
        stage=lab.stage,
        url=lab.url,
    )

    expected = frozenset(names)
    ctx.emit(
        "serve",
        "start",
        f"waiting for {lab.url} to answer through {len(expected)} backend(s)",
    )

    try:
        check = wait_serving(ctx, lb_ip, expected, use_resolution=manage, what=lab.url)
    except ProbeTimeoutError as exc:
        failure = StageFailure(
            "serve",
            exc.message,
            vm=lb.name,
            log_tail=log_tail(ctx, lb, NGINX_LOG_COMMAND),
            hint="See `labctl status` for which VM is unhealthy.",
        )
        return replace(wiring, failures=[failure])
    ctx.emit("serve", "done", f"{lab.url} serves through all {len(expected)} backend(s)")
    return replace(wiring, check=check)


def _write_hosts(ctx: LabContext, lb_ip: str, manage: bool) -> HostsOutcome | StageFailure:
    lab = ctx.lab
    line = entry_line(lb_ip, lab.server_names)
    if not manage:
        ctx.emit("hosts", "skip", f"not managed; add this line to {ctx.hosts_file}: {line}")
        return HostsOutcome(False, False, line, str(ctx.hosts_file))
    try:
        changed = update_hosts(
            ctx.hosts_file,
            lab.name,
            render_block(lab.name, lb_ip, lab.server_names),
            backup=ctx.lab_state.save_hosts_backup,
        )
    except HostsFileError as exc:  # e.g. ENOSPC or EACCES: everything else is in place
        return StageFailure(
            "hosts",
            f"{exc.message}; the VMs are up and nginx points at them, only the hosts entry "
            "is missing",
            hint=(f"{exc.hint} " if exc.hint else "")
            + "Fix that and run `labctl up` again, or add this line to "
            f"{ctx.hosts_file} yourself and use --no-hosts: {line}",
        )
    ctx.emit("hosts", "done", f"{'updated' if changed else 'already has'} {ctx.hosts_file}: {line}")
    return HostsOutcome(True, changed, line, str(ctx.hosts_file))


def _with_addresses(ctx: LabContext, listing: list[Instance]) -> dict[str, Instance]:
    """The lab's instances by name, listed again (bounded) while a running one has no IPv4."""
    names = {ctx.instance(vm) for vm in ctx.lab.vms}
    for _ in range(ADDRESS_POLLS):
        instances = {inst.name: inst for inst in listing}
        waiting = [
            name
            for name in names
            if name in instances
            and instances[name].state in (State.RUNNING, State.STARTING)
            and instances[name].ip is None
        ]
        if not waiting:
            break
        ctx.sleep(ADDRESS_POLL)
        listing = ctx.engine.list()
    return {inst.name: inst for inst in listing}


def _wire_app_stage(ctx: LabContext, ips: dict[str, str], manage: bool) -> Wiring:
    """Stage app: nothing is pushed to the LB (its nginx keeps the default site); the hosts entry
    only if lab.yaml asks; then wait until the app answers on each app VM directly."""
    lab = ctx.lab
    lb_ip = ips[lab.lb_vm.name]
    hosts = _write_hosts(ctx, lb_ip, manage)
    if isinstance(hosts, StageFailure):
        return Wiring(ips=ips, lb_ip=lb_ip, failures=[hosts], stage="app")
    wiring = Wiring(ips=ips, lb_ip=lb_ip, lb_config="student", hosts=hosts, stage="app")
    apps = {vm.name: ips[vm.name] for vm in lab.app_vms}
    ctx.emit("serve", "start", f"waiting for the app to answer on {len(apps)} app VM(s)")

    def attempt() -> dict[str, HttpAnswer]:
        return {
            vm: ctx.probe_app(ip, lab.app.port, lab.domain, timeout=5.0) for vm, ip in apps.items()
        }

    def answering(answers: dict[str, HttpAnswer]) -> bool:
        return all(a.status is not None and a.status < 500 for a in answers.values())

    def describe(answers: dict[str, HttpAnswer]) -> str:
        return "; ".join(
            f"{vm}: {a.error or f'HTTP {a.status}'}"
            for vm, a in answers.items()
            if a.status is None or a.status >= 500
        )

    try:
        wait_until(
            attempt,
            answering,
            timeout=lab.waits.serve,
            interval=ctx.probe_interval,
            describe=describe,
            what=f"the app on port {lab.app.port}",
            sleep=ctx.sleep,
        )
    except ProbeTimeoutError as exc:
        failure = StageFailure(
            "serve", exc.message, hint="See `labctl status` and `labctl logs VM` for the app."
        )
        return replace(wiring, failures=[failure])
    ctx.emit("serve", "done", f"the app answers on {', '.join(apps)}")
    return replace(wiring, apps_answering=list(apps))


def wait_serving(
    ctx: LabContext,
    lb_ip: str,
    expected: frozenset[str],
    *,
    use_resolution: bool,
    what: str,
    interval: float | None = None,
) -> DomainCheck:
    """Retry (up to waits.serve) until the domain answers 200 through every `expected` backend,
    every answer of a round 200, and once more a moment later (`RELOAD_SETTLE`).

    The second round is there because nginx's reload (labctl-lb-apply) leaves its old workers
    accepting connections for a moment after the new ones answer (about 0.1 s, longer on a
    busy machine): a round can see both backends through the new site while the next requests
    still get the old one (the placeholder's 503). Raises ProbeTimeoutError naming `what` and
    the last check. `use_resolution=False` sends the requests to the LB's address directly (the
    hosts entry is not labctl's to rely on).
    """
    lab = ctx.lab

    def probe() -> DomainCheck:
        return ctx.probe_domain(
            lab.domain,
            port=lab.lb.port,
            expected_ip=lb_ip,
            expected_backends=expected,
            requests=3 * len(expected) + 2,
            resolver=ctx.resolver,
            use_resolution=use_resolution,
        )

    def steady(check: DomainCheck) -> bool:
        return check.healthy(need_resolution=use_resolution) and all(
            code == 200 for code in check.statuses
        )

    def attempt() -> DomainCheck:
        first = probe()
        if not steady(first):
            return first
        ctx.sleep(RELOAD_SETTLE)
        return probe()

    def describe(check: DomainCheck) -> str:
        others = sorted({str(code or "no answer") for code in check.statuses if code != 200})
        mixed = check.serving and others
        return check.describe() + (f"; also HTTP {'/'.join(others)} among them" if mixed else "")

    return wait_until(
        attempt,
        steady,
        timeout=lab.waits.serve,
        interval=ctx.probe_interval if interval is None else interval,
        describe=describe,
        what=what,
        sleep=ctx.sleep,
    )
