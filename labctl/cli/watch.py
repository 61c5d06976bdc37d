"""`labctl status --watch`: the status table (or the class matrix) refreshed in place.

The lab file, the contexts and the status keys are read once; each refresh is one status call
(one `multipass list` per host, one signed request per VM agent, labctl.ops.vm_report), and
inside the VMs a finished cloud-init is not asked again (cloud-init/status_agent.py). A refresh
starts `interval` seconds after the previous one started (right away if it took longer), so
refreshes never overlap or pile up. Ctrl-C stops it: exit 130, the terminal left clean.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from labctl.cli import output, output_class
from labctl.cli.app import stdout
from labctl.config.load import LabFile
from labctl.errors import EXIT_FAILED
from labctl.ops.classroom.contexts import ClassContext
from labctl.ops.classroom.contexts import lab_context as open_lab_context
from labctl.ops.classroom.status import class_status
from labctl.ops.status import status as lab_status

MIN_INTERVAL = 1.0

WatchOption = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C (exit 130)."),
]
IntervalOption = Annotated[
    float,
    typer.Option(
        "--interval", help=f"Seconds between refreshes with --watch (at least {MIN_INTERVAL:g})."
    ),
]
CountOption = Annotated[
    int,
    typer.Option("--count", min=0, help="With --watch: stop after N refreshes (0: until Ctrl-C)."),
]


class _Report(Protocol):
    @property
    def healthy(self) -> bool: ...


R = TypeVar("R", bound=_Report)


def watch(
    out: Console,
    refresh: Callable[[], R],
    render: Callable[[Console, R], None],
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
    out: Console,
    report: R,
    render: Callable[[Console, R], None],
    took: float,
    interval: float,
    refreshes: int,
) -> RenderableType:
    # Render with the real printer into a buffer, so the watched view is exactly `status`'s.
    buffer = Console(
        file=io.StringIO(),
        width=out.width,
        color_system="auto" if out.color_system else None,
        force_terminal=out.is_terminal,
        highlight=False,
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


def watch_status(
    lab_file: LabFile, students: list[str] | None, *, interval: float, count: int
) -> None:
    """The CLI's `status --watch`: exits 0/1 by the last report's health, 130 on Ctrl-C."""
    if lab_file.lab.is_class:
        cctx = ClassContext(lab_file=lab_file)  # no progress lines: they would tear the view
        try:
            last_class = watch(
                stdout,
                lambda: class_status(cctx, students),
                output_class.print_class_status,
                interval=interval,
                count=count,
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        healthy = last_class.healthy
    else:
        ctx = open_lab_context(lab_file, students, command="status")
        try:
            last = watch(
                stdout,
                lambda: lab_status(ctx),
                output.print_status,
                interval=interval,
                count=count,
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        healthy = last.healthy
    if not healthy:
        raise typer.Exit(EXIT_FAILED)
