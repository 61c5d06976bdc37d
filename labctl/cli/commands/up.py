"""`labctl up`: launch what is missing, wire the LB and the hosts entry, wait until the domain
serves through every backend; a class brings up every student's lab under one launch bound."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from labctl.cli.app import (
    LabFileOption,
    NoHostsOption,
    StageOption,
    StudentOption,
    command_app,
    warn,
)
from labctl.cli.labs import ClassView, LabCommand, Shown, run_each_lab
from labctl.cli.printers.capacity import print_capacity
from labctl.cli.printers.sections import where
from labctl.cli.printers.wiring import for_student, print_failures, print_serving
from labctl.cli.terminal import SafeConsole, line, styled
from labctl.config.load import load_lab
from labctl.ops.classroom.up import ClassUpResult, class_up, failed_stage
from labctl.ops.context import RunOptions
from labctl.ops.up import UpResult
from labctl.ops.up import up as up_lab
from labctl.ops.validation import require_valid

cli = command_app()


@cli.command()
def up(
    file: LabFileOption = Path("lab.yaml"),
    max_parallel: Annotated[
        int,
        typer.Option("--max-parallel", min=1, max=64, help="At most this many launches at once."),
    ] = 4,
    no_hosts: NoHostsOption = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Launch even when the capacity or domain preflight check fails."
        ),
    ] = False,
    student: StudentOption = None,
    stage: StageOption = None,
) -> None:
    """Launch the lab (what is missing), wire the load balancer and hosts entry, and wait until
    the domain serves through every backend. Every VM gets the `baseline` snapshot once
    (lab.yaml snapshots.baseline): right away when other VMs still wait for a launch slot, else
    after the lab first serves.

    A class lab brings up every student's lab (or those named with --student) under one
    --max-parallel bound, and ends with who is up and who failed at which stage.

    Example: labctl up -f examples/hello/lab.yaml
    """
    lab_file = load_lab(file)
    options = RunOptions(
        stage=stage.value if stage else None,
        no_hosts=no_hosts,
        force=force,
        max_parallel=max_parallel,
    )
    warn(require_valid(lab_file, options))
    run_each_lab(lab_file, student, UP, options=options)


def print_up(out: SafeConsole, err: SafeConsole, result: UpResult) -> None:
    if result.vms:
        table = Table(title=f"lab {result.lab}", title_justify="left")
        for column in ("VM", "instance", "action", "IPv4", "cloud-init"):
            table.add_column(column)
        for vm in result.vms:
            table.add_row(vm.vm, vm.instance, vm.action, vm.ip or "-", vm.cloud_init or "-")
        out.print(table)
    if result.hosts and not result.hosts.managed:
        out.print(f"Add this line to {result.hosts.path}:\n  {result.hosts.line}")
    print_failures(err, result.failures)
    if result.failures:
        # a VM without an IP is not ready, whatever its cloud-init says
        no_ip = {f.vm for f in result.failures if f.stage == "ip"}
        ready = [vm.vm for vm in result.vms if vm.vm not in no_ip]
        # one way on: "up again continues" only when it does (not after a failed cloud-init)
        again = (
            "`labctl up` again continues from here; "
            if all(f.resumable for f in result.failures)
            else "do what the hint above says; "
        )
        err.print(
            f"up stopped: {len(ready)} VM(s) ready ({', '.join(ready) or 'none'}); nothing was "
            f"deleted. {again}`labctl down` removes the lab."
        )
    if result.baseline == "taken":
        out.print("baseline snapshot taken: `labctl reset` restores it")
    if result.ok and result.left:  # an early course stage
        apps = ", ".join(vm.vm for vm in result.vms if vm.vm in result.backend_names.values())
        out.print(
            line(
                (f"stage {result.stage} is ready", "green"),
                (f": http://{result.domain}/ proxies to {apps}" if apps else ""),
                f" ({result.seconds:.0f}s). Left to the student:",
            )
        )
        for item in result.left:
            out.print(f"  - {item}")
        return
    if result.ok and result.check is not None:
        print_serving(
            out,
            url=result.url or f"http://{result.domain}/",
            lb_ip=result.lb_ip,
            backends_seen=result.check.backends_seen,
            backend_names=result.backend_names,
            seconds=result.seconds,
        )


def print_class_up(out: SafeConsole, err: SafeConsole, result: ClassUpResult) -> None:
    if result.refused:
        print_capacity(out, result.capacity, title=f"class {result.lab}: what does not fit")
        unfit = [row.host for row in result.capacity if not row.fits]
        err.print(
            line(
                ("refusing to launch anything:", "red"),
                f" the class does not fit on {', '.join(unfit)} (see the table). Use fewer "
                "students (--student), smaller VMs (defaults: in lab.yaml), another host "
                "(hosts:), or `labctl up --force`.",
            )
        )
        return
    for run in result.failed:
        err.print(line((f"── {run.student}", "bold"), f" on {where(run)}"))
        if run.result is not None:
            print_failures(err, run.result.failures, student=run.student)
        else:
            err.print(line((f"✗ {failed_stage(run)}:", "red"), f" {run.error}"))
            if run.hint:
                err.print(f"  {for_student(run.hint, run.student)}")
    table = Table(title=f"class {result.lab}", title_justify="left")
    for column in ("student", "host", "domain", "LB", "result"):
        table.add_column(column)
    for run in result.students:
        ok = run.result is not None and run.result.ok
        lb = run.result.lb_ip if run.result is not None and run.result.lb_ip else "-"
        table.add_row(
            run.student,
            where(run),
            run.domain,
            lb,
            styled("up", "green") if ok else styled(f"failed at {failed_stage(run)}", "red"),
        )
    out.print(table)
    up = [run.student for run in result.up]
    failed = [f"{run.student} ({failed_stage(run)})" for run in result.failed]
    out.print(
        line(
            f"{len(up)} of {len(result.students)} student lab(s) up ({result.seconds:.0f}s)",
            *((("; failed:", "red"), f" {', '.join(failed)}") if failed else ()),
        )
    )
    if failed:
        # "up again continues" only for students whose failures it really continues
        stuck = [
            run.student
            for run in result.failed
            if run.result is not None and not all(f.resumable for f in run.result.failures)
        ]
        again = [run.student for run in result.failed if run.student not in stuck]
        if again:
            out.print(
                f"`labctl up` again continues {'the failed ones' if not stuck else ', '.join(again)}"
                " (the others are left as they are); `labctl status` shows the matrix."
            )
        if stuck:
            out.print(f"{', '.join(stuck)}: follow the hint printed for that student above.")


UP = LabCommand[UpResult](
    "up",
    up_lab,
    Shown(print_up, ok=lambda result: result.ok),
    live=True,
    classroom=ClassView(class_up, Shown(print_class_up, ok=lambda result: result.ok), live=True),
)
