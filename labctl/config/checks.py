"""Rules for lab.yaml's own checks (`checks:`): one kind each, VMs of this lab, names unique
ignoring case (the built-in ones included), and a total time budget; called from `load.cross_check`.

`labctl check` runs the checks one after the other while it holds the lab's lock, so their worst
case adds up: every attempt timing out, every retry waited for. A lab whose checks could keep the
lock (and the instructor) waiting longer than `MAX_CHECKS_SECONDS` is refused.
"""

from __future__ import annotations

from typing import Final

from labctl.config.yamlpos import Path_
from labctl.model import BUILTIN_CHECKS, CustomCheck, Lab

MAX_CHECKS_SECONDS: Final = 30 * 60  # 100 checks at the default 10 s fit, with room


def worst_case_seconds(check: CustomCheck) -> float:
    """How long one check can take: every attempt times out, every retry is waited for."""
    return (1 + check.retry) * check.timeout + check.retry * check.retry_interval


def check_checks(lab: Lab) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    names: dict[str, tuple[int, str]] = {}  # lower-cased name -> (index, as written)
    builtin = {name.lower(): name for name in BUILTIN_CHECKS}
    vms = ", ".join(vm.name for vm in lab.vms)
    for i, check in enumerate(lab.checks):
        key = check.name.lower()  # `--check`, JUnit test names and a person reading tell no case
        if key in builtin:
            message = (
                f"{check.name!r} is a built-in check's name"
                if builtin[key] == check.name
                else f"{check.name!r} is the built-in check {builtin[key]!r} (names are compared "
                "ignoring case)"
            )
            found.append((("checks", i, "name"), message))
        elif key in names:
            index, written = names[key]
            same = (
                "" if written == check.name else f" {written!r}; names are compared ignoring case"
            )
            found.append(
                (
                    ("checks", i, "name"),
                    f"duplicate check {check.name!r} (also checks[{index}]{same})",
                )
            )
        names.setdefault(key, (i, check.name))
        if (check.http is None) == (check.command is None):
            found.append((("checks", i), "give exactly one of http or command"))
        for kind, expect in (("http", check.http), ("command", check.command)):
            vm = getattr(expect, "vm", None)
            if vm is not None and lab.vm(vm) is None:
                found.append(((("checks", i, kind, "vm")), f"no VM named {vm!r} (VMs: {vms})"))
    return found + _budget(lab)


def _budget(lab: Lab) -> list[tuple[Path_, str]]:
    total = sum(worst_case_seconds(check) for check in lab.checks)
    if total <= MAX_CHECKS_SECONDS:
        return []
    longest = max(range(len(lab.checks)), key=lambda i: worst_case_seconds(lab.checks[i]))
    return [
        (
            ("checks",),
            f"the checks can take {_minutes(total)} in all (each attempt's timeout, times 1 + "
            f"retry, plus the retry intervals); at most {_minutes(MAX_CHECKS_SECONDS)} are "
            f"allowed: shorten the timeouts or retries (the longest is checks[{longest}], "
            f"{lab.checks[longest].name!r}: {_minutes(worst_case_seconds(lab.checks[longest]))})",
        )
    ]


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole // 60, 60)
    return f"{hours} h {rest} min" if hours else f"{rest} min"
