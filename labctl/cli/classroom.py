"""The class side of the `labctl` commands: `--student NAME` (repeatable) or the whole class.

lab.py and lifecycle.py hand a class lab.yaml over to these functions; each runs the single-lab
use case per student (ops/classroom/fanout.py) and prints through output_class.py. Exit 1 when any selected
student failed or is unhealthy.
"""

from __future__ import annotations

from typing import Literal

import typer

from labctl.cli import output, output_class, output_json, output_lifecycle
from labctl.cli.app import stderr, stdout, view
from labctl.config.load import LabFile
from labctl.errors import EXIT_FAILED
from labctl.ops import snapshot
from labctl.ops.classroom.contexts import ClassContext, place, select_students
from labctl.ops.classroom.fanout import class_run
from labctl.ops.classroom.status import class_status
from labctl.ops.classroom.up import class_capacity, class_up
from labctl.ops.down import down as down_lab
from labctl.ops.drill import Mode
from labctl.ops.drill import drill as drill_lab
from labctl.ops.reset import reset as reset_lab


def class_context(lab_file: LabFile) -> ClassContext:
    return ClassContext(lab_file=lab_file, on_event=view.on_event)


def _exit_if(failed: bool) -> None:
    if failed:
        raise typer.Exit(EXIT_FAILED)


def up(
    lab_file: LabFile,
    students: list[str] | None,
    *,
    max_parallel: int,
    manage_hosts: bool | None,
    force: bool,
    stage: str | None = None,
) -> None:
    with view.showing("up", students=select_students(lab_file.lab, students)):
        result = class_up(
            class_context(lab_file),
            students,
            max_parallel=max_parallel,
            manage_hosts=manage_hosts,
            force=force,
            stage=stage,
        )
    output_class.print_class_up(stdout, stderr, result)
    _exit_if(not result.ok)


def status(lab_file: LabFile, students: list[str] | None, *, as_json: bool) -> None:
    report = class_status(class_context(lab_file), students)
    if as_json:
        stdout.out(report.to_json(), highlight=False)
    else:
        output_class.print_class_status(stdout, report)
    _exit_if(not report.healthy)


def down(lab_file: LabFile, students: list[str] | None, *, manage_hosts: bool | None) -> None:
    runs = class_run(
        class_context(lab_file), students, lambda ctx: down_lab(ctx, manage_hosts=manage_hosts)
    )
    output_class.print_runs(
        stdout, stderr, runs, lambda run, result: output.print_down(stdout, result), title="down"
    )
    _exit_if(any(run.error for run in runs))


def drill(
    lab_file: LabFile,
    students: list[str] | None,
    *,
    mode: Mode,
    vms: list[str] | None,
    requests: int,
    as_json: bool,
) -> None:
    runs = class_run(
        class_context(lab_file),
        students,
        lambda ctx: drill_lab(ctx, mode=mode, vms=vms, requests=requests),
    )
    if as_json:
        stdout.out(output_class.runs_json(runs, lambda r: r.passed), highlight=False)
    else:
        output_class.print_runs(
            stdout,
            stderr,
            runs,
            lambda run, result: output.print_drill(stdout, result),
            title="drill",
        )
    _exit_if(any(run.result is None or not run.result.passed for run in runs))


def reset(
    lab_file: LabFile,
    students: list[str] | None,
    *,
    vms: list[str] | None,
    rebuild: bool,
    max_parallel: int,
    manage_hosts: bool | None,
    stage: str | None = None,
) -> None:
    runs = class_run(
        class_context(lab_file),
        students,
        lambda ctx: reset_lab(
            ctx,
            vms,
            rebuild=rebuild,
            max_parallel=max_parallel,
            manage_hosts=manage_hosts,
            stage=stage,
        ),
        max_parallel=max_parallel,
    )
    output_class.print_runs(
        stdout,
        stderr,
        runs,
        lambda run, result: output_lifecycle.print_reset(stdout, stderr, result),
        title="reset",
    )
    _exit_if(any(run.result is None or not run.result.ok for run in runs))


def snapshot_action(
    lab_file: LabFile,
    students: list[str] | None,
    action: Literal["save", "restore", "delete"],
    name: str,
) -> None:
    work = {"save": snapshot.save, "restore": snapshot.restore, "delete": snapshot.delete}[action]
    runs = class_run(class_context(lab_file), students, lambda ctx: work(ctx, name))
    output_class.print_runs(
        stdout,
        stderr,
        runs,
        lambda run, result: output_lifecycle.print_snapshot(stdout, stderr, result, run.domain),
        title=f"snapshot {action}",
    )
    _exit_if(any(run.result is None or not run.result.ok for run in runs))


def snapshot_list(lab_file: LabFile, students: list[str] | None, *, as_json: bool) -> None:
    runs = class_run(class_context(lab_file), students, snapshot.list_snapshots)
    if as_json:
        stdout.out(output_class.runs_json(runs, lambda r: True), highlight=False)
        return
    output_class.print_runs(
        stdout,
        stderr,
        runs,
        lambda run, result: output_lifecycle.print_snapshot_list(stdout, result),
        title="snapshots",
    )


def doctor(lab_file: LabFile, students: list[str] | None, *, as_json: bool = False) -> None:
    cctx = class_context(lab_file)
    chosen = select_students(lab_file.lab, students)
    rows = class_capacity(cctx, place(cctx, chosen, persist=False))
    if as_json:
        stdout.out(output_json.capacity_json(lab_file.lab.name, rows), highlight=False)
    else:
        output_class.print_capacity(
            stdout, rows, title=f"class {lab_file.lab.name}: capacity per host"
        )
    _exit_if(not all(row.fits for row in rows))
