"""One HTTP GET that is over within its time limit whatever the peer does, reading a bounded
number of bytes: every HTTP request labctl sends to a VM goes through here (probes.py for the
lab's domain and apps, agent.py for the status agent).

A student has root in their VMs and so controls every byte they answer. http.client (and
urllib3 and httpx, which follow the same model) applies its timeout to each socket operation:
a peer that sends one byte a second never trips it, so a request lasts as long as the peer
likes. No library offers a total deadline for a response, so that part is hand-written, and only
that part: http.client still writes the request and parses the answer, but it reads from a raw
reader that gives every `recv` only the time left until the deadline and counts the bytes.
http.client bounds a header line (64 KiB) and the number of headers (100); the reader bounds
the headers' total (`max_header_bytes`) and the body (`body_limit`).
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_HEADER_BYTES: Final = 64 * 1024  # status line + headers; nginx's own default is 8 KiB
_CHUNK_SLACK: Final = 4096  # chunk-size lines and trailers of a chunked body
_MAX_ERROR: Final = 120  # characters of an error's text that are shown


class AnswerTooLargeError(http.client.HTTPException):
    """The peer sent more than the request's byte bounds allow."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers as sent (name, value), the first `body_limit` body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """All values of header `name` (any case) joined by ", ", as http.client does; None if absent."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else None


class _DeadlineReader(io.RawIOBase):
    """Raw bytes from a socket: each recv gets only the time left, and at most `budget` in all."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self.budget = budget
        self.received = 0
        self.what = "answer headers"  # what the budget bounds, for the error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # any writable buffer (typing's Buffer is 3.12+)
        room = self.budget - self.received
        if room <= 0:
            raise AnswerTooLargeError(f"{self.what} larger than {self.budget} bytes")
        self._sock.settimeout(_time_left(self._deadline))
        count = self._sock.recv_into(memoryview(buffer)[:room])
        self.received += count
        return count


class _DeadlineSocket:
    """What HTTPConnection and HTTPResponse use of a socket (sendall, makefile, close), with the
    deadline applied to every operation."""

    def __init__(self, sock: socket.socket, deadline: float, header_budget: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self.reader = _DeadlineReader(sock, deadline, header_budget)

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_time_left(self._deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(self.reader)

    def close(self) -> None:
        """Nothing: http.client "closes" the connection while the response still reads from it
        (a real socket waits for its makefile()s); `exchange` closes the socket when done."""


def describe(exc: BaseException) -> str:
    """A failed request in a few words: the peer chooses what follows "HTTP/" in a bad status
    line (64 KiB of it, escapes included), so its text is never quoted whole."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):  # before its base class, BadStatusLine
        return str(exc)  # http.client's own words: "Remote end closed connection without response"
    if isinstance(exc, http.client.BadStatusLine):
        return "not an HTTP answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def connect(address: str, port: int, *, timeout: float) -> socket.socket:
    """A TCP connection to address:port within `timeout` seconds (OSError otherwise)."""
    return socket.create_connection((address, port), timeout=timeout)


def exchange(
    sock: socket.socket,
    *,
    path: str,
    headers: Mapping[str, str],
    timeout: float,
    body_limit: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> Answer:
    """GET `path` on a connected socket, over within `timeout` seconds; closes the socket.

    Raises TimeoutError when the deadline passes (however the peer trickles), OSError for a
    broken connection, http.client.HTTPException for an answer that is not HTTP or is too large.
    """
    deadline = time.monotonic() + timeout
    bounded = _DeadlineSocket(sock, deadline, max_header_bytes)
    try:
        address, port = sock.getpeername()[:2]  # for the Host header, unless `headers` has one
    except OSError:
        sock.close()
        raise
    conn = http.client.HTTPConnection(str(address), int(port))
    conn.sock = bounded  # the duck-typed socket that http.client uses
    try:
        conn.request("GET", path, headers=dict(headers))
        response = conn.getresponse()
        reader = bounded.reader
        reader.what = "answer"
        reader.budget = reader.received + 2 * body_limit + _CHUNK_SLACK
        body = response.read(body_limit)
        return Answer(response.status, response.getheaders(), body)
    finally:
        conn.close()
        sock.close()


def get(
    address: str,
    port: int,
    *,
    path: str,
    headers: Mapping[str, str],
    timeout: float,
    body_limit: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> Answer:
    """Connect and GET, all over within `timeout` seconds (errors as for `exchange`)."""
    deadline = time.monotonic() + timeout
    sock = connect(address, port, timeout=timeout)
    return exchange(
        sock,
        path=path,
        headers=headers,
        timeout=max(deadline - time.monotonic(), 0.001),
        body_limit=body_limit,
        max_header_bytes=max_header_bytes,
    )
