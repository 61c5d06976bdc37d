"""The `labctl` typer app and what every command module shares: the consoles, the common options,
the one place errors become messages and exit codes (`guard`), and `lab_context`.

Command modules (lab.py, lifecycle.py, classroom.py) import this module and register their
commands on `app`; this module imports none of them (main.py gathers them for the entry point).
Errors from below arrive as LabctlError and are caught here, printed as one message (plus a hint)
on stderr, and turned into the exit code: 0 ok, 1 failed/unhealthy, 2 bad input, 130 interrupted.
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

from labctl import __version__
from labctl.cli import progress
from labctl.cli.conventions import LabctlGroup
from labctl.config.load import LabFile, load_lab
from labctl.errors import EXIT_FAILED, ConfigError, LabctlError
from labctl.ops.classroom.contexts import lab_context as open_lab_context
from labctl.ops.context import LabContext

app = typer.Typer(
    cls=LabctlGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are ours to word; tracebacks only with --debug
    help="Bring up a Multipass web lab (Node apps under pm2 behind an nginx load balancer) from lab.yaml.",
)
# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
stdout = Console(highlight=False, soft_wrap=True, width=_WIDTH)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)
_debug = False
view = progress.ProgressView(stderr)  # every command's Events: live, plain lines, or none

P = ParamSpec("P")
R = TypeVar("R")


def _file_given_before(ctx: typer.Context, value: Path) -> Path:
    """`labctl -f lab.yaml up` as well as `labctl up -f lab.yaml`: the command's own -f wins."""
    before = ctx.find_root().meta.get("labctl.file")
    source = ctx.get_parameter_source("file")
    if before is not None and (source is None or source.name in ("DEFAULT", "ENVIRONMENT")):
        return Path(before)
    return value


LabFileOption = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        help="The lab file.",
        envvar="LABCTL_FILE",
        show_default=True,
        callback=_file_given_before,
    ),
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


class Stage(StrEnum):
    app = "app"
    proxy = "proxy"
    lb = "lb"


StageOption = Annotated[
    Stage | None,
    typer.Option(
        "--stage",
        help="The course stage to bring the lab to (default: where it is, else lab.yaml's "
        "stage:): app = apps under pm2 and a bare nginx, proxy = a proxy to the first app VM, "
        "lb = the finished lab.",
    ),
]
NoHostsOption = Annotated[
    bool,
    typer.Option("--no-hosts", help="Do not touch the hosts file; print the line to add instead."),
]


def guard(command: Callable[P, R]) -> Callable[P, R]:
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


# These callbacks run for the group (ctx.parent None: a new invocation, so they set) and again
# for the command (they only add), so a flag counts wherever it is given.
def _set_debug(ctx: typer.Context, value: bool) -> None:
    global _debug
    _debug = value if ctx.parent is None else (_debug or value)
    if _debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")


def _set_quiet(ctx: typer.Context, value: bool) -> None:
    view.quiet = value if ctx.parent is None else (view.quiet or value)


def _set_no_progress(ctx: typer.Context, value: bool) -> None:
    view.no_progress = value if ctx.parent is None else (view.no_progress or value)


def _remember_file(ctx: typer.Context, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().meta["labctl.file"] = value


# The group's options; conventions.LabctlGroup adds --debug, --quiet and --no-progress to every
# command too, so `labctl up --debug` works as well as `labctl --debug up`.
@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Log every multipass call; show tracebacks.",
            callback=_set_debug,
            expose_value=False,
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress lines; only results and errors.",
            callback=_set_quiet,
            expose_value=False,
        ),
    ] = False,
    no_progress: Annotated[
        bool,
        typer.Option(
            "--no-progress",
            help="Plain timestamped progress lines instead of the live view (also when piped "
            "or NO_COLOR is set).",
            callback=_set_no_progress,
            expose_value=False,
        ),
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="The lab file, for any command (default: lab.yaml, or $LABCTL_FILE).",
            callback=_remember_file,
            expose_value=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """labctl: one lab.yaml, one command, a lab that serves."""
    global _debug
    if os.environ.get("LABCTL_DEBUG") == "1" and not _debug:
        _debug = True
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")


def lab_context(
    path: Path | LabFile, students: list[str] | None = None, *, command: str = ""
) -> LabContext:
    """The LabContext a command acts on: the lab's own, or (a class) the one student named."""
    lab_file = path if isinstance(path, LabFile) else load_lab(path)
    return open_lab_context(lab_file, students, command=command, on_event=view.on_event)
