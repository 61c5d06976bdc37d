"""`labctl reset [VM...]`: put VMs back to how `up` left them (the baseline snapshot, or a fresh
launch), then wait until the domain serves through every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.app import (
    LabFileOption,
    NoHostsOption,
    StageOption,
    StudentOption,
    command_app,
)
from labctl.cli.labs import LabCommand, Shown, run_each_lab
from labctl.cli.printers.wiring import print_failures, print_if_serving
from labctl.cli.terminal import SafeConsole
from labctl.config.load import load_lab
from labctl.ops.context import RunOptions
from labctl.ops.reset import ResetResult
from labctl.ops.reset import reset as reset_lab

cli = command_app()


@cli.command()
def reset(
    vms: Annotated[
        list[str] | None, typer.Argument(help="VMs to reset (default: all of them).")
    ] = None,
    file: LabFileOption = Path("lab.yaml"),
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Purge and launch again even where a baseline exists."),
    ] = False,
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, max=64)] = 4,
    no_hosts: NoHostsOption = False,
    student: StudentOption = None,
    stage: StageOption = None,
) -> None:
    """Put VMs back to how `up` left them: restore the baseline snapshot, or (no baseline,
    --rebuild, or state Unknown) purge and launch again; then wait until the domain serves
    through every backend. The other VMs keep serving meanwhile.

    Example: labctl reset app2
    """
    options = RunOptions(
        stage=stage.value if stage else None, no_hosts=no_hosts, max_parallel=max_parallel
    )
    command = LabCommand[ResetResult](
        "reset",
        lambda ctx: reset_lab(ctx, vms or None, rebuild=rebuild),
        Shown(print_reset, ok=lambda result: result.ok),
        live=True,
        bound_launches=True,  # a class's rebuilds share one --max-parallel bound
    )
    run_each_lab(load_lab(file), student, command, options=options)


def print_reset(out: SafeConsole, err: SafeConsole, result: ResetResult) -> None:
    for vm in result.vms:
        why = f" ({vm.why})" if vm.why else ""
        out.print(f"{vm.vm}: {vm.how}{why}")
    if result.baseline == "retaken":
        out.print("baseline snapshot taken again for the rebuilt VM(s)")
    print_failures(err, result.failures)
    if result.wiring is not None:
        print_if_serving(out, result.wiring, result.seconds)
