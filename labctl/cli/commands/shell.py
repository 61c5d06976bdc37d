"""`labctl shell VM`: an interactive shell on a VM, through the engine."""

from __future__ import annotations

from pathlib import Path

import typer

from labctl.cli.app import LabFileOption, StudentOption, VmArgument, command_app
from labctl.cli.labs import open_lab
from labctl.ops import access

cli = command_app()


@cli.command()
def shell(
    vm: VmArgument, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Open a shell on a VM (through the engine).

    Example: labctl shell lb
    """
    code = access.shell(open_lab(file, student, command="shell"), vm)
    if code:
        raise typer.Exit(code)
