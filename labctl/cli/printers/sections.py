"""A class run of a command without a class view of its own: one section per student, printed
by the command's own printer, then who failed; as JSON, one entry per student."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from labctl.cli import jsonout
from labctl.cli.printers.wiring import for_student
from labctl.cli.terminal import SafeConsole, line
from labctl.ops.classroom.fanout import StudentRun

T = TypeVar("T")


def where(run: StudentRun[Any]) -> str:
    """The host a student's lab is on: `east (10.0.0.2)`, or `local`."""
    return run.host + (f" ({run.remote})" if run.remote else "")


def print_sections(
    out: SafeConsole,
    err: SafeConsole,
    runs: list[StudentRun[T]],
    show: Callable[[T], None],
    *,
    title: str,
) -> None:
    """Each student's section (the single-lab output), then who failed."""
    for run in runs:
        out.print(line((f"── {run.student}", "bold"), f" ({run.lab} on {where(run)})"))
        if run.result is not None:
            show(run.result)
        else:
            err.print(line(("error:", "red"), f" {run.error}"))
            if run.hint:
                err.print(for_student(run.hint, run.student))
    failed = [run.student for run in runs if run.error]
    out.print(
        f"{title}: {len(runs) - len(failed)} of {len(runs)} student(s) done"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )


def sections_document(runs: list[StudentRun[T]], ok: Callable[[T], bool]) -> dict[str, Any]:
    """{"students": [{student, host, remote, lab, domain, ok, error, result}]}."""
    return {
        "students": [
            {
                "student": run.student,
                "host": run.host,
                "remote": run.remote,
                "lab": run.lab,
                "domain": run.domain,
                "ok": run.result is not None and ok(run.result),
                "error": run.error or None,
                "result": jsonout.data(run.result) if run.result is not None else None,
            }
            for run in runs
        ]
    }
