"""`labctl logs VM`: the last lines of a VM's log, shown tidied (never obeyed) unless --raw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.app import LabFileOption, StudentOption, VmArgument, command_app, stdout
from labctl.cli.labs import open_lab
from labctl.cli.terminal import tidy_log
from labctl.errors import ConfigError
from labctl.ops import access

cli = command_app()


@cli.command()
def logs(
    vm: VmArgument,
    file: LabFileOption = Path("lab.yaml"),
    cloud_init: Annotated[
        bool, typer.Option("--cloud-init", help="cloud-init's output log.")
    ] = False,
    pm2: Annotated[bool, typer.Option("--pm2", help="The app's pm2 logs.")] = False,
    nginx: Annotated[bool, typer.Option("--nginx", help="nginx's error log.")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=1_000_000)] = 100,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Keep printing new lines (Ctrl-C ends); the VM's output goes to the terminal "
            "as it is.",
        ),
    ] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Print the log exactly as the VM has it, escape codes included (default: "
            "control characters shown as \\x1b..., spinner redraws reduced to their last frame).",
        ),
    ] = False,
    student: StudentOption = None,
) -> None:
    """Print the last lines of a VM's log: by default its main one (nginx on the LB VM, pm2 on
    an app VM). What the VM wrote is shown, never obeyed by the terminal, unless --raw.

    Example: labctl logs app1 --cloud-init -n 50
    """
    chosen = [k for k, on in (("cloud-init", cloud_init), ("pm2", pm2), ("nginx", nginx)) if on]
    if len(chosen) > 1:
        raise ConfigError([f"logs: choose one of --cloud-init, --pm2, --nginx (got {len(chosen)})"])
    kind: access.LogKind | None = chosen[0] if chosen else None  # type: ignore[assignment]  # one of the three literals
    result = access.logs(
        open_lab(file, student, command="logs"), vm, kind=kind, lines=lines, follow=follow
    )
    if result.text and raw:
        stdout.raw(result.text if result.text.endswith("\n") else result.text + "\n")
    elif result.text:
        text = tidy_log(result.text)
        stdout.out(text, end="" if text.endswith("\n") else "\n")
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
