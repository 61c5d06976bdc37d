"""A CDP connection: commands with ids, their answers, and events routed to each page's session.

One reader thread takes every message off the transport. An answer wakes the caller waiting on
its id; an event goes to the queue of the session (page) it belongs to. Any thread may send
commands, so several pages (one per student) are driven at once over one browser. Flat sessions
(`Target.attachToTarget flatten: true`) put every page on the same connection.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Final

from labctl.host.browser.errors import BrowserError
from labctl.host.browser.transport import Transport

COMMAND_TIMEOUT: Final = 30.0

Event = dict[str, Any]  # {"method": ..., "params": {...}}


class CdpCommandError(BrowserError):
    """The browser answered a command with an error (e.g. a target that closed)."""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


class CdpConnection:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # sends, pending answers and subscriptions
        self._pending: dict[int, _Pending] = {}
        self._sessions: dict[str, queue.Queue[Event | None]] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer's `result`."""
        message: dict[str, Any] = {"method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        pending = _Pending()
        with self._lock:
            if self._closed:
                raise BrowserError(f"the browser is gone (CDP {method})")
            message["id"] = number = next(self._ids)
            self._pending[number] = pending
            try:
                self._transport.send(json.dumps(message))
            except OSError as exc:
                del self._pending[number]
                raise BrowserError(f"the browser stopped listening (CDP {method}: {exc})") from None
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(number, None)
            raise BrowserError(f"the browser did not answer {method} within {timeout:.0f}s")
        answer = pending.answer
        if answer is None:
            raise BrowserError(f"the browser went away during {method}")
        if "error" in answer:
            error = answer["error"]
            raise CdpCommandError(f"{method}: {error.get('message', error)}")
        result = answer.get("result", {})
        return result if isinstance(result, dict) else {}

    def subscribe(self, session: str) -> queue.Queue[Event | None]:
        """The queue that gets `session`'s events (None once the connection is gone)."""
        events: queue.Queue[Event | None] = queue.Queue()
        with self._lock:
            self._sessions[session] = events
            if self._closed:
                events.put(None)
        return events

    def unsubscribe(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._transport.close()

    def _read(self) -> None:
        while True:
            text = self._transport.receive()
            if text is None:
                break
            try:
                message = json.loads(text)
            except ValueError:
                continue  # never from a real browser; one bad message must not stop the reader
            if not isinstance(message, dict):
                continue
            self._dispatch(message)
        with self._lock:
            self._closed = True
            pending, self._pending = list(self._pending.values()), {}
            sessions = list(self._sessions.values())
        for waiting in pending:
            waiting.done.set()
        for events in sessions:
            events.put(None)

    def _dispatch(self, message: dict[str, Any]) -> None:
        number = message.get("id")
        with self._lock:
            if isinstance(number, int):
                waiting = self._pending.pop(number, None)
                if waiting is not None:
                    waiting.answer = message
                    waiting.done.set()
                return
            events = self._sessions.get(str(message.get("sessionId", "")))
        if events is not None and isinstance(message.get("method"), str):
            events.put({"method": message["method"], "params": message.get("params") or {}})
