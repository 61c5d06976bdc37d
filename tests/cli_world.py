"""The CLI's one seam for tests: `labctl.cli.labs.contexts` replaced by the test world's contexts,
so every command acts on an in-memory engine, a temporary hosts file and no sudo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from labctl.cli import labs
from labctl.config.load import LabFile
from labctl.ops.classroom.contexts import ClassContext
from labctl.ops.context import Event, LabContext, RunOptions

ClassMaker = Callable[[LabFile, RunOptions, Callable[[Event], None]], ClassContext]


def _unseen(event: Event) -> None:
    """No progress view in this run."""


class WorldContexts(labs.Contexts):
    """A lab command gets `ctx` (with the command's options and progress); a class command gets
    what `classroom` makes."""

    def __init__(self, ctx: LabContext | None = None, classroom: ClassMaker | None = None) -> None:
        self.ctx = ctx
        self.make_class = classroom

    def lab(
        self,
        lab_file: LabFile,
        students: list[str] | None,
        *,
        command: str,
        options: RunOptions,
        on_event: labs.OnEvent | None,
    ) -> LabContext:
        assert self.ctx is not None, "this world has no single lab"
        return replace(self.ctx, on_event=on_event or _unseen, options=options)

    def classroom(
        self, lab_file: LabFile, *, options: RunOptions, on_event: labs.OnEvent | None
    ) -> ClassContext:
        assert self.make_class is not None, "this world has no class"
        return self.make_class(lab_file, options, on_event or _unseen)
