"""More `labctl` commands: snapshot save|list|restore|delete, reset, logs, shell, exec, doctor.

Same rules as lab.py (parse, one use-case call, print); registered on app.py's `app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli import classroom, output_json, output_lifecycle
from labctl.cli.app import (
    JsonOption,
    LabFileOption,
    NoHostsOption,
    StageOption,
    StudentOption,
    app,
    guard,
    lab_context,
    stderr,
    stdout,
    view,
)
from labctl.config.load import load_lab
from labctl.errors import EXIT_FAILED, ConfigError
from labctl.ops import access, snapshot
from labctl.ops.doctor import doctor as doctor_lab
from labctl.ops.reset import reset as reset_lab

snapshot_app = typer.Typer(
    no_args_is_help=True,
    help="Whole-lab snapshots: stop the VMs, snapshot/restore each, start them, wait until the "
    "domain serves again (Multipass >= 1.13).",
)
app.add_typer(snapshot_app, name="snapshot")


SnapshotName = Annotated[str, typer.Argument(help="Snapshot name (letters, digits, hyphens).")]
VmArgument = Annotated[str, typer.Argument(help="The lab VM name, e.g. app1.")]


def _snapshot_done(result: snapshot.SnapshotOutcome, domain: str) -> None:
    output_lifecycle.print_snapshot(stdout, stderr, result, domain)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@snapshot_app.command("save")
@guard
def snapshot_save(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Stop the lab, snapshot every VM as NAME, start it again and wait until it serves.

    Example: labctl snapshot save before-lab3
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.snapshot_action(lab_file, student, "save", name)
        return
    ctx = lab_context(lab_file, student)
    with view.showing("snapshot save"):
        outcome = snapshot.save(ctx, name)
    _snapshot_done(outcome, ctx.lab.domain)


@snapshot_app.command("restore")
@guard
def snapshot_restore(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Stop the lab, restore every VM to NAME (discarding its current state), start it again and
    wait until the domain serves.

    Example: labctl snapshot restore baseline
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.snapshot_action(lab_file, student, "restore", name)
        return
    ctx = lab_context(lab_file, student)
    with view.showing("snapshot restore"):
        outcome = snapshot.restore(ctx, name)
    _snapshot_done(outcome, ctx.lab.domain)


@snapshot_app.command("delete")
@guard
def snapshot_delete(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Delete snapshot NAME from every VM (for good) and from the manifest."""
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.snapshot_action(lab_file, student, "delete", name)
        return
    ctx = lab_context(lab_file, student)
    _snapshot_done(snapshot.delete(ctx, name), ctx.lab.domain)


@snapshot_app.command("list")
@guard
def snapshot_list(
    file: LabFileOption = Path("lab.yaml"),
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """List the lab's snapshots: when, which VMs have them, whether lab.yaml changed since."""
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.snapshot_list(lab_file, student, as_json=as_json)
        return
    listing = snapshot.list_snapshots(lab_context(lab_file, student))
    if as_json:
        stdout.out(output_lifecycle.snapshot_list_json(listing), highlight=False)
    else:
        output_lifecycle.print_snapshot_list(stdout, listing)


@app.command()
@guard
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
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        manage = False if no_hosts else None
        classroom.reset(
            lab_file,
            student,
            vms=vms or None,
            rebuild=rebuild,
            max_parallel=max_parallel,
            manage_hosts=manage,
            stage=stage.value if stage else None,
        )
        return
    with view.showing("reset"):
        result = reset_lab(
            lab_context(lab_file, student),
            vms or None,
            rebuild=rebuild,
            max_parallel=max_parallel,
            manage_hosts=False if no_hosts else None,
            stage=stage.value if stage else None,
        )
    output_lifecycle.print_reset(stdout, stderr, result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@guard
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
        bool, typer.Option("--follow", "-F", help="Keep printing new lines (Ctrl-C ends).")
    ] = False,
    student: StudentOption = None,
) -> None:
    """Print the last lines of a VM's log: by default its main one (nginx on the LB VM, pm2 on
    an app VM).

    Example: labctl logs app1 --cloud-init -n 50
    """
    chosen = [k for k, on in (("cloud-init", cloud_init), ("pm2", pm2), ("nginx", nginx)) if on]
    if len(chosen) > 1:
        raise ConfigError([f"logs: choose one of --cloud-init, --pm2, --nginx (got {len(chosen)})"])
    kind: access.LogKind | None = chosen[0] if chosen else None  # type: ignore[assignment]  # one of the three literals
    result = access.logs(
        lab_context(file, student, command="logs"), vm, kind=kind, lines=lines, follow=follow
    )
    if result.text:
        stdout.out(result.text, end="" if result.text.endswith("\n") else "\n", highlight=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


@app.command()
@guard
def shell(
    vm: VmArgument, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Open a shell on a VM (multipass shell).

    Example: labctl shell lb
    """
    code = access.shell(lab_context(file, student, command="shell"), vm)
    if code:
        raise typer.Exit(code)


@app.command(name="exec")
@guard
def exec_command(
    vm: VmArgument,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    file: LabFileOption = Path("lab.yaml"),
    student: StudentOption = None,
) -> None:
    """Run a command in a VM; its exit code becomes labctl's.

    Example: labctl exec app1 -- pm2 list
    """
    code = access.exec_in(lab_context(file, student, command="exec"), vm, command)
    if code:
        raise typer.Exit(code)


@app.command()
@guard
def doctor(
    file: LabFileOption = Path("lab.yaml"),
    student: StudentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check this machine can run the lab: Multipass and its daemon, driver, snapshots, CPU,
    memory, disk, the hosts file, the domain. Exit 1 when a check fails. A class lab: the
    capacity of each Multipass host against the students placed on it.
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.doctor(lab_file, student, as_json=as_json)
        return
    report = doctor_lab(lab_context(lab_file, student))
    if as_json:
        stdout.out(output_json.doctor_json(report), highlight=False)
    else:
        output_lifecycle.print_doctor(stdout, report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
