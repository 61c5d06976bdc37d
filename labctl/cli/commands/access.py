"""`labctl access --student NAME`: the one command a student runs to reach their own lab from
their own machine (a join token restricted to their LXD project); `--revoke` takes it back.

The printed command carries the token, a secret: it goes to stdout only, for the instructor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli import jsonout
from labctl.cli.app import JsonOption, LabFileOption, command_app, stderr, stdout
from labctl.cli.labs import open_lab
from labctl.config.load import load_lab
from labctl.ops import student_access

cli = command_app()


@cli.command()
def access(
    student: Annotated[
        str, typer.Option("--student", "-s", help="The student (a name on the class roster).")
    ],
    revoke: Annotated[
        bool,
        typer.Option("--revoke", help="Remove the student's access (trusted clients, tokens)."),
    ] = False,
    file: LabFileOption = Path("lab.yaml"),
    json_output: JsonOption = False,
) -> None:
    """Print the one command a student runs on their own machine to reach their lab: it adds
    the LXD server as a remote with a join token restricted to the student's own project, and
    opens a shell in their app instance. Needs engine: lxd and a project per student
    (engine.project with {student}); `labctl up` creates the projects.

    Example: labctl access --student alice
    """
    lab_file = load_lab(file)
    student_access.check_lab(lab_file.lab)
    ctx = open_lab(lab_file, [student], command="access")
    if revoke:
        revoked = student_access.revoke(ctx)
        if json_output:
            jsonout.print_json(revoked)
            return
        stderr.print(
            f"{revoked.student}: removed {revoked.removed} trusted client(s) and token(s) named "
            f"{revoked.trust_name} (project {revoked.project})",
            markup=False,
        )
        return
    granted = student_access.grant(ctx)
    if json_output:
        jsonout.print_json(
            {
                "student": granted.student,
                "project": granted.project,
                "remote": granted.remote,
                "command": granted.command,
            }
        )
        return
    stderr.print(
        f"{granted.student}: run this on the student's own machine (it holds a one-time join "
        f"token for project {granted.project} only; `labctl access --student {granted.student} "
        "--revoke` takes it back):",
        markup=False,
    )
    stdout.print(granted.command, markup=False, soft_wrap=True)
