"""A class command is a fan-out: the single-lab use case run once per selected student, in
parallel, each with its own LabContext (contexts.py), plus an aggregation of the results.

One student's LabctlError is that student's outcome, never the class's; results come back in
roster order as `StudentRun`s; nothing is printed here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Final, Generic, TypeVar

from labctl.engine.base import Engine, Instance
from labctl.engine.proxy import EngineProxy
from labctl.errors import LabctlError
from labctl.ops.classroom.contexts import ClassContext, HostRef, place, select_students
from labctl.ops.context import LabContext

MAX_STUDENT_THREADS: Final = 64
T = TypeVar("T")


@dataclass(frozen=True)
class StudentRun(Generic[T]):
    """One student's outcome of a class command: the use case's result, or the error it raised."""

    student: str
    host: str
    remote: str | None  # the LXD remote it is on; None: the local server
    lab: str
    domain: str
    result: T | None = None
    error: str = ""
    hint: str = ""
    exit_code: int = 0


class SharedListing(EngineProxy):
    """An engine whose `list()` is answered once for every student on the same server."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._done = False
        self._instances: list[Instance] = []
        self._error: LabctlError | None = None

    def list(self) -> list[Instance]:
        with self._lock:
            if not self._done:
                try:
                    self._instances = self.inner.list()
                except LabctlError as exc:
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return list(self._instances)


def fan_out(
    cctx: ClassContext,
    students: list[str],
    work: Callable[[LabContext], T],
    *,
    placement: dict[str, HostRef] | None = None,
    shared_listing: bool = False,
    launch_slots: threading.BoundedSemaphore | None = None,
    on_interrupt: Callable[[], None] | None = None,
) -> list[StudentRun[T]]:
    """Run `work` on each student's LabContext in parallel; a LabctlError is that student's
    outcome, never the class's. Results in roster order."""
    placement = placement if placement is not None else place(cctx, students, persist=False)
    # keyed by server and project: the members of one cluster are one server, listed once for
    # all of them (each student's own project is listed on its own)
    own = cctx.per_student_projects
    engines: dict[tuple[str | None, str | None], Engine] = {}
    if shared_listing:
        for student in students:
            key = (placement[student].remote, student if own else None)
            if key not in engines:
                engines[key] = SharedListing(cctx.engine_at(*key))

    def one(student: str) -> StudentRun[T]:
        host = placement[student]
        engine = engines.get((host.remote, student if own else None))
        ctx = cctx.student_context(student, host, engine=engine, launch_slots=launch_slots)
        base = StudentRun[T](student, host.name, host.remote, ctx.lab.name, ctx.lab.domain)
        try:
            return replace(base, result=work(ctx))
        except LabctlError as exc:
            return replace(base, error=exc.message, hint=exc.hint or "", exit_code=exc.exit_code)

    if not students:
        return []
    workers = min(MAX_STUDENT_THREADS, len(students))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="student") as pool:
        futures = [pool.submit(one, student) for student in students]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()  # students not started yet never start
            if on_interrupt is not None:
                on_interrupt()
            raise


def class_run(
    cctx: ClassContext,
    students: list[str] | None,
    work: Callable[[LabContext], T],
    *,
    bound_launches: bool = False,
) -> list[StudentRun[T]]:
    """Run one use case for each selected student (all of them by default), in parallel.

    With `bound_launches`, launches (reset --rebuild) share one --max-parallel bound across the
    class.
    """
    chosen = select_students(cctx.lab, students)
    slots = threading.BoundedSemaphore(cctx.options.max_parallel) if bound_launches else None
    return fan_out(
        cctx, chosen, work, placement=place(cctx, chosen, persist=False), launch_slots=slots
    )
