"""exec / transfer / shell (docs/engines/multipass.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path, PurePosixPath

from .cli import Parsed
from .cmd_lifecycle import PRIMARY, start_instances
from .context import Context, is_running
from .errors import failed, following_errors, usage
from .spinner import Spinner
from .state import Instance

HOME = "/home/ubuntu"
EXEC_HINT = (
    '\nOptions to the inner command should come after "--", like this:\n'
    "multipass exec <instance> -- <command>\n"
)


def _ready_instance(ctx: Context, command: str, name: str, *, auto_start: bool) -> Instance:
    """ssh_info: the instance must exist, not be Deleted/Unknown; Stopped -> client runs start."""
    while True:
        inst = ctx.store.get_instance(name)
        if inst is None:
            raise following_errors(command, [f'instance "{name}" does not exist'])
        state = inst["state"]
        if state == "Deleted":
            raise following_errors(command, [f'instance "{name}" is deleted'])
        if state == "Unknown":
            raise failed(command, "Cannot retrieve credentials in unknown state")
        if is_running(inst):
            return inst
        if state in ("Stopped", "Suspended", "Suspending"):
            if not auto_start:
                raise failed(command, f'instance "{name}" is not running')
            # run_cmd_and_retry({"multipass", "start", name}, parser, cout, cerr): start's
            # spinner goes to exec's own stdout.
            spinner = Spinner(ctx.stdout)
            spinner.start(f"Starting {name}")
            start_instances(ctx, [name], None, spinner)
            spinner.stop()
            continue
        time.sleep(0.05)  # Starting / Restarting: wait until SSH is up [fake simplification]


def cmd_exec(ctx: Context, p: Parsed) -> int:
    if len(p.positionals) < 2:
        raise usage("Wrong number of arguments")
    if p.is_set("working-directory") and p.is_set("no-map-working-directory"):
        raise usage("Options --working-directory and --no-map-working-directory clash")
    name, argv = p.positionals[0], p.positionals[1:]
    ctx.connect("exec")
    inst = _ready_instance(ctx, "exec", name, auto_start=True)
    if ctx.settings.flag("exec_hang", name):
        while True:  # wedged SSH session: only a signal ends it
            time.sleep(3600)
    ctx.sleep("exec_latency", name)
    ctx.stdout.flush()
    rc = ctx.backend.exec(inst, argv, sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.flush()
    return rc


def _split(arg: str) -> tuple[str | None, str]:
    if arg == "-" or ":" not in arg or arg.startswith(("/", ".")):
        return None, arg
    name, path = arg.split(":", 1)
    return name, path


def _remote_path(path: str) -> str:
    if not path:
        return HOME
    return path if path.startswith("/") else f"{HOME}/{path}"


def cmd_transfer(ctx: Context, p: Parsed) -> int:
    args = p.positionals
    if len(args) < 2:
        raise usage("Not enough arguments given")
    if args.count("-") > 1:
        raise usage("Only one '-' allowed")
    if "-" in args and len(args) != 2:
        raise usage("Only two arguments allowed when using '-'")
    sources = [_split(a) for a in args[:-1]]
    dest = _split(args[-1])
    if args[0] == "-" and dest[0] is None:
        raise usage("Target must be inside an instance")
    if args[-1] == "-" and sources[0][0] is None:
        raise usage("Source must be from inside an instance")
    if dest[0] is not None and any(s[0] is not None for s in sources):
        raise usage("Cannot specify an instance name for both source and destination")
    if dest[0] is None and all(s[0] is None for s in sources):
        raise usage("An instance name is needed for either source or destination")
    if dest[0] is None and any(s[0] is None for s in sources):
        raise usage("All sources must be from inside an instance")
    ctx.connect("transfer")
    if dest[0] is not None:  # host/stdin -> instance
        name = dest[0]
        _ready_instance(ctx, "transfer", name, auto_start=False)
        with ctx.store.transaction() as daemon:
            inst = daemon.instances[name]
            target = _remote_path(dest[1])
            for _, src in sources:
                data = sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()
                path = target
                if src != "-" and (target.endswith("/") or _is_dir(ctx, inst, target)):
                    path = f"{target.rstrip('/')}/{Path(src).name}"
                ctx.backend.write_file(inst, path, data)
        return 0
    for source_name, src in sources:  # instance -> host/stdout
        assert source_name is not None
        inst = _ready_instance(ctx, "transfer", source_name, auto_start=False)
        path = _remote_path(src)
        data = ctx.backend.read_file(inst, path)
        if data is None:
            # [fake] wording: SFTP errors print e.what() and exit 2 (docs/engines/multipass.md)
            ctx.err(f"transfer failed: remote source does not exist: {path}\n")
            return 2
        if args[-1] == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            host_target = Path(args[-1])
            if host_target.is_dir():
                host_target = host_target / PurePosixPath(path).name
            host_target.write_bytes(data)
    return 0


def _is_dir(ctx: Context, inst: Instance, path: str) -> bool:
    checker = getattr(ctx.backend, "is_dir", None)
    return bool(checker(inst, path)) if checker is not None else False


def cmd_shell(ctx: Context, p: Parsed) -> int:
    name = p.positionals[0] if p.positionals else PRIMARY
    ctx.connect("shell")
    _ready_instance(ctx, "shell", name, auto_start=True)
    ctx.err(f"fake multipass: no interactive shell for '{name}'; use 'multipass exec'.\n")
    return 0
