"""Hostile peers on loopback for the attack tests: TCP servers whose every connection runs a
script (trickle a byte at a time, send endless headers, never end a body), and a guard that
fails a test whose call is still running long after every limit it has.

Every loop here is bounded in count and in time, and stops when the test closes the peer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
Script = Callable[[socket.socket, threading.Event], None]

GUARD_SECONDS = 20.0  # a safety net far above every limit under test, never a speed target


class Peer:
    """A TCP server on `address` (default 127.0.0.1, a free port) running `script` per connection."""

    def __init__(self, script: Script, address: str = "127.0.0.1", port: int = 0) -> None:
        self.stop = threading.Event()
        self.listener = socket.create_server((address, port), backlog=64)
        self.listener.settimeout(0.1)
        self.address, self.port = address, int(self.listener.getsockname()[1])
        self.connections = 0
        self._script = script
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._script(conn, self.stop)
        except OSError:
            pass  # the client gave up on us: what the attack wanted to see
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


def read_request(conn: socket.socket) -> bytes:
    """The request's head (up to the blank line), read with a bound."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def trickle(
    prefix: bytes, *, interval: float = 0.25, count: int = 80, byte: bytes = b"a"
) -> Script:
    """Send `prefix`, then one byte every `interval` seconds, `count` times at most (20 s)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(prefix)
        for _ in range(count):
            if stop.wait(interval):
                return
            conn.sendall(byte)

    return script


def flood(head: bytes, unit: bytes, *, max_bytes: int = 64 * 1024 * 1024) -> Script:
    """Send `head`, then `unit` again and again as fast as the client takes it (64 MiB at most)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(head)
        block = unit * max(1, 65536 // len(unit))
        sent = 0
        while sent < max_bytes and not stop.is_set():
            conn.sendall(block)
            sent += len(block)

    return script


def within_guard(call: Callable[[], T], seconds: float = GUARD_SECONDS) -> T:
    """call(), failing the test if it is still running after `seconds` (a hang, not slowness)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if errors:
        raise errors[0]
    assert results, f"still running after {seconds:.0f} s: it hangs on a hostile peer"
    return results[0]


def answer(response: bytes) -> Script:
    """Answer every request with `response` at once (a well-behaved neighbour)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(response)

    return script
