"""`labctl exec VM -- COMMAND...`: run a command in a VM; its exit code becomes labctl's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.app import LabFileOption, StudentOption, VmArgument, command_app
from labctl.cli.labs import open_lab
from labctl.ops import access

cli = command_app()


@cli.command(name="exec")
def exec_command(
    vm: VmArgument,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    file: LabFileOption = Path("lab.yaml"),
    student: StudentOption = None,
) -> None:
    """Run a command in a VM; its exit code becomes labctl's.

    Example: labctl exec app1 -- pm2 list
    """
    code = access.exec_in(open_lab(file, student, command="exec"), vm, command)
    if code:
        raise typer.Exit(code)
