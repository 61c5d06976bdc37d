"""The lab commands: validate, schema, render, plan, up, status, down, drill.

Each one parses, makes one use-case call (labctl/ops/) and prints the result (output.py); a class
lab.yaml is handed to classroom.py, which runs the same use case per student.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli import classroom, output, output_json
from labctl.cli.app import (
    DrillMode,
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
from labctl.cli.watch import CountOption, IntervalOption, WatchOption, watch_status
from labctl.config.load import json_schema, load_lab
from labctl.errors import EXIT_FAILED, ConfigError
from labctl.ops.archive import app_archive
from labctl.ops.down import down as down_lab
from labctl.ops.drill import drill as drill_lab
from labctl.ops.plan import plan as plan_lab
from labctl.ops.status import status as lab_status
from labctl.ops.up import up as up_lab
from labctl.ops.validation import require_valid
from labctl.render.assets import read_assets
from labctl.render.userdata import mask_secrets, render_user_data


@app.command()
@guard
def validate(file: LabFileOption = Path("lab.yaml"), as_json: JsonOption = False) -> None:
    """Check lab.yaml and report every problem with its line. Exit 2 if there is any.

    Example: labctl validate -f examples/hello/lab.yaml
    """
    if as_json:
        try:
            lab_file = load_lab(file)
            warnings = require_valid(lab_file)
        except ConfigError as exc:
            stdout.out(output_json.validate_json(file, None, exc.problems), highlight=False)
            raise typer.Exit(exc.exit_code) from None
        _warn(warnings)
        stdout.out(output_json.validate_json(file, lab_file.lab, []), highlight=False)
        return
    lab_file = load_lab(file)
    _warn(require_valid(lab_file))
    lab = lab_file.lab
    if lab.class_ is not None:
        hosts = ", ".join(h.name for h in lab.hosts) or "the local daemon"
        stdout.print(
            f"{file}: ok — class {lab.name!r}, {len(lab.students)} students "
            f"(domains {lab.class_.domain}), {len(lab.vms)} VMs each, on {hosts}",
            markup=False,
        )
        return
    stdout.print(
        f"{file}: ok — lab {lab.name!r}, domain {lab.domain}, {len(lab.vms)} VMs "
        f"({len(lab.app_vms)} app, LB on {lab.lb_vm.name})",
        markup=False,
    )


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        stderr.print(warning, markup=False)


@app.command()
@guard
def schema() -> None:
    """Print the JSON Schema of lab.yaml (for editors: yaml-language-server)."""
    stdout.print(json_schema(), markup=False)


@app.command()
@guard
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
        lab_file = lab_context(lab_file, student, command="render").lab_file
    lab = lab_file.lab if show_secrets else mask_secrets(lab_file.lab)
    spec = lab.vm(vm)
    if spec is None:
        names = ", ".join(v.name for v in lab.vms)
        raise ConfigError([f"{file}: no VM named {vm!r} (VMs: {names})"])
    text = render_user_data(lab, spec, read_assets(), app_archive=app_archive(lab_file))
    stdout.out(text, end="", highlight=False)
    if lab is not lab_file.lab and "app" in spec.roles:
        stderr.print(
            f"note: values of app.secret_env ({', '.join(lab.app.secret_env)}) are masked; "
            "--show-secrets prints them",
            markup=False,
        )


@app.command()
@guard
def plan(
    file: LabFileOption = Path("lab.yaml"),
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, max=64)] = 4,
    no_hosts: NoHostsOption = False,
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """Show what `up` would do, in order, with the exact multipass commands. Launches nothing."""
    result = plan_lab(
        lab_context(file, student, command="plan"),
        max_parallel=max_parallel,
        manage_hosts=False if no_hosts else None,
    )
    if as_json:
        stdout.out(output.plan_json(result), highlight=False)
    else:
        output.print_plan(stdout, result)


@app.command()
@guard
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
    _warn(require_valid(lab_file, manage_hosts=False if no_hosts else None))
    if lab_file.lab.is_class:
        manage = False if no_hosts else None
        classroom.up(
            lab_file,
            student,
            max_parallel=max_parallel,
            manage_hosts=manage,
            force=force,
            stage=stage.value if stage else None,
        )
        return
    with view.showing("up"):
        result = up_lab(
            lab_context(lab_file, student),
            max_parallel=max_parallel,
            manage_hosts=False if no_hosts else None,
            force=force,
            stage=stage.value if stage else None,
        )
    output.print_up(stdout, stderr, result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@guard
def status(
    file: LabFileOption = Path("lab.yaml"),
    as_json: JsonOption = False,
    student: StudentOption = None,
    watch: WatchOption = False,
    interval: IntervalOption = 5.0,
    count: CountOption = 0,
) -> None:
    """Show every VM's state, cloud-init, pm2 and nginx, and whether the domain serves. Exit 1
    when anything is unhealthy. A class lab: one matrix row per student."""
    lab_file = load_lab(file)
    if watch:
        if as_json:
            raise ConfigError(["--watch redraws a table in place; --json prints one document"])
        watch_status(lab_file, student, interval=interval, count=count)
        return
    if lab_file.lab.is_class:
        classroom.status(lab_file, student, as_json=as_json)
        return
    report = lab_status(lab_context(lab_file, student))
    if as_json:
        stdout.out(report.to_json(), highlight=False)
    else:
        output.print_status(stdout, report)
    if not report.healthy:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@guard
def down(
    file: LabFileOption = Path("lab.yaml"),
    no_hosts: NoHostsOption = False,
    student: StudentOption = None,
) -> None:
    """Delete (purge) the lab's VMs and remove its hosts entry. VMs already gone are fine."""
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.down(lab_file, student, manage_hosts=False if no_hosts else None)
        return
    result = down_lab(lab_context(lab_file, student), manage_hosts=False if no_hosts else None)
    output.print_down(stdout, result)


@app.command()
@guard
def drill(
    file: LabFileOption = Path("lab.yaml"),
    mode: Annotated[
        DrillMode,
        typer.Option(
            "--mode",
            help="How a backend goes down: app = pm2 stop, vm = "
            "multipass stop, freeze = SIGSTOP (hung app).",
        ),
    ] = DrillMode.app,
    vm: Annotated[
        list[str] | None, typer.Option("--vm", help="Only this app VM (repeatable).")
    ] = None,
    requests: Annotated[
        int,
        typer.Option(
            "--requests", min=1, max=100_000, help="Requests per step while one backend is down."
        ),
    ] = 200,
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """Prove failover: take each app backend down in turn (then all of them), check what the
    load balancer does, restore everything. Exit 0 only if every step passed.

    Example: labctl drill --mode freeze --requests 500
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        classroom.drill(
            lab_file, student, mode=mode.value, vms=vm, requests=requests, as_json=as_json
        )
        return
    ctx = lab_context(lab_file, student)
    show = None if as_json else output.drill_step_printer(stdout)
    with view.showing("drill"):
        result = drill_lab(ctx, mode=mode.value, vms=vm or None, requests=requests, on_step=show)
    if as_json:
        stdout.out(output.drill_json(result), highlight=False)
    else:
        output.print_drill(stdout, result)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)
