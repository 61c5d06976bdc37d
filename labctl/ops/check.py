"""`labctl check`: grade one lab (a student's work) against the built-in checks and lab.yaml's.

The lab is gathered once (`status`), then each check runs in the order of `BUILTIN_CHECKS`
(the ones that stop things last, so the others see the lab as the student left it), then the
custom ones. A check's error is that check's failure, never the run's. The lab's lock is held
throughout: the failover and pm2 checks stop apps for a moment and restore them. The run's check
file (checks/checkfile.py), written on the app VMs on first need, is removed at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from labctl.errors import ConfigError, LabctlError
from labctl.model import BUILTIN_CHECKS, CustomCheck, Lab
from labctl.ops.checks import browser, builtin, disruptive
from labctl.ops.checks.base import CheckResult, LabChecks, Target, Verdict, short
from labctl.ops.checks.browser_run import BrowserRun, browser_run, state_run_dir
from labctl.ops.checks.checkfile import remove_check_file
from labctl.ops.checks.custom import run_custom
from labctl.ops.checks.recovery import LabLeftChangedError
from labctl.ops.context import EventKind, LabContext
from labctl.ops.status import status

BUILTIN: Final[dict[str, Callable[[Target], Verdict]]] = {
    "app-online": builtin.app_online,
    "domain-resolves": builtin.domain_resolves,
    "lb-serves": builtin.lb_serves,
    "reverse-proxy": builtin.reverse_proxy,
    "load-balancing": builtin.load_balancing,
    "browser": browser.browser,
    "failover": disruptive.failover,
    "pm2-resurrect": disruptive.pm2_resurrect,
}
assert tuple(BUILTIN) == BUILTIN_CHECKS  # model.py names them for lab.yaml's validation


def _run(name: str, target: Target, custom: dict[str, CustomCheck]) -> Verdict:
    builtin_check = BUILTIN.get(name)
    return builtin_check(target) if builtin_check else run_custom(target, custom[name])


def check_names(lab: Lab) -> list[str]:
    return [*BUILTIN, *(c.name for c in lab.checks)]


def choose_checks(lab: Lab, only: list[str] | None) -> list[str]:
    """The checks to run, in run order; ConfigError (exit 2) for a name that is not one."""
    known = check_names(lab)
    unknown = [name for name in only or [] if name not in known]
    if unknown:
        raise ConfigError(
            [f"--check {name}: no such check (checks: {', '.join(known)})" for name in unknown]
        )
    return [name for name in known if not only or name in only]


def check(
    ctx: LabContext,
    only: list[str] | None = None,
    *,
    browser: BrowserRun | None = None,
    shots: Path | None = None,
) -> LabChecks:
    """Grade one lab; each check is an event as it starts and ends (the failover and pm2 checks
    take a while). `browser`: a class's shared browser run; else, when the browser check is
    chosen, the lab gets its own, with screenshots in `shots` (default: a new run folder in the
    lab's state dir)."""
    chosen = choose_checks(ctx.lab, only)
    with contextlib.ExitStack() as stack:
        if browser is None and "browser" in chosen and ctx.lab.browser.enabled:
            folder = shots or state_run_dir(ctx.lab_state)
            browser = stack.enter_context(browser_run([ctx.lab.name], folder))
        if browser is not None:
            stack.callback(browser.shared.withdraw, ctx.lab.name)  # done: the class need not wait
        return _check(ctx, chosen, browser)


def _check(
    ctx: LabContext,
    chosen: list[str],
    browser: BrowserRun | None,
) -> LabChecks:
    with ctx.locked("check"):
        target = Target(ctx, status(ctx, announce=False), browser=browser)
        results: list[CheckResult] = []
        custom = {c.name: c for c in ctx.lab.checks}
        try:
            for name in chosen:
                started = time.monotonic()
                ctx.emit("check", "start", name)
                try:
                    verdict = _run(name, target, custom)
                except LabLeftChangedError:
                    raise  # the lab was left changed: the run's error, said loudly, not a grade
                except LabctlError as exc:
                    verdict = Verdict(False, f"error: {exc.message}")
                result = CheckResult(
                    name,
                    verdict.passed,
                    short(verdict.reason),
                    time.monotonic() - started,
                    verdict.skipped,
                    verdict.screenshots,
                )
                results.append(result)
                outcome: EventKind = (
                    "skip" if result.skipped else "done" if result.passed else "fail"
                )
                ctx.emit("check", outcome, f"{name}: {result.reason}")
        finally:
            remove_check_file(target)  # also after an error or Ctrl-C
    return LabChecks(ctx.lab.name, ctx.lab.domain, ctx.lab.stage, results)
