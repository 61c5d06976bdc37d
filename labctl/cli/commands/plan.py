"""`labctl plan`: what `up` would do, in order, with the exact engine commands. Launches nothing."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from labctl.cli.app import (
    JsonOption,
    LabFileOption,
    NoHostsOption,
    StageOption,
    StudentOption,
    command_app,
    stdout,
)
from labctl.cli.jsonout import print_json
from labctl.cli.labs import open_lab
from labctl.cli.terminal import SafeConsole
from labctl.ops.context import RunOptions
from labctl.ops.plan import PlanResult
from labctl.ops.plan import plan as plan_lab

cli = command_app()


@cli.command()
def plan(
    file: LabFileOption = Path("lab.yaml"),
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, max=64)] = 4,
    no_hosts: NoHostsOption = False,
    as_json: JsonOption = False,
    student: StudentOption = None,
    stage: StageOption = None,
) -> None:
    """Show what `up` would do, in order, with the exact engine commands. Launches nothing."""
    options = RunOptions(
        stage=stage.value if stage else None, no_hosts=no_hosts, max_parallel=max_parallel
    )
    result = plan_lab(open_lab(file, student, command="plan", options=options))
    if as_json:
        print_json(result)
    else:
        print_plan(stdout, result)


def print_plan(out: SafeConsole, result: PlanResult) -> None:
    table = Table(title=f"lab {result.lab}: VMs", title_justify="left")
    for column in ("VM", "instance", "roles", "cpus", "memory", "disk", "action"):
        table.add_column(column)
    for vm in result.vms:
        table.add_row(
            vm.vm, vm.instance, ",".join(vm.roles), str(vm.cpus), vm.memory, vm.disk, vm.action
        )
    out.print(table)
    out.print(f"Steps (same number = concurrent; at most {result.max_parallel} launches at once):")
    for step in result.steps:
        limit = f" [at most {_duration(step.max_seconds)}]" if step.max_seconds else ""
        out.print(f"  {step.order}. {step.what}{limit}")
        if step.argv:
            out.print(f"       {shlex.join(step.argv)}")
    for note in result.notes:
        out.print(f"note: {note}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min" + (f" {secs} s" if secs else "") if minutes else f"{secs} s"
