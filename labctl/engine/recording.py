"""An engine that records instead of acting: what `labctl plan` runs `up` against.

Questions go to the real engine (is it ready, what exists, can it snapshot, and the reads a caller
allows), so the recording starts from what is really there. Every change (launch, start, stop,
exec, ...) is written down with the exact command line the real engine would run, and applied to a
simulated inventory, so that the rest of `up` sees what it would see for real: a launched instance
runs (at a documentation address, RFC 5737, that nothing ever sends traffic to), a stopped one is
stopped, an exec succeeds.

Launches are paced as real ones are: at most `max_parallel` at a time, the earliest begun finishing
first, so the decisions `up` takes from what is still waiting for a launch slot (the early
baseline snapshot) come out of a recording as they come out of a real run.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from labctl.engine.base import Argv, Engine, ExecResult, Instance, LaunchSpec, State, Stdin
from labctl.engine.proxy import EngineProxy

PLACEHOLDER_NET: Final = "192.0.2."  # TEST-NET-1: documentation only, never routed
_PACE_LIMIT: Final = 5.0  # a recorded launch never waits longer than this for its turn


@dataclass(frozen=True)
class RecordedCall:
    """One engine call `up` made, as the engine would run it."""

    seq: int  # order among all recorded calls and events
    op: str  # launch | start | stop | delete | recover | exec | list | snapshot | restore ...
    argv: tuple[str, ...]
    instances: tuple[str, ...]
    timeout: float | None
    thread: str
    stdin: bool = False  # something travels on stdin (user-data, a site): never recorded
    command: tuple[str, ...] = ()  # an exec's command as labctl asked for it (argv wraps it)


@dataclass
class Journal:
    """Recorded calls and the events around them, in one sequence."""

    calls: list[RecordedCall] = field(default_factory=list)
    events: list[tuple[int, str, object]] = field(default_factory=list)  # (seq, thread, event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_seq(self) -> int:
        with self._lock:
            return next(self._counter)

    def add_call(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    def add_event(self, event: object) -> None:
        seq = self.next_seq()
        with self._lock:
            self.events.append((seq, threading.current_thread().name, event))


class _Pacing:
    """Recorded launches finish like real ones: none before `limit` are in flight (or every
    expected one has begun), and the earliest begun first."""

    def __init__(self, limit: int) -> None:
        self.expected, self.limit = 0, max(1, limit)
        self.begun = 0
        self.in_flight: list[int] = []
        self.turn = threading.Condition()

    def run(self) -> None:
        with self.turn:
            ticket = self.begun
            self.begun += 1
            self.in_flight.append(ticket)
            self.turn.notify_all()
            self.turn.wait_for(
                lambda: (
                    self.in_flight[0] == ticket
                    and (len(self.in_flight) >= self.limit or self.begun >= self.expected)
                ),
                timeout=_PACE_LIMIT,
            )
            self.in_flight.remove(ticket)
            self.turn.notify_all()


class RecordingEngine(EngineProxy):
    """Records every change with the real engine's command line and simulates its effect."""

    def __init__(
        self,
        inner: Engine,
        journal: Journal,
        *,
        reads: Callable[[Sequence[str]], bool] = lambda argv: False,
        instances: Sequence[str] = (),
        max_parallel: int = 1,
    ) -> None:
        """`instances`: the lab's instance names (those missing, stopped or deleted will take a
        launch slot); `max_parallel`: how many launches run at once."""
        super().__init__(inner)
        self.journal = journal
        self._reads = reads  # exec argv that only read: run for real (e.g. an ownership marker)
        self._lab_instances = tuple(instances)
        self._inventory: dict[str, Instance] | None = None
        self._seed: dict[str, Instance] = {}
        self._addresses: dict[str, str] = {}
        self._stopped_here: set[str] = set()
        self._pacing = _Pacing(max_parallel)
        self._lock = threading.Lock()

    # --- recording ---------------------------------------------------------------------------

    def _record(
        self,
        op: str,
        argv: Sequence[str],
        instances: Sequence[str] = (),
        *,
        timeout: float | None = None,
        stdin: bool = False,
        command: Sequence[str] = (),
    ) -> None:
        self.journal.add_call(
            RecordedCall(
                self.journal.next_seq(),
                op,
                tuple(argv),
                tuple(instances),
                timeout,
                threading.current_thread().name,
                stdin,
                tuple(command),
            )
        )

    def placeholder(self, address: str) -> str | None:
        """The instance a placeholder address stands for, or None for a real address."""
        with self._lock:
            return next((n for n, a in self._addresses.items() if a == address), None)

    def _set(self, name: str, state: State, *, address: bool) -> None:
        with self._lock:
            inventory = self._seeded()
            if address and name not in self._addresses:
                old = inventory.get(name)
                if old is not None and old.ipv4:
                    self._addresses[name] = old.ipv4[0]
                else:
                    self._addresses[name] = f"{PLACEHOLDER_NET}{10 + len(self._addresses)}"
            ipv4 = (self._addresses[name],) if address else ()
            inventory[name] = Instance(name, state, state.value, ipv4)

    def _seeded(self) -> dict[str, Instance]:
        if self._inventory is None:
            inventory = {inst.name: inst for inst in self.inner.list()}
            found = [inventory.get(name) for name in self._lab_instances]
            self._pacing.expected = sum(  # launched (missing), or started (stopped, deleted)
                1 for inst in found if inst is None or inst.state in (State.STOPPED, State.DELETED)
            )
            self._inventory = inventory
            self._seed = dict(inventory)
        return self._inventory

    # --- the daemon ---------------------------------------------------------------------------

    def ready(self) -> str:
        self._record("version", self.inner.version_argv())
        return self.inner.ready()

    # --- queries -----------------------------------------------------------------------------

    def found(self) -> list[Instance]:
        """What the real engine listed before the recording changed anything (not recorded)."""
        with self._lock:
            self._seeded()
        return [self._seed[name] for name in sorted(self._seed)]

    def list(self) -> list[Instance]:
        self._record("list", self.inner.list_argv())
        with self._lock:
            return list(self._seeded().values())

    def exec(
        self, name: str, argv: Argv, *, stdin: Stdin = None, timeout: float, check: bool = False
    ) -> ExecResult:
        if self._reads(argv):
            return self.inner.exec(name, argv, stdin=stdin, timeout=timeout, check=check)
        self._record(
            "exec",
            self.inner.exec_argv(name, argv),
            [name],
            timeout=timeout,
            stdin=stdin is not None,
            command=argv,
        )
        return ExecResult(0, "", "")

    # --- changes -----------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> None:
        self._record(
            "launch", self.inner.launch_argv(spec), [spec.name], timeout=spec.timeout, stdin=True
        )
        self._pacing.run()
        self._set(spec.name, State.RUNNING, address=True)

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        if not names:
            return
        self._record("start", self.inner.start_argv(names, timeout=timeout), names, timeout=timeout)
        with self._lock:
            restarted = any(name in self._stopped_here for name in names)
        if not restarted:  # a start that took a launch slot, not one after labctl's own stop
            self._pacing.run()
        for name in names:
            self._set(name, State.RUNNING, address=True)

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        if not names:
            return
        argv = self.inner.stop_argv(names, force=force, timeout=timeout)
        self._record("stop", argv, names, timeout=timeout)
        with self._lock:
            self._stopped_here.update(names)
        for name in names:
            self._set(name, State.STOPPED, address=False)

    def delete(self, names: Sequence[str]) -> None:
        if not names:
            return
        self._record("delete", self.inner.delete_argv(names), names)
        with self._lock:
            inventory = self._seeded()
            for name in names:
                inventory.pop(name, None)
                self._addresses.pop(name, None)

    def recover(self, names: Sequence[str]) -> None:
        if not names:
            return
        self._record("recover", self.inner.recover_argv(names), names)
        for name in names:
            self._set(name, State.STOPPED, address=False)

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        self._record("snapshot", self.inner.snapshot_argv(name, snapshot, comment=comment), [name])

    def restore(self, name: str, snapshot: str) -> None:
        self._record("restore", self.inner.restore_argv(name, snapshot), [name])

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        self._record("delete-snapshot", self.inner.delete_snapshot_argv(name, snapshot), [name])

    def prepare(self) -> str | None:
        argvs = self.inner.prepare_argvs()
        for argv in argvs:
            self._record("prepare", argv)
        return f"{len(argvs)} command(s) to prepare the engine" if argvs else None

    def interactive(self, name: str, argv: Sequence[str] | None = None) -> int:
        raise NotImplementedError("a recording engine hands no terminal over")
