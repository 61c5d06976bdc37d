"""The built-in checks that stop something for a moment: failover (drill's machinery: one app
down, then all) and pm2's saved process list (pm2 kill + resurrect). Whatever happens (a failed
step, an error, Ctrl-C) they restore what they stopped in `finally` and wait for the app again,
so a student's lab is changed no longer than the check runs."""

from __future__ import annotations

import time
from collections import Counter
from typing import Final

from labctl.errors import LabctlError, ProbeTimeoutError
from labctl.host.probes import fetch, wait_until
from labctl.model import Vm
from labctl.ops.checks.base import Target, Verdict
from labctl.ops.checks.builtin import direct_page
from labctl.ops.drill import Backends

ONE_DOWN_REQUESTS: Final = 10
ALL_DOWN_REQUESTS: Final = 6
CLIENT_TIMEOUT: Final = 15.0  # above nginx's usual connect/read timeouts: nginx decides
RESURRECT_WAIT: Final = (
    30.0  # pm2 resurrect starts the saved apps: seconds for a Node or static app
)
NGINX_FAIL_TIMEOUT: Final = (
    10.0  # nginx's default fail_timeout: how long a failed server is skipped
)
PM2_STARTUP_COMMAND: Final = ["systemctl", "is-enabled", "pm2-ubuntu"]
# labctl's own start (provision-app.sh) without `pm2 save`: the student's saved list stays theirs.
PM2_RESTART_COMMAND: Final = ["sh", "-c", "cd ~/app && pm2 startOrReload ecosystem.config.js"]


class LabLeftChangedError(LabctlError):
    """A check could not restore what it stopped: the run's error (exit 1), not a grade."""


def failover(target: Target) -> Verdict:
    """With one app stopped every request still gets 200; with all stopped nginx answers 502/504."""
    ctx, lab = target.ctx, target.ctx.lab
    lb_ip = target.lab_ip
    if lb_ip is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    down = [why for vm in lab.app_vms if (why := target.unreachable(vm))]
    if down:
        return Verdict(False, "; ".join(down))
    before, reached = _codes(target, lb_ip, 2 * len(lab.app_vms) + 2)
    if before.get("200", 0) == 0:
        return Verdict(False, f"the domain does not serve to begin with ({_shown(before)})")
    # Wait after a restore only for backends the LB reached before: others will never show.
    serving = [vm for vm in lab.app_vms if vm.name in reached]
    backends = Backends(ctx, "app")
    failures: list[str] = []
    try:
        for vm in lab.app_vms:
            backends.take_down(vm)
            codes, _ = _codes(target, lb_ip, ONE_DOWN_REQUESTS)
            if codes.get("200", 0) != ONE_DOWN_REQUESTS:
                failures.append(f"{vm.name} stopped: {_shown(codes)}")
            backends.restore_all()  # (a failure here: the finally below tries again)
            _recover(target, lb_ip, vm, vm in serving)
        for vm in lab.app_vms:
            backends.take_down(vm)
        codes, _ = _codes(target, lb_ip, ALL_DOWN_REQUESTS)
        gateway = codes.get("502", 0) + codes.get("504", 0)
        if gateway != ALL_DOWN_REQUESTS:
            failures.append(f"all stopped: {_shown(codes)}, not 502/504")
    finally:
        try:
            backends.restore_all()
        except LabctlError as exc:
            raise LabLeftChangedError(exc.message, hint=exc.hint) from None
        for vm in lab.app_vms:
            _recover(target, lb_ip, vm, vm in serving)
    if failures:
        return Verdict(False, "; ".join(failures))
    return Verdict(
        True, f"one down: {ONE_DOWN_REQUESTS}/{ONE_DOWN_REQUESTS} x 200; all down: 502/504"
    )


def pm2_resurrect(target: Target) -> Verdict:
    """pm2's saved list brings the app back after `pm2 kill` + `pm2 resurrect`, and the pm2
    startup unit (which resurrects it at boot) is enabled."""
    lab = target.ctx.lab
    problems: list[str] = []
    for vm in lab.app_vms:
        if why := target.unreachable(vm):
            problems.append(why)
            continue
        problems += _resurrect_one(target, vm)
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{lab.app.name} comes back after pm2 kill + resurrect; startup enabled")


