"""`labctl hosts`: print the hosts line a student adds on their own laptop to open their domain."""

from __future__ import annotations

from pathlib import Path

from labctl.cli.app import LabFileOption, StudentOption, command_app, stdout
from labctl.cli.labs import open_lab
from labctl.ops.hostsline import hosts_line

cli = command_app()


@cli.command()
def hosts(file: LabFileOption = Path("lab.yaml"), student: StudentOption = None) -> None:
    """Print the hosts-file line for a lab's domain (in a class: --student NAME's), pointing at
    its load balancer; the student adds it to /etc/hosts (Windows:
    C:\\Windows\\System32\\drivers\\etc\\hosts) on their own machine.

    Example: labctl hosts --student alice
    """
    found = hosts_line(open_lab(file, student, command="hosts"))
    stdout.print(found.line, markup=False, soft_wrap=True)
