"""`labctl drill`: the course's failover experiment as a command with a verdict.

1. the lab must be healthy; 2. each app backend in turn goes down (pm2 stop, VM stop, or frozen
with SIGSTOP) and N requests through the domain must all get 200 from the survivors only;
3. every backend goes down and nginx must answer 502 itself (LB alive, upstreams dead);
4. everything comes back and the domain must serve through every backend again.
Whatever happens (a failed step, an error, Ctrl-C) every backend taken down is restored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final, Literal

from labctl.engine.base import OPERATION_TIMEOUT
from labctl.errors import ConfigError, LabctlError, ProbeTimeoutError
from labctl.host.probes import Tally, hammer
from labctl.model import Vm
from labctl.ops.context import LabContext
from labctl.ops.status import status
from labctl.ops.wire import wait_serving

Mode = Literal["app", "vm", "freeze"]
ALL_DOWN_REQUESTS: Final = 20
CLIENT_TIMEOUT: Final = (
    30.0  # above nginx's connect+read timeouts, so nginx decides, not the client
)


@dataclass(frozen=True)
class DrillStep:
    name: str
    expectation: str
    observed: str
    passed: bool
    seconds: float = 0.0
    tally: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DrillResult:
    lab: str
    mode: str
    steps: list[DrillStep]

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)


class Backends:  # also used by `labctl check`'s failover check (ops/checks/disruptive.py)
    """Takes app backends down and brings them back; remembers what it must restore."""

    def __init__(self, ctx: LabContext, mode: Mode) -> None:
        self.ctx, self.mode = ctx, mode
        self.down: list[tuple[Vm, str]] = []  # (vm, how)

    def how(self, vm: Vm) -> str:
        # Stopping the LB's own VM would take the balancer down too: its app is stopped instead.
        return "app" if self.mode == "vm" and "lb" in vm.roles else self.mode

    def take_down(self, vm: Vm) -> None:
        how = self.how(vm)
        self.down.append((vm, how))
        name, app = self.ctx.instance(vm), self.ctx.lab.app.name
        engine = self.ctx.engine
        if how == "vm":
            engine.stop([name], timeout=OPERATION_TIMEOUT)
        else:  # pm2 runs as the default user, which is who the engine's exec runs as
            argv = ["pm2", "stop", app] if how == "app" else ["pm2", "sendSignal", "SIGSTOP", app]
            engine.exec(name, argv, timeout=60, check=True)

    def restore_all(self) -> None:
        errors: list[str] = []
        while self.down:
            vm, how = self.down.pop()
            name, app = self.ctx.instance(vm), self.ctx.lab.app.name
            try:
                if how == "vm":
                    self.ctx.engine.start([name], timeout=OPERATION_TIMEOUT)
                else:
                    argv = (
                        ["pm2", "start", app]
                        if how == "app"
                        else ["pm2", "sendSignal", "SIGCONT", app]
                    )
                    self.ctx.engine.exec(name, argv, timeout=60, check=True)
            except LabctlError as exc:
                errors.append(f"{vm.name}: {exc.message}")
        if errors:
            raise LabctlError(
                "could not restore every backend: " + "; ".join(errors),
                hint="Run `labctl up` to bring the lab back to its healthy state.",
            )


def drill(
    ctx: LabContext,
    *,
    mode: Mode = "app",
    vms: list[str] | None = None,
    requests: int = 200,
) -> DrillResult:
    """Each step is an event as it ends (with what it observed); the result holds them all."""
    with ctx.locked("drill"):
        return _drill(ctx, mode=mode, vms=vms, requests=requests)


def _drill(
    ctx: LabContext,
    *,
    mode: Mode,
    vms: list[str] | None,
    requests: int,
) -> DrillResult:
    lab = ctx.lab
    chosen = _choose(ctx, vms)
    steps: list[DrillStep] = []

    def record(step: DrillStep) -> None:
        steps.append(step)
        ctx.emit("drill", "done" if step.passed else "fail", f"{step.name}: {step.observed}")

    started = time.monotonic()
    report = status(ctx)
    lb_ip = report.domain.lb_ip
    record(
        DrillStep(
            "precheck",
            "the lab is healthy",
            "healthy" if report.healthy else "; ".join(report.problems),
            report.healthy,
            time.monotonic() - started,
        )
    )
    if not report.healthy or lb_ip is None:
        return DrillResult(lab.name, mode, steps)
    target = lb_ip  # precheck proved the domain resolves here (when the hosts entry is managed)
    addresses = {
        vm.name: f"{next(v.ip for v in report.vms if v.name == vm.name)}:{lab.app.port}"
        for vm in lab.app_vms
    }
    backends = Backends(ctx, mode)
    try:
        for vm in chosen:
            record(_one_down(ctx, backends, vm, target, addresses, requests))
            backends.restore_all()
            record(_recovered(ctx, f"{vm.name} back", lb_ip, frozenset(addresses.values())))
        record(_all_down(ctx, backends, target))
    finally:
        backends.restore_all()
    record(_recovered(ctx, "all back", lb_ip, frozenset(addresses.values())))
    return DrillResult(lab.name, mode, steps)


def _choose(ctx: LabContext, names: list[str] | None) -> list[Vm]:
    if not names:
        return ctx.lab.app_vms
    chosen = []
    for name in names:
        vm = ctx.lab.vm(name)
        if vm is None or "app" not in vm.roles:
            apps = ", ".join(v.name for v in ctx.lab.app_vms)
            raise ConfigError(
                [f"--vm {name}: not an app VM of lab {ctx.lab.name!r} (app VMs: {apps})"]
            )
        chosen.append(vm)
    return chosen


def _one_down(
    ctx: LabContext,
    backends: Backends,
    vm: Vm,
    target: str,
    addresses: dict[str, str],
    requests: int,
) -> DrillStep:
    started = time.monotonic()
    how = backends.how(vm)
    backends.take_down(vm)
    tally = hammer(
        target,
        ctx.lab.lb.port,
        ctx.lab.domain,
        requests=requests,
        deadline=max(60.0, requests * 0.5),
        timeout=CLIENT_TIMEOUT,
    )
    down_address = addresses[vm.name]
    leaked = tally.by_backend.get(down_address, 0)
    passed = tally.total == requests and tally.ok == tally.total and leaked == 0
    survivors = sorted(name for name, addr in addresses.items() if addr in tally.by_backend)
    observed = (
        f"{tally.ok}/{tally.total} x 200 from {', '.join(survivors) or 'nobody'}"
        + (f"; {leaked} answered by the downed backend" if leaked else "")
        + _others(tally)
    )
    return DrillStep(
        f"{vm.name} down ({how})",
        f"{requests}/{requests} x 200 from the other backends only",
        observed,
        passed,
        time.monotonic() - started,
        dict(tally.by_status),
    )


def _all_down(ctx: LabContext, backends: Backends, target: str) -> DrillStep:
    started = time.monotonic()
    for vm in ctx.lab.app_vms:
        backends.take_down(vm)
    tally = hammer(
        target,
        ctx.lab.lb.port,
        ctx.lab.domain,
        requests=ALL_DOWN_REQUESTS,
        deadline=120.0,
        timeout=CLIENT_TIMEOUT,
    )
    # A frozen backend accepts the connection and never answers: nginx gives 504 on the request that
    # waited out proxy_read_timeout, then 502 once every server is marked failed
    # (docs/nginx-failover.md).
    # A stopped VM is the same at connect time: its IP drops the SYN (or answers EHOSTUNREACH only
    # after ARP gives up), so a request whose last try timed out gets 504 (seen on real VMs).
    accepted = {"502", "504"} if backends.mode in ("freeze", "vm") else {"502"}
    answered = sum(count for code, count in tally.by_status.items() if code in accepted)
    passed = tally.total == ALL_DOWN_REQUESTS and answered == tally.total
    expectation = (
        f"{ALL_DOWN_REQUESTS}/{ALL_DOWN_REQUESTS} x {' or '.join(sorted(accepted))} from nginx"
    )
    return DrillStep(
        "all backends down",
        expectation,
        _codes(tally),
        passed,
        time.monotonic() - started,
        dict(tally.by_status),
    )


def _recovered(ctx: LabContext, name: str, lb_ip: str, expected: frozenset[str]) -> DrillStep:
    started = time.monotonic()
    try:
        wait_serving(ctx, lb_ip, expected, use_resolution=False, what="recovery", interval=0.5)
    except ProbeTimeoutError as exc:
        return DrillStep(
            name, "every backend serves again", exc.message, False, time.monotonic() - started
        )
    seconds = time.monotonic() - started
    return DrillStep(
        name,
        "every backend serves again",
        f"all {len(expected)} serving after {seconds:.1f}s",
        True,
        seconds,
    )


def _codes(tally: Tally) -> str:
    return (
        ", ".join(f"{count} x {code}" for code, count in sorted(tally.by_status.items()))
        or "no requests"
    )


def _others(tally: Tally) -> str:
    bad = {code: n for code, n in tally.by_status.items() if code != "200"}
    return "; " + ", ".join(f"{n} x {code}" for code, n in sorted(bad.items())) if bad else ""
