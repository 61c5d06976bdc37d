"""`labctl check`: grade a lab, or a class (a student x check matrix), as a table, JSON or JUnit.

Exit 0 when every check of every selected lab passes, 1 when any fails (or a lab could not be
checked), 2 for bad input (guard).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli import output_check
from labctl.cli.app import (
    JsonOption,
    LabFileOption,
    StudentOption,
    app,
    guard,
    lab_context,
    stderr,
    stdout,
)
from labctl.cli.classroom import class_context
from labctl.config.load import load_lab
from labctl.errors import EXIT_FAILED, LabctlError
from labctl.ops.check import check as check_lab
from labctl.ops.check import choose_checks
from labctl.ops.classroom.fanout import class_run


@app.command()
@guard
def check(
    file: LabFileOption = Path("lab.yaml"),
    student: StudentOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-c",
            metavar="NAME",
            help="Only this check (repeatable; default: all of them).",
        ),
    ] = None,
    as_json: JsonOption = False,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write the results as JUnit XML to this file."),
    ] = None,
) -> None:
    """Check the work done in the lab (a class: every student's, or those named with
    --student): the app under pm2 and its saved list, the domain, the reverse proxy, load
    balancing, failover, and lab.yaml's own checks. The failover and pm2 checks stop apps for a
    moment and always restore them.

    Example: labctl check --student alice --junit results.xml
    """
    lab_file = load_lab(file)
    names = choose_checks(lab_file.lab, only)  # bad names: exit 2 before anything runs
    if lab_file.lab.is_class:
        runs = class_run(class_context(lab_file), student, lambda ctx: check_lab(ctx, only))
        rows = output_check.from_runs(runs)
    else:
        show = None if as_json else output_check.result_printer(stderr)
        rows = output_check.from_lab(
            check_lab(lab_context(lab_file, student), only, on_result=show)
        )
    if junit is not None:
        try:
            junit.write_text(output_check.checks_junit(rows), encoding="utf-8")
        except OSError as exc:
            raise LabctlError(f"cannot write {junit}: {exc.strerror}") from None
    if as_json:
        stdout.out(output_check.checks_json(rows), highlight=False)
    elif lab_file.lab.is_class:
        output_check.print_matrix(stdout, rows, names)
    else:
        output_check.print_lab(stdout, rows[0])
    if not all(row.passed for row in rows):
        raise typer.Exit(EXIT_FAILED)
