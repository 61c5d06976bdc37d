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
from labctl.cli import output
from labctl.config.load import LabFile, load_lab
from labctl.errors import EXIT_FAILED, ConfigError, LabctlError
from labctl.ops.classroom.contexts import lab_context as open_lab_context
from labctl.ops.context import LabContext

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


def lab_context(
    path: Path | LabFile, students: list[str] | None = None, *, command: str = ""
) -> LabContext:
    """The LabContext a command acts on: the lab's own, or (a class) the one student named."""
    lab_file = path if isinstance(path, LabFile) else load_lab(path)
    return open_lab_context(
        lab_file, students, command=command, on_event=output.progress_printer(stderr)
    )
