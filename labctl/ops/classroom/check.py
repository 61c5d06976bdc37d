"""`labctl check` for a class: every selected student's lab graded in parallel (the fan-out),
with ONE headless browser for the whole class (one window per page, a few at a time) when the
browser check is chosen."""

from __future__ import annotations

from pathlib import Path

from labctl.ops.check import check, choose_checks
from labctl.ops.checks.base import LabChecks
from labctl.ops.checks.browser_run import browser_run, state_run_dir
from labctl.ops.classroom.contexts import ClassContext, place, select_students
from labctl.ops.classroom.fanout import StudentRun, class_run, fan_out


def check_class(
    cctx: ClassContext,
    students: list[str] | None,
    only: list[str] | None = None,
    *,
    shots: Path | None = None,
) -> list[StudentRun[LabChecks]]:
    """Each student's `check`; screenshots in `shots` (default: a new run folder in the class's
    state dir), one folder per student lab."""
    chosen = select_students(cctx.lab, students)
    if "browser" not in choose_checks(cctx.lab, only):
        return class_run(cctx, chosen, lambda ctx: check(ctx, only))
    folder = shots or state_run_dir(cctx.class_state)
    labs = [cctx.lab.for_student(student).name for student in chosen]
    with browser_run(labs, folder) as run:
        return fan_out(
            cctx,
            chosen,
            lambda ctx: check(ctx, only, browser=run),
            placement=place(cctx, chosen, persist=False),
            # Ctrl-C: kill the browser before waiting for the students' threads, so pages in
            # progress end at once instead of running to their timeout
            on_interrupt=run.shared.close,
        )
