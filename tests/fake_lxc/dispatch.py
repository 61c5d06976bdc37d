"""Parse, check the daemon-wide faults, run one command, turn LxcError into lxc's output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from .cli import parse
from .cmd_admin import cmd_profile, cmd_project, cmd_remote, cmd_trust
from .cmd_exec import cmd_exec
from .cmd_lifecycle import cmd_create, cmd_delete, cmd_pause, cmd_start, cmd_stop
from .cmd_query import cmd_cluster_list, cmd_info, cmd_list, cmd_resource_list, cmd_version
from .cmd_rest import cmd_query
from .cmd_snapshot import cmd_restore, cmd_snapshot
from .context import Context
from .errors import LxcError
from .faults import Settings
from .state import Store

HANDLERS: Final[dict[str, Callable[[Context], int]]] = {
    "launch": cmd_create,
    "init": cmd_create,
    "start": cmd_start,
    "stop": cmd_stop,
    "restart": cmd_stop,
    "pause": cmd_pause,
    "delete": cmd_delete,
    "exec": cmd_exec,
    "snapshot": cmd_snapshot,
    "restore": cmd_restore,
    "list": cmd_list,
    "info": cmd_info,
    "version": cmd_version,
    "query": cmd_query,
    "cluster list": cmd_cluster_list,
    "image list": cmd_resource_list,
    "storage list": cmd_resource_list,
    "network list": cmd_resource_list,
}
WELCOME: Final = (
    "To start your first container, try: lxc launch ubuntu:22.04\n"
    "Or for a virtual machine: lxc launch ubuntu:22.04 --vm\n\n"
)


def handler(command: str) -> Callable[[Context], int]:
    group = command.split()[0] if command else ""
    if command.startswith("config trust"):
        return cmd_trust
    return (
        HANDLERS.get(command)
        or {"project": cmd_project, "profile": cmd_profile, "remote": cmd_remote}[group]
    )


def run(home: Path, argv: list[str], entry: dict[str, Any]) -> int:
    store = Store(home)
    before = store.count_invocation()
    settings = Settings.load(home)
    if before == 0 and settings.on("first_run_notice"):
        sys.stderr.write(WELCOME)  # the client's first run: no config dir yet
    try:
        args = parse(argv)
        ctx = Context(
            home,
            store,
            settings,
            args,
            sys.stdin.buffer,
            sys.stdout,
            sys.stderr,
            before,
            os.environ.get("LXD_DIR") or "/var/lib/lxd",
            entry,
        )
        return handler(args.command)(ctx)
    except LxcError as exc:
        if exc.stdout:
            sys.stdout.write(exc.stdout)
            sys.stdout.flush()
        if exc.message:
            sys.stderr.write(f"Error: {exc.message}\n")
        return exc.code
