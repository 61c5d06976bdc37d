"""Command table, help texts and dispatch (argparser.cpp + the per-command parse_args)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .cli import Opt, Parsed, option_help, parse
from .context import Context
from .errors import CommandError

Handler = Callable[[Context, Parsed], int]

FORMAT = Opt(("format",), "format", "Output in the requested format: table, json, csv or yaml")
ALL = Opt(("all",), help="Apply to all instances")
TIMEOUT = Opt(("timeout",), "timeout", "Maximum time, in seconds, to wait for the command")


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    usage: str
    opts: tuple[Opt, ...]
    handler: str  # "module:function", imported lazily to keep start-up fast
    aliases: tuple[str, ...] = ()


COMMANDS = (
    Command(
        "launch",
        "Create and start an Ubuntu instance",
        "[options] [[<remote:>]<image> | <url>]",
        (
            Opt(("cpus", "c"), "cpus", "Number of CPUs to allocate. Minimum: 1, default: 1."),
            Opt(("disk", "d"), "disk", "Disk space to allocate. Minimum: 512M, default: 5G."),
            Opt(
                ("memory", "m"),
                "memory",
                "Amount of memory to allocate. Minimum: 128M, default: 1G.",
            ),
            Opt(("mem",), "memory", hidden=True),
            Opt(("name", "n"), "name", "Name for the instance."),
            Opt(("cloud-init",), "file> | <url", "Path or URL to a user-data cloud-init config"),
            Opt(("network",), "spec", "Add a network interface to the instance"),
            Opt(("bridged",), help="Adds one `--network bridged` network."),
            Opt(("mount",), "local-path>:<instance-path", "Mount a local directory"),
            TIMEOUT,
        ),
        "cmd_launch:cmd_launch",
    ),
    Command(
        "list",
        "List all available instances",
        "[options]",
        (
            Opt(("snapshots",), help="List all available snapshots"),
            FORMAT,
            Opt(("no-ipv4",), hidden=True),
        ),
        "cmd_query:cmd_list",
        ("ls",),
    ),
    Command(
        "info",
        "Display information about instances or snapshots",
        "[options] <instance>[.snapshot] [<instance>[.snapshot] ...]",
        (
            Opt(("snapshots",), help="Display detailed information about the snapshots"),
            FORMAT,
            Opt(("all",), hidden=True),
            Opt(("no-runtime-information",), hidden=True),
        ),
        "cmd_query:cmd_info",
    ),
    Command(
        "exec",
        "Run a command on an instance",
        "[options] <name> [--] <command>",
        (
            Opt(("working-directory", "d"), "dir", "Change to <dir> before execution"),
            Opt(("no-map-working-directory", "n"), help="Do not map the host execution path"),
        ),
        "cmd_exec:cmd_exec",
    ),
    Command(
        "start",
        "Start instances",
        "[options] [<name> ...]",
        (ALL, TIMEOUT),
        "cmd_lifecycle:cmd_start",
    ),
    Command(
        "stop",
        "Stop running instances",
        "[options] [<name> ...]",
        (
            ALL,
            Opt(("time", "t"), "time", "Time from now, in minutes, to delay shutdown"),
            Opt(("cancel", "c"), help="Cancel a pending delayed shutdown"),
            Opt(("force",), help="Force the instance to shut down immediately"),
        ),
        "cmd_lifecycle:cmd_stop",
    ),
    Command(
        "restart",
        "Restart instances",
        "[options] [<name> ...]",
        (ALL, TIMEOUT),
        "cmd_lifecycle:cmd_restart",
    ),
    Command(
        "suspend",
        "Suspend running instances",
        "[options] [<name> ...]",
        (ALL,),
        "cmd_lifecycle:cmd_suspend",
    ),
    Command(
        "delete",
        "Delete instances and snapshots",
        "[options] <name>[.snapshot] [<name>[.snapshot] ...]",
        (ALL, Opt(("purge", "p"), help="Permanently delete specified instances and snapshots")),
        "cmd_lifecycle:cmd_delete",
    ),
    Command(
        "purge",
        "Purge all deleted instances permanently",
        "[options]",
        (),
        "cmd_lifecycle:cmd_purge",
    ),
    Command(
        "recover",
        "Recover deleted instances",
        "[options] <name> [<name> ...]",
        (ALL,),
        "cmd_lifecycle:cmd_recover",
    ),
    Command(
        "snapshot",
        "Take a snapshot of an instance",
        "[options] <instance>",
        (
            Opt(("name", "n"), "name", "An optional name for the snapshot"),
            Opt(("comment", "c", "m"), "comment", "An optional free comment for the snapshot"),
        ),
        "cmd_snapshot:cmd_snapshot",
    ),
    Command(
        "restore",
        "Restore an instance from a snapshot",
        "[options] <instance>.<snapshot>",
        (Opt(("destructive", "d"), help="Discard the current state of the instance"),),
        "cmd_snapshot:cmd_restore",
    ),
    Command(
        "transfer",
        "Transfer files between the host and instances",
        "[options] <source> [<source> ...] <destination>",
        (
            Opt(("recursive", "r"), help="Recursively copy entire directories"),
            Opt(("parents", "p"), help="Make parent directories as needed"),
        ),
        "cmd_exec:cmd_transfer",
        ("copy-files",),
    ),
    Command(
        "shell",
        "Open a shell on a running instance",
        "[options] [<name>]",
        (TIMEOUT,),
        "cmd_exec:cmd_shell",
        ("sh", "connect"),
    ),
    Command(
        "get",
        "Get a configuration setting",
        "[options] [<key>]",
        (
            Opt(("raw",), help="Output in raw format"),
            Opt(("keys",), help="List available settings keys"),
        ),
        "cmd_query:cmd_get",
    ),
    Command("version", "Show version details", "[options]", (FORMAT,), "cmd_query:cmd_version"),
)

BY_NAME = {alias: c for c in COMMANDS for alias in (c.name, *c.aliases)}


def general_help() -> str:
    lines = [
        "Usage: multipass [options] <command>",
        "Create, control and connect to Ubuntu instances.",
        "",
        "This is a command line utility for multipass, a",
        "service that manages Ubuntu instances.",
        "",
        "Options:",
        "  -h, --help     Displays help on commandline options",
        "  -v, --verbose  Increase logging verbosity. Repeat the 'v' in the short option",
        "                 for more detail. Maximum verbosity is obtained with 4 (or more)",
        "                 v's, i.e. -vvvv.",
        "",
        "Available commands:",
        *(f"  {c.name:<13}{c.summary}" for c in sorted(COMMANDS, key=lambda c: c.name)),
        f"  {'help':<13}Display help about a command",
        "",
    ]
    return "\n".join(lines)


def command_help(cmd: Command) -> str:
    return (
        f"Usage: multipass {cmd.name} {cmd.usage}\n{cmd.summary}.\n\n"
        f"Options:\n{option_help(cmd.opts)}\n"
    )


def unknown_command(name: str) -> CommandError:
    return CommandError(
        f'Error: Unknown command or alias \'{name}\' (try "multipass help" or "multipass aliases")',
        1,
        to_stdout=True,
    )


def command_name(argv: list[str]) -> tuple[str | None, list[str]]:
    """The command word (first non-option argument) and the remaining arguments."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return arg, argv[:i] + argv[i + 1 :]
    return None, argv


