"""`labctl render VM`: the cloud-init user-data a VM would be launched with (secrets masked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.app import LabFileOption, StudentOption, command_app, stderr, stdout
from labctl.cli.labs import open_lab
from labctl.config.load import load_lab
from labctl.errors import ConfigError
from labctl.ops.archive import app_archive
from labctl.render.assets import read_assets
from labctl.render.userdata import mask_secrets, render_user_data

cli = command_app()


@cli.command()
def render(
    vm: Annotated[str, typer.Argument(help="The lab VM name, e.g. app1.")],
    file: LabFileOption = Path("lab.yaml"),
    show_secrets: Annotated[
        bool,
        typer.Option("--show-secrets", help="Print app.secret_env values instead of a mask."),
    ] = False,
    student: StudentOption = None,
) -> None:
    """Print the cloud-init user-data labctl would launch VM with (app.secret_env values masked).

    Example: labctl render gateway
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:  # a student's VM: its marker and names carry the student
        lab_file = open_lab(lab_file, student, command="render").lab_file
    lab = lab_file.lab if show_secrets else mask_secrets(lab_file.lab)
    spec = lab.vm(vm)
    if spec is None:
        names = ", ".join(v.name for v in lab.vms)
        raise ConfigError([f"{file}: no VM named {vm!r} (VMs: {names})"])
    text = render_user_data(lab, spec, read_assets(), app_archive=app_archive(lab_file))
    stdout.out(text, end="")
    if lab is not lab_file.lab and "app" in spec.roles:
        stderr.print(
            f"note: values of app.secret_env ({', '.join(lab.app.secret_env)}) are masked; "
            "--show-secrets prints them",
        )
