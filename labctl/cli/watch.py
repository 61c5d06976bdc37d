"""`labctl status --watch`: the status table (or the class matrix) refreshed in place.

The lab file, the contexts and the status keys are read once (labs.open_each_lab, without
progress lines: they would tear the view); each refresh is one status call
(one engine listing per host, one signed request per VM agent, labctl.ops.vm_report), and
inside the VMs a finished cloud-init is not asked again (cloud-init/status_agent.py). A refresh
starts `interval` seconds after the previous one started (right away if it took longer), so
refreshes never overlap or pile up. Ctrl-C stops it: exit 130, the terminal left clean.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from labctl.cli.app import fail_unless, stdout
from labctl.cli.conventions import bounded_float
from labctl.cli.labs import Target
from labctl.cli.terminal import SafeConsole

MIN_INTERVAL = 1.0
MAX_INTERVAL = 3600.0  # an hour: a slower view is a cron job

WatchOption = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C (exit 130)."),
]
IntervalOption = Annotated[
    float,
    typer.Option(
        "--interval",
        callback=bounded_float(MIN_INTERVAL, MAX_INTERVAL, "seconds"),
        help=f"Seconds between refreshes with --watch ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}).",
    ),
]
CountOption = Annotated[
    int,
    typer.Option("--count", min=0, help="With --watch: stop after N refreshes (0: until Ctrl-C)."),
]


R = TypeVar("R")


def watch(
    out: SafeConsole,
    refresh: Callable[[], R],
    render: Callable[[SafeConsole, R], None],
    *,
    interval: float,
    count: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> R:
    """Refresh and redraw until Ctrl-C (KeyboardInterrupt goes to the caller) or `count` refreshes
    (0 = no limit); the last report, for the exit code."""
    interval = max(MIN_INTERVAL, interval)
    refreshes = 0
    # Not a terminal (a pipe, a log file): one frame after the other instead of in place.
    live = Live(console=out, auto_refresh=False, redirect_stderr=False) if out.is_terminal else None
    with live or contextlib.nullcontext():
        while True:
            started = clock()
            report = refresh()
            refreshes += 1
            frame = _frame(out, report, render, clock() - started, interval, refreshes)
            if live is not None:
                live.update(frame, refresh=True)
            else:
                out.print(frame)
            if count and refreshes >= count:
                return report
            sleep(max(0.0, interval - (clock() - started)))


def _frame(
    out: SafeConsole,
    report: R,
    render: Callable[[SafeConsole, R], None],
    took: float,
    interval: float,
    refreshes: int,
) -> RenderableType:
    # Render with the real printer into a buffer, so the watched view is exactly `status`'s.
    buffer = SafeConsole(
        file=io.StringIO(),
        width=out.width,
        color_system="auto" if out.color_system else None,
        force_terminal=out.is_terminal,
        soft_wrap=True,
    )
    render(buffer, report)
    assert isinstance(buffer.file, io.StringIO)
    header = Text(
        f"{time.strftime('%H:%M:%S')}  refresh {refreshes} took {took:.1f} s; every "
        f"{interval:g} s; Ctrl-C to stop",
        style="dim",
    )
    return Group(header, Text.from_ansi(buffer.file.getvalue()))


def watch_target(target: Target, *, interval: float, count: int) -> None:
    """The CLI's `status --watch`: exits 0/1 by the last report's verdict, 130 on Ctrl-C."""
    shown = target.shown
    try:
        last = watch(
            stdout,
            target.refresh,
            lambda console, report: shown.show(console, console, report),
            interval=interval,
            count=count,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    fail_unless(shown.ok(last))
