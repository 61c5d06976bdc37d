"""Where a command meets its lab(s): how the CLI opens contexts, and the single-lab / class fork.

`contexts` is the one seam between the commands and the world: every command opens its contexts
through it, so a test replaces it (an in-memory engine, a temporary hosts file) and nothing else.

`run_each_lab` is the fork every command acting on a lab or a class goes through. A single lab:
the command's use case runs on its context (inside the live view when the command has one) and
the command's printer shows the result. A class: the same use case runs per student through the
fan-out (labctl/ops/classroom), and each student gets a section printed by the same printer,
then who failed; a command with a class view of its own (up's summary, the status and check
matrices, doctor's capacity table) plugs it in instead. `--json` prints the same outcome as one
document (jsonout), and the exit code is 1 when the outcome is not ok.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from labctl.cli import jsonout
from labctl.cli.app import fail_unless, stderr, stdout, view
from labctl.cli.printers.sections import print_sections, sections_document
from labctl.cli.terminal import SafeConsole
from labctl.config.load import LabFile, load_lab
from labctl.ops.classroom.contexts import ClassContext, lab_context, select_students
from labctl.ops.classroom.fanout import StudentRun, class_run
from labctl.ops.context import Event, LabContext, RunOptions

T = TypeVar("T")
OnEvent = Callable[[Event], None]


class Contexts:
    """How the CLI opens the contexts its commands act on (tests replace `contexts`)."""

    def lab(
        self,
        lab_file: LabFile,
        students: list[str] | None,
        *,
        command: str,
        options: RunOptions,
        on_event: OnEvent | None,
    ) -> LabContext:
        """The one lab a command acts on: the lab's own, or (a class) the one student named."""
        return lab_context(
            lab_file,
            students,
            command=command,
            options=options,
            on_event=on_event or _unseen,
        )

    def classroom(
        self, lab_file: LabFile, *, options: RunOptions, on_event: OnEvent | None
    ) -> ClassContext:
        return ClassContext(lab_file=lab_file, options=options, on_event=on_event or _unseen)


def _unseen(event: Event) -> None:
    """Progress nobody shows (status --watch: lines would tear the redrawn view)."""


contexts = Contexts()


def open_lab(
    path: Path | LabFile,
    students: list[str] | None,
    *,
    command: str,
    options: RunOptions | None = None,
) -> LabContext:
    """The context of a command that acts on exactly one lab (plan, logs, shell, exec, render)."""
    lab_file = path if isinstance(path, LabFile) else load_lab(path)
    return contexts.lab(
        lab_file, students, command=command, options=options or RunOptions(), on_event=view.on_event
    )


def _always(result: object) -> bool:
    return True


def _itself(result: object) -> object:
    return result


@dataclass(frozen=True)
class Shown(Generic[T]):
    """How a command shows an outcome: its printer (stdout, stderr, outcome), its --json document
    (default: the outcome itself) and its verdict (exit 1 when false)."""

    show: Callable[[SafeConsole, SafeConsole, T], None]
    ok: Callable[[T], bool] = _always
    document: Callable[[T], object] = _itself


@dataclass(frozen=True)
class ClassView(Generic[T]):
    """A command's own class view: the class use case and how its outcome is shown; `live`: one
    live row per student while it runs (class up and check)."""

    run: Callable[[ClassContext, list[str] | None], T]
    shown: Shown[T]
    live: bool = False


@dataclass(frozen=True)
class LabCommand(Generic[T]):
    """What `run_each_lab` needs of a command: its name, the single-lab use case and its printer.

    `live`: the live view while a single lab works (`transient`: gone once the result prints);
    `classroom`: the command's own class view, else one section per student titled `title`;
    `bound_launches`: launches of every student share the --max-parallel bound (reset)."""

    name: str
    work: Callable[[LabContext], T]
    shown: Shown[T]
    live: bool = False
    transient: bool = False
    classroom: ClassView[Any] | None = None
    title: str = ""
    bound_launches: bool = False


@dataclass(frozen=True)
class Target:
    """A command's lab(s), opened: `refresh` runs the use case once more; `showing` is the
    progress view to run it in."""

    refresh: Callable[[], Any]
    shown: Shown[Any]
    showing: Callable[[], AbstractContextManager[None]]


def open_each_lab(
    lab_file: LabFile,
    students: list[str] | None,
    command: LabCommand[T],
    *,
    options: RunOptions | None = None,
    events: bool = True,
) -> Target:
    """The fork, made once: a single lab's context, or the class's (`events` False: progress is
    not shown)."""
    options = options or RunOptions()
    on_event = view.on_event if events else None
    if lab_file.lab.is_class:
        klass = command.classroom or _sections(command)
        cctx = contexts.classroom(lab_file, options=options, on_event=on_event)
        chosen = select_students(lab_file.lab, students) if klass.live else None
        return Target(
            lambda: klass.run(cctx, students),
            klass.shown,
            lambda: (
                view.showing(command.name, students=chosen, transient=command.transient)
                if klass.live
                else contextlib.nullcontext()
            ),
        )
    ctx = contexts.lab(lab_file, students, command=command.name, options=options, on_event=on_event)
    return Target(
        lambda: command.work(ctx),
        command.shown,
        lambda: (
            view.showing(command.name, transient=command.transient)
            if command.live
            else contextlib.nullcontext()
        ),
    )


def run_each_lab(
    lab_file: LabFile,
    students: list[str] | None,
    command: LabCommand[T],
    *,
    options: RunOptions | None = None,
    as_json: bool = False,
) -> None:
    """Run `command` on the lab, or on each selected student's lab of a class, and print it."""
    target = open_each_lab(lab_file, students, command, options=options)
    with target.showing():
        outcome = target.refresh()
    if as_json:
        jsonout.print_json(target.shown.document(outcome))
    else:
        target.shown.show(stdout, stderr, outcome)
    fail_unless(target.shown.ok(outcome))


def _sections(command: LabCommand[T]) -> ClassView[list[StudentRun[T]]]:
    """The class view of a command with none of its own: its use case per student, each
    student's section printed by the command's own printer, then who failed."""
    shown = command.shown

    def run(cctx: ClassContext, students: list[str] | None) -> list[StudentRun[T]]:
        return class_run(cctx, students, command.work, bound_launches=command.bound_launches)

    def show(out: SafeConsole, err: SafeConsole, runs: list[StudentRun[T]]) -> None:
        print_sections(
            out,
            err,
            runs,
            lambda result: shown.show(out, err, result),
            title=command.title or command.name,
        )

    return ClassView(
        run,
        Shown(
            show,
            ok=lambda runs: all(run.result is not None and shown.ok(run.result) for run in runs),
            document=lambda runs: sections_document(runs, shown.ok),
        ),
    )
