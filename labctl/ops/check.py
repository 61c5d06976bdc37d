"""`labctl check`: grade one lab (a student's work) against the built-in checks and lab.yaml's.

The lab is gathered once (`status`), then each check runs in the order of `BUILTIN_CHECKS`
(the ones that stop things last, so the others see the lab as the student left it), then the
custom ones. A check's error is that check's failure, never the run's. The lab's lock is held
throughout: the failover and pm2 checks stop apps for a moment and restore them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from labctl.errors import ConfigError, LabctlError
from labctl.model import BUILTIN_CHECKS, CustomCheck, Lab
from labctl.ops.checks import builtin, disruptive
from labctl.ops.checks.base import CheckResult, LabChecks, Target, Verdict, short
from labctl.ops.checks.custom import run_custom
from labctl.ops.checks.disruptive import LabLeftChangedError
from labctl.ops.context import LabContext
from labctl.ops.stage import staged
from labctl.ops.status import status

BUILTIN: Final[dict[str, Callable[[Target], Verdict]]] = {
    "app-online": builtin.app_online,
    "domain-resolves": builtin.domain_resolves,
    "lb-serves": builtin.lb_serves,
    "reverse-proxy": builtin.reverse_proxy,
    "load-balancing": builtin.load_balancing,
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
    on_result: Callable[[CheckResult], None] | None = None,
) -> LabChecks:
    chosen = choose_checks(ctx.lab, only)
    with ctx.locked("check"):
        ctx = staged(ctx, announce=False)
        target = Target(ctx, status(ctx))
        results: list[CheckResult] = []
        custom = {c.name: c for c in ctx.lab.checks}
        for name in chosen:
            started = time.monotonic()
            try:
                verdict = _run(name, target, custom)
            except LabLeftChangedError:
                raise  # the lab was left changed: the run's error, said loudly, not a grade
            except LabctlError as exc:
                verdict = Verdict(False, f"error: {exc.message}")
            result = CheckResult(
                name, verdict.passed, short(verdict.reason), time.monotonic() - started
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return LabChecks(ctx.lab.name, ctx.lab.domain, ctx.lab.stage, results)
