"""How bringing a lab up or wiring it again ends: each failure (stage, VM, log tail, the hint
scoped to the student in a class), or the line saying the domain serves (up, reset, snapshot)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from labctl.cli.terminal import SafeConsole, line, tidy_log
from labctl.ops.failures import StageFailure
from labctl.ops.wire import Wiring

_LABCTL_COMMAND: Final = re.compile(r"`labctl ([a-z][^`]*)`")


def for_student(text: str, student: str | None) -> str:
    """Hints name single-lab commands; inside a class they must carry `--student NAME`, or
    following them would act on every student."""
    if not student:
        return text

    def scoped(match: re.Match[str]) -> str:
        command, separator, rest = match.group(1).partition(" -- ")
        scoped_command = f"{command} --student {student}"
        return f"`labctl {scoped_command}{separator}{rest}`"

    return _LABCTL_COMMAND.sub(scoped, text)


def print_failures(
    err: SafeConsole, failures: list[StageFailure], *, student: str | None = None
) -> None:
    hints: set[str] = set()
    for failure in failures:
        where = f" [{failure.vm}]" if failure.vm else ""
        err.print(line((f"✗ {failure.stage}{where}:", "red"), " ", failure.message))
        if failure.log_tail.strip():
            err.print("  last log lines:")
            for log_line in tidy_log(failure.log_tail.rstrip()).splitlines()[-40:]:
                err.print(f"  | {log_line}")
        if failure.hint and failure.hint not in hints:  # e.g. daemon down: once, not per VM
            hints.add(failure.hint)
            err.print(f"  {for_student(failure.hint, student)}")


def print_serving(
    out: SafeConsole,
    *,
    url: str,
    lb_ip: str | None,
    backends_seen: Iterable[str],
    backend_names: dict[str, str],
    seconds: float,
) -> None:
    """`http://hello.lab/ is serving via 10.0.0.5 through app1, app2 (42s)`."""
    seen = sorted(backend_names.get(b, b) for b in backends_seen)
    out.print(
        line(
            (f"{url} is serving", "green"),
            f" via {lb_ip or '?'} through {', '.join(seen)} ({seconds:.0f}s)",
        )
    )


def print_if_serving(out: SafeConsole, wiring: Wiring, seconds: float) -> None:
    """After reset or a snapshot: that the domain serves, when the wiring found it does."""
    if wiring.ok and wiring.check is not None:
        print_serving(
            out,
            url=wiring.url,
            lb_ip=wiring.lb_ip,
            backends_seen=wiring.check.backends_seen,
            backend_names=wiring.backend_names,
            seconds=seconds,
        )
