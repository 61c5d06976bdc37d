"""The `labctl` typer app and what every command module shares: the consoles, the progress view,
the common options, and the one place errors become messages and exit codes (`guard`).

The app knows its commands by name and module (`COMMANDS`), not by import: conventions.LabctlGroup
imports a command's module when that command runs, so `labctl version` loads no use case and no
lab.yaml model. This module imports no command module.
Errors from below arrive as LabctlError and are caught here, printed as one message (plus a hint)
on stderr, and turned into the exit code: 0 ok, 1 failed/unhealthy, 2 bad input, 130 interrupted.
Both consoles are terminal.SafeConsole: what a VM, a lab file or the command line says is shown,
never obeyed by the terminal, and labctl's own colours are Text styles, never markup.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, ParamSpec, TypeVar

import typer
from typer.models import CommandFunctionType

from labctl import __version__
from labctl.cli import progress
from labctl.cli.conventions import LabctlGroup
from labctl.cli.terminal import SafeConsole, debug_logging, line
from labctl.errors import EXIT_FAILED, ConfigError, LabctlError

# Each command's module under labctl/cli/commands/, in the order `labctl --help` lists them.
COMMANDS: Final = {
    name: f"labctl.cli.commands.{module}"
    for name, module in (
        ("validate", "validate"),
        ("schema", "schema"),
        ("render", "render"),
        ("plan", "plan"),
        ("up", "up"),
        ("status", "status"),
        ("down", "down"),
        ("drill", "drill"),
        ("snapshot", "snapshot"),
        ("reset", "reset"),
        ("logs", "logs"),
        ("shell", "shell"),
        ("exec", "exec_command"),  # named for what it does: `exec` is a Python builtin
        ("hosts", "hosts"),
        ("access", "access"),
        ("doctor", "doctor"),
        ("lxd-init", "lxd_init"),
        ("check", "check"),
        ("init", "init"),
        ("version", "version"),
    )
}


class Labctl(LabctlGroup):
    """The root group: its commands are loaded from COMMANDS when invoked."""

    command_modules = COMMANDS


app = typer.Typer(
    cls=Labctl,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are ours to word; tracebacks only with --debug
    help="Bring up a web lab (Node apps under pm2 behind an nginx load balancer) from lab.yaml.",
)


def _piped_width(columns: str | None) -> int:
    """COLUMNS kept between 20 and 1000; 160 when it is not a number (`abc`, `-5`, `1e9`)."""
    if columns and len(columns) <= 4 and columns.isascii() and columns.isdecimal():
        return min(max(int(columns), 20), 1000)
    return 160


# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else _piped_width(os.environ.get("COLUMNS"))
stdout = SafeConsole(soft_wrap=True, width=_WIDTH)
stderr = SafeConsole(stderr=True, soft_wrap=True, width=_WIDTH)
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
VmArgument = Annotated[str, typer.Argument(help="The lab VM name, e.g. app1.")]


def fail_unless(ok: bool) -> None:
    """Exit 1 (failed, unhealthy) unless `ok`; the output is already printed."""
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def warn(warnings: list[str]) -> None:
    for warning in warnings:
        stderr.print(warning)


def guard(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabctlError as exc:
            if _debug:
                logging.getLogger("labctl").exception("failed")
            stderr.print(
                exc.message
                if isinstance(exc, ConfigError)
                else line(("error:", "red"), " ", exc.message)
            )
            if exc.hint:
                stderr.print(exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            stderr.print(
                "interrupted. Anything the engine was doing keeps going inside it; "
                "run `labctl status` to see the lab."
            )
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _debug:
                raise
            stderr.print(
                f"internal error: {type(exc).__name__}: {exc} (run `labctl --debug ...` for the "
                "traceback, and please report it)"
            )
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


class CommandApp(typer.Typer):
    """A command module's own typer app (`cli`): its one command, or a group's (snapshot). Every
    command it registers runs inside `guard`, so none can let an error through unworded."""

    def command(
        self, name: str | None = None, **settings: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        register = super().command(name, **settings)

        def guarded(function: CommandFunctionType) -> CommandFunctionType:
            register(guard(function))
            return function

        return guarded


def command_app(**settings: Any) -> CommandApp:
    return CommandApp(add_completion=False, pretty_exceptions_enable=False, **settings)


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
        debug_logging()


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
            help="Log every engine call; show tracebacks.",
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
        debug_logging()