def dispatch(ctx: Context, argv: list[str]) -> int:
    name, rest = command_name(argv)
    if name is None:
        if any(a in ("-h", "--help") for a in rest):
            ctx.out(general_help())
            return 0
        if "--version" in rest:
            return resolve("cmd_query:cmd_version")(ctx, Parsed())
        ctx.out(general_help())
        return 2  # ParseCode::CommandFail
    if name == "help":
        target = parse(rest, ()).positionals
        if target:
            if target[0] not in BY_NAME:
                raise unknown_command(target[0])
            ctx.out(command_help(BY_NAME[target[0]]))
        else:
            ctx.out(general_help())
        return 0
    cmd = BY_NAME.get(name)
    if cmd is None:
        raise unknown_command(name)
    try:
        parsed = parse(rest, cmd.opts)
    except CommandError as exc:
        if cmd.name == "exec" and exc.message.startswith("Unknown option"):
            exc.message += EXEC_HINT_NO_TRAILING
        raise
    if parsed.is_set("help"):
        ctx.out(command_help(cmd))
        return 0
    ctx.log["command"] = cmd.name
    return resolve(cmd.handler)(ctx, parsed)


def resolve(ref: str) -> Handler:
    module, _, func = ref.partition(":")
    handler: Handler = getattr(importlib.import_module(f"{__package__}.{module}"), func)
    return handler


EXEC_HINT_NO_TRAILING = (  # same text as cmd_exec.EXEC_HINT, without importing it eagerly
    '\nOptions to the inner command should come after "--", like this:\n'
    "multipass exec <instance> -- <command>"
)
