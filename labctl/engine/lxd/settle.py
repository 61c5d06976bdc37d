"""Riding out a cluster member that has just come back.

For some seconds after a cluster member restarts, the other members have not yet re-opened their
event connection to it (LXD 5.0.2 re-adds it at its next heartbeat: 15 s after the member
answered, measured on the test cluster). Meanwhile every operation on that member's instances
sent through another member fails with "Missing event connection with target cluster member",
and a launch placed there with "Operation not found", although the member and its instances are
fine. A member that is down gives the same first text, but then its instances list with the
status "Error". So labctl retries, for a bounded time, only while the instance does not say that
its member is down; a down member is still reported at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from labctl.errors import EngineError

T = TypeVar("T")

SETTLE_WINDOW: Final = 45.0  # three heartbeats' worth: the measured gap was 15 s
SETTLE_POLL: Final = 3.0
_CATCHING_UP: Final = (
    "missing event connection with target cluster member",
    "operation not found",
)
# LXD is still creating an instance whose launch reply was lost: wait for it, do not fail.
_STILL_CREATING: Final = "is busy running a"


def is_catching_up(exc: BaseException) -> bool:
    """Whether LXD said that a member has not caught up (or is down: ask the instance)."""
    return isinstance(exc, EngineError) and any(t in exc.message.lower() for t in _CATCHING_UP)


def is_still_creating(exc: BaseException) -> bool:
    return isinstance(exc, EngineError) and _STILL_CREATING in exc.message.lower()


def ride_out(
    attempt: Callable[[], T],
    *,
    retry_on: Callable[[BaseException], bool],
    window: float | None = None,
    poll: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`attempt()`, again every `poll` seconds while it raises what `retry_on` accepts, for at
    most `window` seconds; then the last error is raised as it was."""
    retrying = Retrying(
        stop=stop_after_delay(SETTLE_WINDOW if window is None else window),
        wait=wait_fixed(SETTLE_POLL if poll is None else poll),
        retry=retry_if_exception(retry_on),
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)
