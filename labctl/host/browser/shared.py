"""One browser for many labs (a class): started once, with every lab's resolver rules, and at
most `windows` pages open at once.

A resolver rule (`MAP alvin.xyz 10.0.0.4`) is a browser flag, fixed when the browser starts, and
each lab learns its LB's address only while its own check runs. So the browser starts when
every expected lab has asked for its visits (or said it will not: `withdraw`), or `gather`
seconds after the first one asked, whichever comes first. A lab that asks later than that, with
a domain the running browser does not map, gets a browser of its own: slower, never wrong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

from labctl.errors import LabctlError
from labctl.host.browser.errors import BrowserError
from labctl.host.browser.page import PageVisit, WaitFor, visit
from labctl.host.browser.process import Browser

# Pages at once, for 10 labs of a small app (bench/bench_browser.py): 1 window 20 s and 0.50 GB
# PSS at its peak, 4 windows 7.4-7.8 s and 0.59 GB, 10 windows 5.0-5.4 s and 0.78 GB.
WINDOWS: Final = 4
GATHER: Final = 60.0
Starter = Callable[[list[str]], Browser]


@dataclass(frozen=True)
class VisitRequest:
    url: str
    wait_for: WaitFor
    timeout: float


def _start_browser(rules: list[str]) -> Browser:
    return Browser.start(resolver_rules=rules)


class SharedBrowser:
    def __init__(
        self,
        expected: Iterable[str],
        *,
        windows: int = WINDOWS,
        gather: float = GATHER,
        start: Starter = _start_browser,
    ) -> None:
        self._expected = set(expected)
        self._gather = gather
        self._start = start
        self._windows = threading.BoundedSemaphore(windows)
        self._cond = threading.Condition()
        self._wanted: dict[str, list[str]] = {}
        self._withdrawn: set[str] = set()
        self._first_asked: float | None = None
        self._state: Literal["waiting", "starting", "started", "failed", "closed"] = "waiting"
        self._browser: Browser | None = None
        self._mapped: set[str] = set()
        self._error: LabctlError | None = None
        self._own: list[Browser] = []  # browsers of labs that came too late for the shared one
        self._closing = False

    def __enter__(self) -> SharedBrowser:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def withdraw(self, key: str) -> None:
        """`key` will not visit (its check was not chosen, or its lab could not be checked)."""
        with self._cond:
            self._withdrawn.add(key)
            self._cond.notify_all()

    def visit_all(
        self, key: str, rules: list[str], requests: list[VisitRequest]
    ) -> list[PageVisit]:
        """Visit each request in turn, in a window of the browser that maps `rules`.

        BrowserUnavailableError / BrowserError when no browser can be had."""
        browser = self._browser_for(key, rules)
        visits: list[PageVisit] = []
        for request in requests:
            with self._windows:
                visits.append(
                    visit(browser.cdp, request.url, request.wait_for, timeout=request.timeout)
                )
        return visits

    def _everyone_asked(self) -> bool:
        return self._expected <= set(self._wanted) | self._withdrawn

    def _browser_for(self, key: str, rules: list[str]) -> Browser:
        with self._cond:
            self._wanted[key] = list(rules)
            if self._first_asked is None:
                self._first_asked = time.monotonic()
            self._cond.notify_all()
            deadline = self._first_asked + self._gather
            while self._state == "waiting" and not self._everyone_asked():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            starter = self._state == "waiting"
            if starter:
                self._state = "starting"
                everyone = [rule for wanted in self._wanted.values() for rule in wanted]
                all_rules = list(dict.fromkeys(everyone))
        if starter:
            self._launch_shared(all_rules)
        with self._cond:
            while self._state == "starting":
                self._cond.wait()
            if self._state == "closed":
                raise BrowserError("the browser was closed (labctl is stopping)")
            if self._error is not None:
                raise type(self._error)(self._error.message, hint=self._error.hint)
            assert self._browser is not None
            if set(rules) <= self._mapped and self._browser.running:
                return self._browser
        own = self._start(rules)
        with self._cond:
            closing = self._closing
            if not closing:
                self._own.append(own)
        if closing:
            own.close()
            raise BrowserError("the browser was closed (labctl is stopping)")
        return own

    def _launch_shared(self, rules: list[str]) -> None:
        try:
            browser = self._start(rules)
        except LabctlError as exc:
            with self._cond:
                self._error = exc
                self._state = "failed"
                self._cond.notify_all()
            return
        except BaseException:
            with self._cond:
                self._error = BrowserError("the browser did not start")
                self._state = "failed"
                self._cond.notify_all()
            raise
        with self._cond:
            closing = self._closing
            if not closing:
                self._browser, self._mapped = browser, set(rules)
            self._state = "closed" if closing else "started"
            self._cond.notify_all()
        if closing:  # close() ran while it started: it is this thread's to close
            browser.close()

    def close(self) -> None:
        """Close every browser this object started (idempotent); waiting visits give up."""
        with self._cond:
            self._closing = True
            browsers = [b for b in (self._browser, *self._own) if b is not None]
            self._browser, self._own = None, []
            if self._state != "starting":  # else the starting thread closes what it started
                self._state = "closed"
            self._cond.notify_all()
        for browser in browsers:
            browser.close()
