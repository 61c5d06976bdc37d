"""`labctl drill`: prove failover by taking each app backend down in turn (then all), checking
what the load balancer does, and restoring everything."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from labctl.cli import jsonout
from labctl.cli.app import JsonOption, LabFileOption, StudentOption, command_app
from labctl.cli.labs import LabCommand, Shown, run_each_lab
from labctl.cli.terminal import SafeConsole, line, styled
from labctl.config.load import load_lab
from labctl.ops.drill import DrillResult
from labctl.ops.drill import drill as drill_lab

cli = command_app()


class DrillMode(StrEnum):
    app = "app"
    vm = "vm"
    freeze = "freeze"


@cli.command()
def drill(
    file: LabFileOption = Path("lab.yaml"),
    mode: Annotated[
        DrillMode,
        typer.Option(
            "--mode",
            help="How a backend goes down: app = pm2 stop, vm = the instance stopped, "
            "freeze = SIGSTOP (hung app).",
        ),
    ] = DrillMode.app,
    vm: Annotated[
        list[str] | None, typer.Option("--vm", help="Only this app VM (repeatable).")
    ] = None,
    requests: Annotated[
        int,
        typer.Option(
            "--requests", min=1, max=100_000, help="Requests per step while one backend is down."
        ),
    ] = 200,
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """Prove failover: take each app backend down in turn (then all of them), check what the
    load balancer does, restore everything. Exit 0 only if every step passed.

    Example: labctl drill --mode freeze --requests 500
    """
    command = LabCommand[DrillResult](
        "drill",
        lambda ctx: drill_lab(ctx, mode=mode.value, vms=vm or None, requests=requests),
        Shown(
            print_drill,
            ok=lambda result: result.passed,
            document=lambda result: {**jsonout.data(result), "passed": result.passed},
        ),
        live=True,
    )
    run_each_lab(load_lab(file), student, command, as_json=as_json)


def print_drill(out: SafeConsole, err: SafeConsole, result: DrillResult) -> None:
    table = Table(title=f"drill of lab {result.lab} (mode {result.mode})", title_justify="left")
    for column in ("step", "expectation", "observed", "result"):
        table.add_column(column)
    for step in result.steps:
        table.add_row(
            step.name,
            step.expectation,
            step.observed,
            styled("pass", "green") if step.passed else styled("FAIL", "red"),
        )
    out.print(table)
    failed = [step.name for step in result.steps if not step.passed]
    if failed:
        out.print(line(("drill failed", "red"), f" at: {', '.join(failed)}"))
    else:
        out.print(
            line(
                ("drill passed", "green"),
                ": the load balancer behaved as expected in every step",
            )
        )
