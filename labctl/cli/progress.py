"""Progress while a command works: the use cases' Events (labctl/ops/context.py) on stderr.

On a terminal, `up`, `down`, `reset`, `snapshot`, `drill`, `check` and a class's `up` and `check`
get a live view (rich Live): one row per VM (a class: per student) with a spinner, its stage, the time spent
in that stage and its latest message (during cloud-init: the last line of the VM's
cloud-init-output.log), then the overall elapsed time. A wait of up to 30 min (waits.cloud_init)
must never look hung. Its last frame stays on screen, one row per VM at its last stage (`check`'s
is transient: its table follows). Piped, NO_COLOR, TERM=dumb or --no-progress: plain timestamped lines without escape
codes, fit for CI logs. --quiet shows no progress at all (results and errors still print).

Every Event is made displayable once, as it arrives (`displayed`): each field on one line with
its control characters shown (terminal.one_line), and a VM's log line tidied first (the last
frame of spinner redraws, terminal.log_line), so neither mode can be driven by what a VM wrote.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import TYPE_CHECKING, Final, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from labctl.cli.terminal import SafeConsole, log_line, one_line

if TYPE_CHECKING:  # only its type: a command that shows no progress (version) loads no use case
    from labctl.ops.context import Event

Mode = Literal["live", "plain", "off"]

MARKS: Final = {"start": "…", "done": "✓", "fail": "✗", "info": "•", "skip": "-", "log": "|"}
_STYLES: Final = {"done": "green", "fail": "red", "skip": "yellow", "info": "blue"}
LAB_ROW: Final = "lab"  # the row of events that name no VM (preflight, lb wiring, serve, baseline)
STUDENT_UP: Final = "up"  # a class up's event that ends a student's row (counted: "3/24 up")


def elapsed(seconds: float) -> str:
    """0:07, 2:15, 1:02:03: how long, the way a stopwatch shows it."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def displayed(event: Event) -> Event:
    """`event` as it may be shown: every field on one line with its control characters made
    visible; a log line (a VM's own text) tidied of spinner and redraw noise first."""
    message = log_line(event.message) if event.kind == "log" else event.message
    return replace(
        event,
        stage=one_line(event.stage),
        message=one_line(message),
        vm=None if event.vm is None else one_line(event.vm),
    )


def plain_line(event: Event, now: float | None = None) -> str:
    """One timestamped line for a log: `21:03:04 ✓ launch     app1 hello-app1 launched`."""
    event = displayed(event)
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    where = f"{event.vm} " if event.vm else ""
    return f"{stamp} {MARKS[event.kind]} {event.stage:<10} {where}{event.message}"


def choose_mode(console: Console, *, quiet: bool = False, no_progress: bool = False) -> Mode:
    """live only on a real terminal that wants colour (no-color.org: NO_COLOR set and non-empty)."""
    if quiet:
        return "off"
    if (
        no_progress
        or not console.is_terminal
        or os.environ.get("NO_COLOR")
        or os.environ.get("TERM") == "dumb"
    ):
        return "plain"
    return "live"


@dataclass
class _Row:
    name: str
    stage: str = ""
    kind: str = "start"
    message: str = ""
    since: float = field(default_factory=time.monotonic)
    ended: float | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))
    finished: set[str] = field(default_factory=set)  # stages this row has ended
    # Where the row stood before a repeat of a stage it had ended (the wiring checked again after
    # a snapshot restarted the VM): what the row ends on when the repeat goes well.
    before_repeat: tuple[str, str, str, float, float | None] | None = None

    def update(self, stage: str, kind: str, message: str, now: float) -> None:
        if kind == "log":
            self.message = message  # a log line shows what the current stage is doing
            return
        if stage not in self.finished:
            self.before_repeat = None  # a stage the row never ended: real progress
        elif stage != self.stage and self.ended is not None and self.before_repeat is None:
            self.before_repeat = (self.stage, self.kind, self.message, self.since, self.ended)
        if stage != self.stage or (kind == "start" and self.kind != "start"):
            self.since = now  # a new stage: its clock starts again
        self.stage = stage
        self.kind = kind
        self.message = message
        self.ended = now if kind in ("done", "fail", "skip") else None
        if kind == "fail":
            self.before_repeat = None  # a failure is the row's last word, repeat or not
        elif kind in ("done", "skip"):
            if self.before_repeat is not None:
                # the repeat went well: the row ends on the stage it had reached before it
                self.stage, self.kind, self.message, self.since, self.ended = self.before_repeat
                self.before_repeat = None
            else:
                self.finished.add(stage)


