"""The built-in checks that stop something for a moment: failover (drill's machinery: one app
down, then all) and pm2's saved process list (pm2 kill + resurrect). Whatever happens (a failed
step, an error, Ctrl-C) they restore what they stopped in `finally` and wait for the app again,
so a student's lab is changed no longer than the check runs."""

from __future__ import annotations

from typing import Final

from labctl.errors import LabctlError
from labctl.model import Vm
from labctl.ops.checks.base import Target, Verdict, direct_page
from labctl.ops.checks.checkfile import ask_domain, check_file
from labctl.ops.checks.evidence import shown
from labctl.ops.checks.recovery import (
    CLIENT_TIMEOUT,
    LabLeftChangedError,
    app_answers,
    recover,
    restore,
    still_answers,
)
from labctl.ops.drill import Backends

ONE_DOWN_REQUESTS: Final = 10
ALL_DOWN_REQUESTS: Final = 6
RESURRECT_WAIT: Final = (
    30.0  # pm2 resurrect starts the saved apps: seconds for a Node or static app
)
PM2_STARTUP_COMMAND: Final = ["systemctl", "is-enabled", "pm2-ubuntu"]
# `pm2 kill`, then, when pm2's startup unit ran the daemon (after a boot), until systemd has
# finished stopping that unit: its ExecStop is another `pm2 kill`, which spawns a daemon to kill
# it, and a `pm2 resurrect` meanwhile hangs on that daemon (seen when the next exec comes at once).
PM2_KILL_COMMAND: Final = [
    "sh",
    "-c",
    "was=$(systemctl is-active pm2-ubuntu 2>/dev/null); pm2 kill || exit $?; "
    '[ "$was" = active ] || exit 0; i=0; while [ $i -lt 60 ]; do '
    "case $(systemctl is-active pm2-ubuntu 2>/dev/null) in active|deactivating) ;; *) exit 0;; "
    "esac; sleep 0.5; i=$((i+1)); done",
]
# labctl's own start (provision-app.sh) without `pm2 save`: the student's saved list stays theirs.
PM2_RESTART_COMMAND: Final = ["sh", "-c", "cd ~/app && pm2 startOrReload ecosystem.config.js"]

__all__ = ["LabLeftChangedError", "failover", "pm2_resurrect"]


def failover(target: Target) -> Verdict:
    """With one app stopped (`pm2 stop`) its port stops answering and every request still gets
    200 from the others (its check file never comes through); with all stopped nginx answers
    502/504."""
    ctx, lab = target.ctx, target.ctx.lab
    lb_ip = target.lab_ip
    if lb_ip is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    down = [why for vm in lab.app_vms if (why := target.unreachable(vm))]
    if down:
        return Verdict(False, "; ".join(down))
    check = check_file(target)
    before = ask_domain(target, lb_ip, check, 2 * len(lab.app_vms) + 2, timeout=CLIENT_TIMEOUT)
    if before.codes.get("200", 0) == 0:
        what = "the app" if check is None else "labctl's check file"
        return Verdict(
            False,
            f"the domain does not serve {what} to begin with ({shown(before.codes)}); "
            f"directly: {_direct_answers(target, '/' if check is None else check.path)}",
        )
    # Wait after a restore only for backends the LB reached before: others will never show.
    serving = set(before.tokens) if check is not None else set(before.claimed)
    backends = Backends(ctx, "app")
    failures: list[str] = []
    try:
        for vm in lab.app_vms:
            backends.take_down(vm)
            failures += _one_down(target, lb_ip, vm)
            restore(backends)  # (a failure here: the finally below tries again)
            recover(target, lb_ip, [vm], serving)
        for vm in lab.app_vms:
            backends.take_down(vm)
        codes = ask_domain(target, lb_ip, check, ALL_DOWN_REQUESTS, timeout=CLIENT_TIMEOUT).codes
        gateway = codes.get("502", 0) + codes.get("504", 0)
        if gateway != ALL_DOWN_REQUESTS:
            failures.append(f"all stopped: {shown(codes)}, not 502/504")
    finally:
        restore(backends)
        recover(target, lb_ip, lab.app_vms, serving)
    if failures:
        return Verdict(False, "; ".join(failures))
    return Verdict(
        True,
        f"one down: its port closed, {ONE_DOWN_REQUESTS}/{ONE_DOWN_REQUESTS} x 200 from the "
        "others; all down: 502/504",
    )


def _direct_answers(target: Target, path: str) -> str:
    """What each app answers on its own port now: tells a dead app from an LB that fails."""
    answers = []
    for vm in target.ctx.lab.app_vms:
        page = direct_page(target, vm.name, path)
        answers.append(
            f"{vm.name} " + (f"HTTP {page.status}" if page.status else page.error or "no answer")
        )
    return ", ".join(answers)


def _one_down(target: Target, lb_ip: str, vm: Vm) -> list[str]:
    """What went wrong with the app on `vm` stopped: its port must stop answering, and the
    domain must serve every request from the others."""
    lab = target.ctx.lab
    check = target.evidence.check_file
    if (page := still_answers(target, vm)) is not None:
        return [
            f"{vm.name} stopped (pm2 stop {lab.app.name}), but port {lab.app.port} still answers "
            f"(HTTP {page.status}): pm2's {lab.app.name} is not what serves it"
        ]
    sample = ask_domain(target, lb_ip, check, ONE_DOWN_REQUESTS, timeout=CLIENT_TIMEOUT)
    if sample.codes.get("200", 0) != ONE_DOWN_REQUESTS:
        return [f"{vm.name} stopped: {shown(sample.codes)}"]
    if check is None:
        return []
    if sample.tokens.get(vm.name):
        return [f"{vm.name} stopped, but its check file still came through the domain"]
    if sample.foreign:
        return [f"{vm.name} stopped: {sample.foreign} x 200 without the check file, not the app's"]
    return []


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
    mp, name = ctx.engine, lab.instance_name(vm)
    problems: list[str] = []
    enabled = mp.exec(name, PM2_STARTUP_COMMAND, timeout=lab.waits.check)
    if enabled.returncode != 0:
        problems.append(f"{vm.name}: pm2 startup is not enabled (run pm2 startup, then pm2 save)")
    try:
        mp.exec(name, PM2_KILL_COMMAND, timeout=60, check=True)
        mp.exec(name, ["pm2", "resurrect"], timeout=60)
        if not app_answers(target, vm, within=min(RESURRECT_WAIT, lab.waits.serve)):
            problems.append(f"{vm.name}: {lab.app.name} did not come back (was pm2 save run?)")
    finally:
        if not app_answers(target, vm, within=1.0):
            _restore_app(target, vm)
    return problems


def _restore_app(target: Target, vm: Vm) -> None:
    lab, mp = target.ctx.lab, target.ctx.engine
    try:
        mp.exec(lab.instance_name(vm), PM2_RESTART_COMMAND, timeout=120, check=True)
    except LabctlError as exc:
        raise LabLeftChangedError(
            f"{vm.name}: could not start the app again after the pm2 check: {exc.message}",
            hint="Run `labctl reset` for this lab to bring it back.",
        ) from None
    if not app_answers(target, vm, within=lab.waits.serve):
        raise LabLeftChangedError(
            f"{vm.name}: the app does not answer after the pm2 check restarted it",
            hint="Run `labctl reset` for this lab to bring it back.",
        )
