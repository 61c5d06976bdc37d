"""`labctl check`: grade a lab, or a class (a student x check matrix), as a table, JSON or JUnit.

Each check shows in the progress view while it runs (the view is gone once the table prints, so
each result is printed once). Exit 0 when every check of every selected lab passes, 1 when any
fails (or a lab could not be checked), 2 for bad input (guard).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from labctl.cli.app import JsonOption, LabFileOption, StudentOption, command_app, stderr
from labctl.cli.labs import ClassView, LabCommand, Shown, run_each_lab
from labctl.cli.printers.grades import (
    Graded,
    all_passed,
    checks_document,
    checks_junit,
    from_lab,
    from_runs,
)
from labctl.cli.printers.report import render_report
from labctl.cli.terminal import SafeConsole, styled
from labctl.config.load import load_lab
from labctl.errors import ConfigError, LabctlError
from labctl.ops.check import check as check_lab
from labctl.ops.check import choose_checks
from labctl.ops.checks.base import CheckResult
from labctl.ops.classroom.check import check_class
from labctl.ops.classroom.contexts import ClassContext
from labctl.ops.context import LabContext
from labctl.ops.report import new_report_run, report_runs, save_run, write_index
from labctl.safefs import output_problem, write_output

cli = command_app()


@cli.command()
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
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="DIR",
            help="Also write an HTML report into DIR: the class matrix and every student's "
            "screenshots, newest run first (earlier runs stay in DIR). Opens with no network.",
        ),
    ] = None,
) -> None:
    """Check the work done in the lab (a class: every student's, or those named with
    --student): the app under pm2 and its saved list, the domain, the reverse proxy, load
    balancing, the site in a headless browser (with a screenshot), failover, and lab.yaml's own
    checks. The failover and pm2 checks stop apps for a moment and always restore them.

    Example: labctl check --student alice --junit results.xml --report grades/
    """
    lab_file = load_lab(file)
    names = choose_checks(lab_file.lab, only)  # bad names: exit 2 before anything runs
    problem = output_problem(junit) if junit is not None else None
    if problem is not None:  # before the checks: the disruptive ones stop apps
        raise ConfigError([f"--junit {junit}: {problem}; no check was run"])
    run_dir = new_report_run(report) if report is not None else None  # bad DIR: before checks

    def graded(rows: list[Graded]) -> list[Graded]:
        """The rows, once written as JUnit and the HTML report when asked (before any prints)."""
        if junit is not None:
            try:
                write_output(junit, checks_junit(rows).encode("utf-8"))
            except OSError as exc:
                raise LabctlError(f"cannot write {junit}: {exc.strerror}") from None
        if report is not None and run_dir is not None:
            document = checks_document(rows) | {
                "title": lab_file.lab.name,
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "check_names": names,
            }
            save_run(report, run_dir, document)
            index = write_index(report, render_report(report_runs(report)))
            stderr.print(f"report: {index}", highlight=False)
        return rows

    def one_lab(ctx: LabContext) -> list[Graded]:
        return graded(from_lab(check_lab(ctx, only, shots=run_dir)))

    def each_student(cctx: ClassContext, students: list[str] | None) -> list[Graded]:
        return graded(from_runs(check_class(cctx, students, only, shots=run_dir)))

    command = LabCommand[list[Graded]](
        "check",
        one_lab,
        Shown(
            lambda out, err, rows: print_lab(out, rows[0]),
            ok=all_passed,
            document=checks_document,
        ),
        live=True,
        transient=True,
        classroom=ClassView(
            each_student,
            Shown(
                lambda out, err, rows: print_matrix(out, rows, names),
                ok=all_passed,
                document=checks_document,
            ),
            live=True,
        ),
    )
    run_each_lab(lab_file, student, command, as_json=as_json)


def _ok_cell() -> Text:
    return styled("PASS", "green")


def _bad_cell() -> Text:
    return styled("FAIL", "red")


def _skip_cell() -> Text:
    return styled("SKIP", "yellow")  # could not be checked here (no browser): fails no one


def _cell(result: CheckResult) -> Text:
    return _skip_cell() if result.skipped else _ok_cell() if result.passed else _bad_cell()


def print_lab(out: SafeConsole, graded: Graded) -> None:
    """One lab: a table, one row per check. PASS/FAIL are words, so it reads the same without
    colour (rich drops colour when stdout is not a terminal)."""
    result = graded.result
    assert result is not None
    table = Table(
        title=f"lab {result.lab} ({result.domain}, stage {result.stage})", title_justify="left"
    )
    for column in ("check", "result", "reason", "time"):
        table.add_column(column)
    for item in result.results:
        table.add_row(
            item.name,
            _cell(item),
            item.reason,
            f"{item.seconds:.1f}s",
        )
    out.print(table)
    _print_total(out, [graded])


def print_matrix(out: SafeConsole, rows: list[Graded], names: list[str]) -> None:
    """The class: one row per student, one column per check; then why each FAIL failed."""
    table = Table(title="checks", title_justify="left")
    table.add_column("student")
    for name in names:
        table.add_column(name)
    table.add_column("passed")
    for row in rows:
        if row.result is None or row.error:
            table.add_row(row.label, *(["-"] * len(names)), _bad_cell())
            continue
        by_name = {r.name: r for r in row.result.results}
        cells: list[str | Text] = [
            "-" if name not in by_name else _cell(by_name[name]) for name in names
        ]
        graded = [r for r in row.result.results if not r.skipped]
        done = sum(r.passed for r in graded)
        table.add_row(row.label, *cells, f"{done}/{len(graded)}")
    out.print(table)
    failing = [row for row in rows if not row.passed]
    if failing:
        out.print("why:")
    for row in failing:
        if row.result is None or row.error:
            out.print(f"  {row.label}: not checked: {row.error}")
            continue
        for item in row.result.results:
            if not item.passed and not item.skipped:
                out.print(f"  {row.label} {item.name}: {item.reason}")
    skipped = {
        (item.name, item.reason)
        for row in rows
        if row.result is not None
        for item in row.result.results
        if item.skipped
    }
    for name, reason in sorted(skipped):
        out.print(f"skipped: {name}: {reason}")
    _print_total(out, rows)


def _print_total(out: SafeConsole, rows: list[Graded]) -> None:
    passed = sum(row.passed for row in rows)
    if len(rows) == 1:
        total = "all checks pass" if rows[0].passed else "some checks fail"
    else:
        total = f"{passed}/{len(rows)} labs pass every check"
    out.print(styled(total, "green" if passed == len(rows) else "red"))
