"""`labctl down`: delete the lab's VMs for good and remove its hosts entry (a class: each
student's)."""

from __future__ import annotations

from pathlib import Path

from labctl.cli.app import LabFileOption, NoHostsOption, StudentOption, command_app
from labctl.cli.labs import LabCommand, Shown, run_each_lab
from labctl.cli.terminal import SafeConsole
from labctl.config.load import load_lab
from labctl.ops.context import RunOptions
from labctl.ops.down import DownResult
from labctl.ops.down import down as down_lab

cli = command_app()


@cli.command()
def down(
    file: LabFileOption = Path("lab.yaml"),
    no_hosts: NoHostsOption = False,
    student: StudentOption = None,
) -> None:
    """Delete the lab's VMs for good and remove its hosts entry. VMs already gone are fine."""
    run_each_lab(load_lab(file), student, DOWN, options=RunOptions(no_hosts=no_hosts))


def print_down(out: SafeConsole, err: SafeConsole, result: DownResult) -> None:
    if result.deleted:
        out.print(f"deleted: {', '.join(result.deleted)}")
    if result.already_gone:
        out.print(f"already gone: {', '.join(result.already_gone)}")
    if result.foreign_left:
        out.print(f"left alone (not this lab's): {', '.join(result.foreign_left)}")
    if result.hosts_removed:
        out.print(f"removed the hosts entry from {result.hosts_path}")
    if not (result.deleted or result.hosts_removed):
        out.print("nothing to do: the lab is already down")


DOWN = LabCommand[DownResult]("down", down_lab, Shown(print_down), live=True)
