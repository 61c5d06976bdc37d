"""How `labctl check` results look: a table (one lab) or a student x check matrix (a class) with
the reasons below it, one JSON document, and JUnit XML for CI systems and graders.

Every format takes `Graded` rows: one per lab, its results or the error that kept it from being
checked. PASS/FAIL are words, so the table reads the same without colour (rich drops colour when
stdout is not a terminal).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labctl.ops.checks.base import CheckResult, LabChecks
from labctl.ops.classroom.fanout import StudentRun

_OK_CELL = "[green]PASS[/green]"
_BAD_CELL = "[red]FAIL[/red]"


@dataclass(frozen=True)
class Graded:
    student: str | None  # None: a single lab
    lab: str
    domain: str
    result: LabChecks | None
    error: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.result is not None and not self.error and self.result.passed

    @property
    def label(self) -> str:
        return self.student or self.lab


def from_runs(runs: list[StudentRun[LabChecks]]) -> list[Graded]:
    return [
        Graded(run.student, run.lab, run.domain, run.result, run.error, run.hint) for run in runs
    ]


def from_lab(result: LabChecks) -> list[Graded]:
    return [Graded(None, result.lab, result.domain, result)]


def result_printer(console: Console) -> Callable[[CheckResult], None]:
    """Each check's verdict as it comes (the failover and pm2 checks take a while)."""

    def show(result: CheckResult) -> None:
        mark = _OK_CELL if result.passed else _BAD_CELL
        console.print(f"  {mark} {escape(result.name)}: {escape(result.reason)}")

    return show


def print_lab(out: Console, graded: Graded) -> None:
    result = graded.result
    assert result is not None
    table = Table(
        title=f"lab {result.lab} ({result.domain}, stage {result.stage})", title_justify="left"
    )
    for column in ("check", "result", "reason", "time"):
        table.add_column(column)
    for item in result.results:
        table.add_row(
            escape(item.name),
            _OK_CELL if item.passed else _BAD_CELL,
            escape(item.reason),
            f"{item.seconds:.1f}s",
        )
    out.print(table)
    _print_total(out, [graded])


def print_matrix(out: Console, rows: list[Graded], names: list[str]) -> None:
    """The class: one row per student, one column per check; then why each FAIL failed."""
    table = Table(title="checks", title_justify="left")
    table.add_column("student")
    for name in names:
        table.add_column(escape(name))
    table.add_column("passed")
    for row in rows:
        if row.result is None or row.error:
            table.add_row(escape(row.label), *(["-"] * len(names)), _BAD_CELL)
            continue
        by_name = {r.name: r for r in row.result.results}
        cells = [
            "-" if name not in by_name else _OK_CELL if by_name[name].passed else _BAD_CELL
            for name in names
        ]
        done = sum(r.passed for r in row.result.results)
        table.add_row(escape(row.label), *cells, f"{done}/{len(row.result.results)}")
    out.print(table)
    failing = [row for row in rows if not row.passed]
    if failing:
        out.print("why:")
    for row in failing:
        if row.result is None or row.error:
            out.print(f"  {escape(row.label)}: not checked: {escape(row.error)}")
            continue
        for item in row.result.results:
            if not item.passed:
                out.print(f"  {escape(row.label)} {escape(item.name)}: {escape(item.reason)}")
    _print_total(out, rows)


def _print_total(out: Console, rows: list[Graded]) -> None:
    passed = sum(row.passed for row in rows)
    if len(rows) == 1:
        line = "all checks pass" if rows[0].passed else "some checks fail"
    else:
        line = f"{passed}/{len(rows)} labs pass every check"
    out.print(f"[green]{line}[/green]" if passed == len(rows) else f"[red]{line}[/red]")


def checks_json(rows: list[Graded]) -> str:
    """One document: per lab (student), per check: status, reason, duration."""
    labs: list[dict[str, Any]] = []
    for row in rows:
        entry: dict[str, Any] = {"student": row.student, "lab": row.lab, "domain": row.domain}
        if row.result is not None:
            entry |= row.result.to_dict()
        entry |= {"passed": row.passed, "error": row.error or None}
        entry.setdefault("checks", [])
        labs.append(entry)
    return json.dumps({"passed": all(row.passed for row in rows), "labs": labs}, indent=2)


def checks_junit(rows: list[Graded]) -> str:
    """JUnit XML: one testsuite per student (lab), one testcase per check, failure = the reason."""
    suites = ET.Element("testsuites", name="labctl check")
    total = failures = errors = 0
    for row in rows:
        results = row.result.results if row.result is not None and not row.error else []
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=row.label,
            tests=str(len(results) or 1),
            failures=str(sum(not r.passed for r in results)),
            errors="0" if results else "1",
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        ET.SubElement(
            ET.SubElement(suite, "properties"), "property", name="domain", value=row.domain
        )
        if not results:
            case = ET.SubElement(suite, "testcase", classname=row.lab, name="lab", time="0")
            ET.SubElement(case, "error", message=row.error or "not checked")
            errors += 1
            total += 1
            continue
        for item in results:
            case = ET.SubElement(
                suite, "testcase", classname=row.lab, name=item.name, time=f"{item.seconds:.3f}"
            )
            if not item.passed:
                failure = ET.SubElement(case, "failure", message=item.reason, type="check")
                failure.text = item.reason
                failures += 1
            total += 1
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
