"""Longest expected first (LPT): the order in which `up`'s VMs take a launch slot.

With more VMs than --max-parallel slots, the makespan is shortest when the longest jobs start
first. What labctl can know before launching is the VM's work: an app VM installs Node and its
app (longer with `install`/`build`), an LB-only VM installs nginx. VMs that weigh the same keep
lab order. Every launch thread used to reach the slots in whatever order its user-data rendering
finished; the order is now fixed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from labctl.model import Lab, Vm


def expected_weight(lab: Lab, vm: Vm) -> int:
    """A relative cost of provisioning `vm` (only the order matters)."""
    weight = 1 if "lb" in vm.roles else 0
    if "app" in vm.roles:
        weight += 10 + 5 * bool(lab.app.install) + 5 * bool(lab.app.build)
    return weight


def lpt_order(lab: Lab, vms: Sequence[Vm]) -> list[Vm]:
    """Heaviest first; ties in lab order (sorted is stable)."""
    return sorted(vms, key=lambda vm: -expected_weight(lab, vm))


class LaunchOrder:
    """Grants `slots` to the names in the given order: a name waits for the semaphore only once
    every name before it has taken a slot or withdrawn (a VM that needs none, or failed first)."""

    def __init__(self, slots: threading.BoundedSemaphore, names: Sequence[str]) -> None:
        self._slots = slots
        self._queue = list(names)
        self._turn = threading.Condition()

    @contextmanager
    def slot(self, name: str) -> Iterator[None]:
        with self._turn:
            while name in self._queue and self._queue[0] != name:
                self._turn.wait(timeout=0.5)
        self._slots.acquire()
        try:
            self.withdraw(name)  # the next in line may now wait for the semaphore
            yield
        finally:
            self._slots.release()

    def waiting(self) -> bool:
        """Some VM must wait for a slot to free up: it is in line and every slot is taken.

        Asked by a VM still holding its slot: a VM that waits now launches after it, from scratch.
        """
        with self._turn:
            if not self._queue:
                return False
        if self._slots.acquire(blocking=False):  # a free slot: the ones in line go right away
            self._slots.release()
            return False
        return True

    def withdraw(self, name: str) -> None:
        with self._turn:
            if name in self._queue:
                self._queue.remove(name)
                self._turn.notify_all()