def _resurrect_one(target: Target, vm: Vm) -> list[str]:
    ctx, lab = target.ctx, target.ctx.lab
    mp, name = ctx.multipass, lab.instance_name(vm)
    problems: list[str] = []
    enabled = mp.exec(name, PM2_STARTUP_COMMAND, timeout=lab.waits.check)
    if enabled.returncode != 0:
        problems.append(f"{vm.name}: pm2 startup is not enabled (run pm2 startup, then pm2 save)")
    try:
        mp.exec(name, ["pm2", "kill"], timeout=60, check=True)
        mp.exec(name, ["pm2", "resurrect"], timeout=60)
        if not _app_answers(target, vm, within=min(RESURRECT_WAIT, lab.waits.serve)):
            problems.append(f"{vm.name}: {lab.app.name} did not come back (was pm2 save run?)")
    finally:
        if not _app_answers(target, vm, within=1.0):
            _restore_app(target, vm)
    return problems


def _restore_app(target: Target, vm: Vm) -> None:
    lab, mp = target.ctx.lab, target.ctx.multipass
    try:
        mp.exec(lab.instance_name(vm), PM2_RESTART_COMMAND, timeout=120, check=True)
    except LabctlError as exc:
        raise LabLeftChangedError(
            f"{vm.name}: could not start the app again after the pm2 check: {exc.message}",
            hint="Run `labctl reset` for this lab to bring it back.",
        ) from None
    if not _app_answers(target, vm, within=lab.waits.serve):
        raise LabLeftChangedError(
            f"{vm.name}: the app does not answer after the pm2 check restarted it",
            hint="Run `labctl reset` for this lab to bring it back.",
        )


def _app_answers(target: Target, vm: Vm, *, within: float) -> bool:
    try:
        wait_until(
            lambda: direct_page(target, vm.name),
            lambda page: page.status is not None and page.status < 500,
            timeout=within,
            interval=min(1.0, within),
            describe=lambda page: page.error or f"HTTP {page.status}",
            what=f"the app on {vm.name}",
            sleep=target.ctx.sleep,
        )
    except ProbeTimeoutError:
        return False
    return True


def _recover(target: Target, lb_ip: str, vm: Vm, behind_lb: bool) -> None:
    """Back to serving after a restore: the app answers, then nginx routes to it again (it skips a
    failed server for fail_timeout; without a header naming the backend, wait that long)."""
    lab = target.ctx.lab
    _app_answers(target, vm, within=lab.waits.serve)
    if not behind_lb:
        return
    started = time.monotonic()

    def seen() -> bool:
        page = fetch(lb_ip, lab.lb.port, lab.domain, timeout=CLIENT_TIMEOUT)
        return page.status == 200 and target.backend_of(page.headers) == vm.name

    probe = fetch(lb_ip, lab.lb.port, lab.domain, timeout=CLIENT_TIMEOUT)
    if target.backend_of(probe.headers) is None:
        target.ctx.sleep(NGINX_FAIL_TIMEOUT)
        return
    limit = max(lab.lb.fail_timeout, NGINX_FAIL_TIMEOUT) + 5
    for _ in range(int(limit / 0.2)):  # bounded in count and in time
        if seen() or time.monotonic() - started > limit:
            return
        target.ctx.sleep(0.2)


def _codes(target: Target, lb_ip: str, requests: int) -> tuple[Counter[str], set[str]]:
    """HTTP codes of `requests` GETs through the LB, and the backends that answered 200."""
    lab = target.ctx.lab
    codes: Counter[str] = Counter()
    backends: set[str] = set()
    for _ in range(requests):
        page = fetch(lb_ip, lab.lb.port, lab.domain, timeout=CLIENT_TIMEOUT)
        codes[str(page.status) if page.status else (page.error or "no answer")] += 1
        backend = target.backend_of(page.headers) if page.status == 200 else None
        if backend:
            backends.add(backend)
    return codes, backends


def _shown(codes: Counter[str]) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(codes.items())) or "no requests"
