"""How class results look: the up summary, the status matrix, the capacity table, and any other
command's per-student sections. Only the CLI calls this."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labctl.cli.output import for_student, print_failures
from labctl.ops.classroom.fanout import StudentRun
from labctl.ops.classroom.status import ClassStatus, cell_of
from labctl.ops.classroom.up import ClassUpResult, HostCapacity, failed_stage

T = TypeVar("T")
_STATUS = {
    "ok": "[green]ok[/green]",
    "warn": "[yellow]warn[/yellow]",
    "fail": "[red]FAIL[/red]",
    "skip": "[dim]skip[/dim]",
}


def _where(run: StudentRun[Any]) -> str:
    return run.host + (f" ({run.address})" if run.address else "")


def print_capacity(out: Console, rows: list[HostCapacity], *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("host", "students", "cpu", "memory", "disk", "figures"):
        table.add_column(column)
    for row in rows:
        cells = {check.name: check for check in row.checks}
        table.add_row(
            escape(row.host + (f" ({row.address})" if row.address else "")),
            str(len(row.students)),
            *(
                f"{_STATUS[cells[name].status]} {escape(cells[name].detail)}"
                if name in cells
                else "-"
                for name in ("cpu", "memory", "disk")
            ),
            escape(
                row.source + (f"; list failed: {row.listing_error}" if row.listing_error else "")
            ),
        )
    out.print(table)


def print_class_up(out: Console, err: Console, result: ClassUpResult) -> None:
    if result.refused:
        print_capacity(out, result.capacity, title=f"class {result.lab}: what does not fit")
        unfit = [row.host for row in result.capacity if not row.fits]
        err.print(
            f"[red]refusing to launch anything:[/red] the class does not fit on "
            f"{escape(', '.join(unfit))} (see the table). Use fewer students (--student), smaller "
            "VMs (defaults: in lab.yaml), another host (hosts:), or `labctl up --force`.",
        )
        return
    for run in result.failed:
        err.print(f"[bold]── {escape(run.student)}[/bold] on {escape(_where(run))}", markup=True)
        if run.result is not None:
            print_failures(err, run.result.failures, student=run.student)
        else:
            err.print(f"[red]✗ {escape(failed_stage(run))}:[/red] {escape(run.error)}")
            if run.hint:
                err.print(f"  {for_student(run.hint, run.student)}", markup=False)
    table = Table(title=f"class {result.lab}", title_justify="left")
    for column in ("student", "host", "domain", "LB", "result"):
        table.add_column(column)
    for run in result.students:
        ok = run.result is not None and run.result.ok
        lb = run.result.lb_ip if run.result is not None and run.result.lb_ip else "-"
        table.add_row(
            escape(run.student),
            escape(_where(run)),
            escape(run.domain),
            lb,
            "[green]up[/green]" if ok else f"[red]failed at {escape(failed_stage(run))}[/red]",
        )
    out.print(table)
    up = [run.student for run in result.up]
    failed = [f"{run.student} ({failed_stage(run)})" for run in result.failed]
    out.print(
        f"{len(up)} of {len(result.students)} student lab(s) up ({result.seconds:.0f}s)"
        + (f"; [red]failed:[/red] {escape(', '.join(failed))}" if failed else "")
    )
    if failed:
        # "up again continues" only for students whose failures it really continues (issue 12)
        stuck = [
            run.student
            for run in result.failed
            if run.result is not None and not all(f.resumable for f in run.result.failures)
        ]
        again = [run.student for run in result.failed if run.student not in stuck]
        if again:
            out.print(
                f"`labctl up` again continues {'the failed ones' if not stuck else ', '.join(again)}"
                " (the others are left as they are); `labctl status` shows the matrix.",
                markup=False,
            )
        if stuck:
            out.print(
                f"{', '.join(stuck)}: follow the hint printed for that student above.",
                markup=False,
            )


def print_class_status(out: Console, report: ClassStatus) -> None:
    table = Table(title=f"class {report.lab}", title_justify="left")
    for column in (
        "student",
        "host",
        *report.vms,
        "cloud-init",
        "pm2",
        "nginx",
        "domain",
        "health",
    ):
        table.add_column(column)
    for run in report.students:
        if run.result is None:
            table.add_row(
                escape(run.student),
                escape(run.host),
                *["?" for _ in report.vms],
                "-",
                "-",
                "-",
                "-",
                f"[red]{escape(run.error)}[/red]",
            )
            continue
        cell = cell_of(run.result)
        table.add_row(
            escape(run.student),
            escape(run.host),
            *(
                ("[green]" if cell.vm_ok.get(vm) else "[red]")
                + escape(cell.vm_states.get(vm, "?"))
                + ("[/green]" if cell.vm_ok.get(vm) else "[/red]")
                for vm in report.vms
            ),
            escape(cell.cloud_init),
            escape(cell.pm2),
            escape(cell.nginx),
            escape(f"{run.domain}: {cell.domain}"),
            "[green]ok[/green]"
            if run.result.healthy
            else f"[red]{len(run.result.problems)} problem(s)[/red]",
        )
    out.print(table)
    sick = [run for run in report.students if run.result is None or not run.result.healthy]
    healthy = len(report.students) - len(sick)
    out.print(f"{healthy} of {len(report.students)} student lab(s) healthy ({report.seconds:.1f}s)")
    for run in sick:
        problems = run.result.problems if run.result is not None else [run.error]
        for problem in problems:
            out.print(f"  - {run.student}: {problem}", markup=False)


def print_runs(
    out: Console,
    err: Console,
    runs: list[StudentRun[T]],
    show: Callable[[StudentRun[T], T], None],
    *,
    title: str,
) -> None:
    """Each student's section (the single-lab output), then who failed."""
    for run in runs:
        out.print(
            f"[bold]── {escape(run.student)}[/bold] ({escape(run.lab)} on {escape(_where(run))})"
        )
        if run.result is not None:
            show(run, run.result)
        else:
            err.print(f"[red]error:[/red] {escape(run.error)}")
            if run.hint:
                err.print(for_student(run.hint, run.student), markup=False)
    failed = [run.student for run in runs if run.error]
    out.print(
        f"{title}: {len(runs) - len(failed)} of {len(runs)} student(s) done"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        markup=False,
    )


def runs_json(runs: list[StudentRun[T]], ok: Callable[[T], bool]) -> str:
    rows = []
    for run in runs:
        result: Any = run.result
        rows.append(
            {
                "student": run.student,
                "host": run.host,
                "address": run.address,
                "lab": run.lab,
                "domain": run.domain,
                "ok": run.result is not None and ok(run.result),
                "error": run.error or None,
                "result": asdict(result)
                if is_dataclass(result) and not isinstance(result, type)
                else None,
            }
        )
    return json.dumps({"students": rows}, indent=2)
