"""`lxc exec NAME [--user N] [--group N] [--env K=V] [--cwd D] -- CMD...`: the remote command's
exit status is lxc's; LXD's own failures are `Error: ...` with 1 (or 126/127 for a command that
cannot run). A canned response (FakeLxc.on_exec) wins over the built-in guest commands."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from typing import Any

from . import guest
from .context import Context, Target, key
from .errors import LxcError
from .instances import lookup, stall_if_member_down

#: how long the fake waits for a caller's stdin to end before running the command anyway
STDIN_GRACE = 2.0
STDIN_STILL_OPEN = "<stdin left open>"


def cmd_exec(ctx: Context) -> int:
    ref = ctx.args.positionals[0]
    argv = [*ctx.args.positionals[1:], *ctx.args.after_dashes]
    if not argv:
        raise LxcError("Invalid number of arguments")
    target, name = ctx.target(ref)
    ctx.reach(target)
    stall_if_member_down(ctx, target, name)
    _wait_thawed(ctx, target, name)
    if ctx.settings.on("exec_hang", name):
        while True:  # a wedged session: only a signal ends it
            time.sleep(3600)
    ctx.sleep("exec_latency", name)
    if not ctx.args.has("disable-stdin"):
        ctx.log["stdin"] = _forwarded_stdin(ctx)
    as_user = guest.as_user_command(argv)
    if as_user is not None:
        user_name, argv = as_user
    canned = _canned(ctx, name, argv)
    if canned is not None:
        time.sleep(float(canned.get("delay", 0)))
        ctx.out(str(canned.get("stdout", "")))
        ctx.stderr.write(str(canned.get("stderr", "")))
        return int(canned.get("rc", 0))
    user = guest.USERS.get(ctx.args.value("user", "0"), "nobody")
    if as_user is not None:
        user = guest.USERS.get(user_name, "root")  # before cloud-init made the user: root
    out, err = io.BytesIO(), io.BytesIO()
    with ctx.server(target) as server:  # the guest's files may change (touch, rm, reboot)
        inst = lookup(ctx, server, target, name)
        if argv[:2] == ["cloud-init", "status"] and ("--wait" in argv or "-w" in argv):
            snapshot: dict[str, Any] = dict(inst)
        else:
            try:
                rc = guest.run(inst, argv, user, out, err)
            except guest.Exit as exc:
                if as_user is None:
                    ctx.stderr.write(exc.stderr)
                    return exc.code
                # the shell and runuser exist: a missing command is runuser's failure, not LXD's
                err.write(guest.runuser_failure(argv[0], exc.code).encode())
                rc = exc.code
            snapshot = {}
    if snapshot:  # waiting happens outside the state lock, reading the state afresh

        def reload() -> dict[str, Any]:
            with ctx.server(target, write=False) as server:
                return dict(lookup(ctx, server, target, name))

        rc = guest.cloud_init_status(snapshot, argv[2:], sys.stdout.buffer, reload)
    sys.stdout.flush()
    sys.stdout.buffer.write(out.getvalue())
    sys.stdout.buffer.flush()
    ctx.stderr.flush()
    sys.stderr.buffer.write(err.getvalue())
    return rc


def _forwarded_stdin(ctx: Context) -> str:
    """What the caller sends on stdin (logged for the tests). lxc forwards stdin while the
    command runs and does not wait for an end of file the command never reads, so a caller
    that leaves the pipe open is not blocked here either."""
    chunks: list[bytes] = []

    def drain() -> None:  # the raw descriptor: a buffered reader's lock aborts the exit
        while chunk := os.read(ctx.stdin.fileno(), 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    reader.join(STDIN_GRACE)
    if reader.is_alive():
        return STDIN_STILL_OPEN
    return b"".join(chunks).decode(errors="replace")


def _wait_thawed(ctx: Context, target: Target, name: str) -> None:
    """A frozen container's processes do not run: exec waits until it is resumed. [I]"""
    while True:
        with ctx.server(target, write=False) as server:
            inst = server["instances"].get(key(target.project, name))
            if inst is None:
                raise LxcError("Instance not found")
            status = inst["status"]
        if status == "Stopped":
            raise LxcError("Instance is not running")
        if status != "Frozen":
            return
        time.sleep(0.1)


def _canned(ctx: Context, name: str, argv: list[str]) -> dict[str, Any] | None:
    for response in reversed(ctx.settings.get("exec_responses")):  # the latest wins
        if response.get("instance") not in ("*", name):
            continue
        prefix = [str(a) for a in response.get("argv_prefix", [])]
        if argv[: len(prefix)] == prefix:
            return dict(response)
    return None
