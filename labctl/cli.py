"""The `labctl` command line: parse, make one use-case call, print its result.

Errors from below arrive as LabctlError and are caught in one place (`_guard`), printed as one
message (plus a hint) on stderr, and turned into the exit code: 0 ok, 1 failed/unhealthy, 2 bad input.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from labctl import __version__, output
from labctl.assets import read_assets
from labctl.config import LabFile, json_schema, load_lab
from labctl.errors import EXIT_FAILED, ConfigError, LabctlError
from labctl.multipass import Multipass
from labctl.ops.classroom import select_students
from labctl.ops.context import LabContext
from labctl.ops.down import down as down_lab
from labctl.ops.drill import drill as drill_lab
from labctl.ops.plan import plan as plan_lab
from labctl.ops.status import status as lab_status
from labctl.ops.up import app_archive
from labctl.ops.up import up as up_lab
from labctl.render import mask_secrets, render_user_data

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are ours to word; tracebacks only with --debug
    help="Bring up a Multipass web lab (Node apps under pm2 behind an nginx load balancer) from lab.yaml.",
)
# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
stdout = Console(highlight=False, soft_wrap=True, width=_WIDTH)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)
_debug = False

P = ParamSpec("P")
R = TypeVar("R")

LabFileOption = Annotated[
    Path,
    typer.Option("--file", "-f", help="The lab file.", envvar="LABCTL_FILE", show_default=True),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of tables.")
]


class DrillMode(StrEnum):
    app = "app"
    vm = "vm"
    freeze = "freeze"


StudentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--student",
        "-s",
        help="A class lab: only this student (repeatable; default: the whole class).",
    ),
]
NoHostsOption = Annotated[
    bool,
    typer.Option("--no-hosts", help="Do not touch the hosts file; print the line to add instead."),
]


def _guard(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabctlError as exc:
            if _debug:
                logging.getLogger("labctl").exception("failed")
            stderr.print(
                f"[red]error:[/red] {exc.message}"
                if not isinstance(exc, ConfigError)
                else exc.message,
                markup=not isinstance(exc, ConfigError),
            )
            if exc.hint:
                stderr.print(exc.hint, markup=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            stderr.print(
                "interrupted. Anything multipass was doing keeps going inside Multipass; "
                "run `labctl status` to see the lab.",
                markup=False,
            )
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _debug:
                raise
            stderr.print(
                f"internal error: {type(exc).__name__}: {exc} (run `labctl --debug ...` for the "
                "traceback, and please report it)",
                markup=False,
            )
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        stdout.print(f"labctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Log every multipass call; show tracebacks.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """labctl: one lab.yaml, one command, a lab that serves."""
    global _debug
    _debug = debug or os.environ.get("LABCTL_DEBUG") == "1"
    if _debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")


def _context(
    path: Path | LabFile, students: list[str] | None = None, *, command: str = ""
) -> LabContext:
    """A single lab's context, or (a class lab) the context of the one student named."""
    lab_file = path if isinstance(path, LabFile) else load_lab(path)
    if lab_file.lab.is_class:
        return cli_class.one_student(lab_file, students, command)
    select_students(lab_file.lab, students)  # --student on a single lab: exit 2
    hosts = lab_file.lab.hosts
    address = hosts[0].address if hosts else None
    return LabContext(
        lab_file=lab_file,
        multipass=Multipass(env={"MULTIPASS_SERVER_ADDRESS": address} if address else None),
        on_event=output.progress_printer(stderr),
    )


@app.command()
@_guard
def validate(file: LabFileOption = Path("lab.yaml")) -> None:
    """Check lab.yaml and report every problem with its line. Exit 2 if there is any.

    Example: labctl validate -f examples/hello/lab.yaml
    """
    lab = load_lab(file).lab
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


@app.command()
@_guard
def schema() -> None:
    """Print the JSON Schema of lab.yaml (for editors: yaml-language-server)."""
    stdout.print(json_schema(), markup=False)


@app.command()
@_guard
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
        lab_file = _context(lab_file, student, command="render").lab_file
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
@_guard
def plan(
    file: LabFileOption = Path("lab.yaml"),
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, max=64)] = 4,
    no_hosts: NoHostsOption = False,
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """Show what `up` would do, in order, with the exact multipass commands. Launches nothing."""
    result = plan_lab(
        _context(file, student, command="plan"),
        max_parallel=max_parallel,
        manage_hosts=False if no_hosts else None,
    )
    if as_json:
        stdout.out(output.plan_json(result), highlight=False)
    else:
        output.print_plan(stdout, result)


@app.command()
@_guard
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
) -> None:
    """Launch the lab (what is missing), wire the load balancer and hosts entry, and wait until
    the domain serves through every backend. After the first healthy up, takes the `baseline`
    snapshot (lab.yaml snapshots.baseline).

    A class lab brings up every student's lab (or those named with --student) under one
    --max-parallel bound, and ends with who is up and who failed at which stage.

    Example: labctl up -f examples/hello/lab.yaml
    """
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        manage = False if no_hosts else None
        cli_class.up(lab_file, student, max_parallel=max_parallel, manage_hosts=manage, force=force)
        return
    result = up_lab(
        _context(lab_file, student),
        max_parallel=max_parallel,
        manage_hosts=False if no_hosts else None,
        force=force,
    )
    output.print_up(stdout, stderr, result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_guard
def status(
    file: LabFileOption = Path("lab.yaml"),
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """Show every VM's state, cloud-init, pm2 and nginx, and whether the domain serves. Exit 1
    when anything is unhealthy. A class lab: one matrix row per student."""
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        cli_class.status(lab_file, student, as_json=as_json)
        return
    report = lab_status(_context(lab_file, student))
    if as_json:
        stdout.out(report.to_json(), highlight=False)
    else:
        output.print_status(stdout, report)
    if not report.healthy:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_guard
def down(
    file: LabFileOption = Path("lab.yaml"),
    no_hosts: NoHostsOption = False,
    student: StudentOption = None,
) -> None:
    """Delete (purge) the lab's VMs and remove its hosts entry. VMs already gone are fine."""
    lab_file = load_lab(file)
    if lab_file.lab.is_class:
        cli_class.down(lab_file, student, manage_hosts=False if no_hosts else None)
        return
    result = down_lab(_context(lab_file, student), manage_hosts=False if no_hosts else None)
    output.print_down(stdout, result)


@app.command()
@_guard
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
        cli_class.drill(
            lab_file, student, mode=mode.value, vms=vm, requests=requests, as_json=as_json
        )
        return
    ctx = _context(lab_file, student)
    show = None if as_json else output.drill_step_printer(stdout)
    result = drill_lab(ctx, mode=mode.value, vms=vm or None, requests=requests, on_step=show)
    if as_json:
        stdout.out(output.drill_json(result), highlight=False)
    else:
        output.print_drill(stdout, result)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


# snapshot, reset, logs, shell, exec, doctor live in cli_lifecycle (module size cap, style.md).
from labctl import cli_class, cli_lifecycle  # noqa: E402, F401  (registers its commands on `app`)