class ProgressView:
    """Where the CLI sends every Event: to the live view while one is shown, else plain lines."""

    def __init__(self, console: SafeConsole) -> None:
        self.console = console
        self.quiet = False
        self.no_progress = False
        self._lock = threading.Lock()
        self._live: _LiveState | None = None
        self._interrupted = False
        self._class: dict[str, int] | None = None  # plain class up: the counter

    def on_event(self, event: Event) -> None:
        with self._lock:
            if self._interrupted and event.kind == "fail":
                return  # a Ctrl-C kills the engine calls in flight: not the VMs' failures
            if self._live is not None:
                self._live.add(event)
                return
            if choose_mode(self.console, quiet=self.quiet, no_progress=self.no_progress) == "off":
                return
            line = plain_line(event)
            counted = event.stage == STUDENT_UP and event.kind in ("done", "fail")
            if self._class is not None and counted:
                self._class[event.kind] += 1
                done, failed, total = self._class["done"], self._class["fail"], self._class["total"]
                line += f" ({done}/{total} up, {failed} failed)"
            self.console.out(line)

    @contextmanager
    def showing(
        self, command: str, *, students: Sequence[str] | None = None, transient: bool = False
    ) -> Iterator[None]:
        """Show progress of `command` while the block runs (live on a terminal; `transient`: the
        view is gone when the block ends, for a command whose result shows each item again)."""
        mode = choose_mode(self.console, quiet=self.quiet, no_progress=self.no_progress)
        previous = _catch_interrupt(self._interrupt)
        try:
            if mode != "live":
                if students is not None:
                    self._class = {"done": 0, "fail": 0, "total": len(students)}
                try:
                    yield
                finally:
                    self._class = None
                return
            state = _LiveState(command, students)
            live = Live(
                get_renderable=state.render,
                console=self.console,
                refresh_per_second=8,
                transient=transient,
                # Anything printed meanwhile goes above the view, when stdout is the same
                # terminal; piped, it must stay on stdout.
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=False,
            )
            with live:
                with self._lock:
                    self._live = state
                try:
                    yield
                finally:
                    with self._lock:
                        self._live = None
                        state.finish()
                    live.refresh()
        finally:
            _restore_interrupt(previous)

    def _interrupt(self) -> None:
        self._interrupted = True  # no lock: a signal handler must never wait


class _LiveState:
    """The rows of one live view; `render` is called by rich's refresh thread."""

    def __init__(self, command: str, students: Sequence[str] | None) -> None:
        self.command = command
        self.by_student = students is not None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.rows: dict[str, _Row] = {}
        self.lock = threading.Lock()
        self.total = len(students) if students is not None else 0
        for student in students or ():
            self.rows[student] = _Row(student, stage="waiting", message="")

    def add(self, event: Event) -> None:
        event = displayed(event)
        now = time.monotonic()
        vm = event.vm or LAB_ROW
        if self.by_student:
            student, _, vm_name = vm.partition(":")
            key, message = student, (f"{vm_name}: {event.message}" if vm_name else event.message)
        else:
            key, message = vm, event.message
        with self.lock:
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = _Row(key)
            if self.by_student and event.stage != STUDENT_UP and row.kind in ("done", "fail"):
                return  # the student's final word stands
            if self.by_student and event.kind in ("done", "fail") and event.stage != STUDENT_UP:
                row.update(event.stage, "start", message, now)  # one VM done: the student is not
                return
            row.update(event.stage, event.kind, message, now)
            if self.by_student and event.stage == STUDENT_UP:
                row.since = self.started  # a student's end shows how long its whole up took

    def finish(self) -> None:
        self.ended = time.monotonic()

    def render(self) -> RenderableType:
        now = self.ended or time.monotonic()
        with self.lock:
            rows = list(self.rows.values())
            # Fixed widths: a long log line is cut (…), never the VM, stage or clock columns.
            grid = Table.grid(padding=(0, 1), expand=True)
            grid.add_column(width=1, no_wrap=True)
            grid.add_column(width=max(len(r.name) for r in rows) if rows else 4, style="bold")
            grid.add_column(width=max([10, *(len(r.stage) for r in rows)]), no_wrap=True)
            grid.add_column(width=7, no_wrap=True, justify="right")
            grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            for row in rows:
                grid.add_row(
                    self._mark(row),
                    row.name,
                    row.stage,
                    elapsed((row.ended or now) - row.since),
                    Text(row.message, style="dim" if row.kind == "start" else ""),
                )
            footer = self._footer(rows, now)
        return Group(grid, Text(footer, style="bold"))

    def _mark(self, row: _Row) -> RenderableType:
        if row.kind in ("start", "log") and self.ended is None:
            if self.by_student and row.stage == "waiting":
                return Text("·", style="dim")
            return row.spinner
        mark = MARKS.get(row.kind, "…") if row.kind != "start" else "…"
        return Text(mark, style=_STYLES.get(row.kind, ""))

    def _footer(self, rows: list[_Row], now: float) -> str:
        took = elapsed(now - self.started)
        if not self.by_student:
            return f"{self.command}: {took} elapsed"
        if self.command != STUDENT_UP:  # no per-student end to count (class check)
            return f"class {self.command}: {self.total} student(s) · {took} elapsed"
        up = sum(1 for row in rows if row.kind == "done" and row.stage == STUDENT_UP)
        failed = sum(1 for row in rows if row.kind == "fail" and row.stage == STUDENT_UP)
        return f"class {self.command}: {up}/{self.total} up, {failed} failed · {took} elapsed"


_Handler = signal.Handlers | int | None | object


def _catch_interrupt(note: object) -> _Handler:
    """Note a Ctrl-C before Python raises KeyboardInterrupt, so the failures of the engine
    calls it kills are not shown as the VMs' own. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if callable(note):
            note()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    return previous


def _restore_interrupt(previous: _Handler) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)  # type: ignore[arg-type]  # what getsignal gave
