"""The two ways CDP messages travel between labctl and the browser.

- `PipeTransport` (Linux, macOS): `--remote-debugging-pipe`. The browser reads commands on its
  fd 3 and writes answers and events on its fd 4, each JSON message ended by a NUL byte. No port
  is opened, so nothing else on the machine can drive the browser.
- `WebSocketTransport` (Windows, where a child cannot be given fds 3 and 4):
  `--remote-debugging-port=0`, the port the browser writes to `DevToolsActivePort` in its profile,
  and a websocket to 127.0.0.1.
"""

from __future__ import annotations

import os
from typing import Final, Protocol

from labctl.host.browser.websocket import WebSocket, WebSocketError

_CHUNK: Final = 1 << 16


class Transport(Protocol):
    def send(self, message: str) -> None: ...

    def receive(self) -> str | None:
        """The next message; None once the browser closed its end."""
        ...

    def close(self) -> None: ...


class PipeTransport:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._buffer = bytearray()

    def send(self, message: str) -> None:
        if self._write_fd < 0:
            raise BrokenPipeError("the CDP pipe is closed")
        data = memoryview(message.encode() + b"\0")
        while data:
            written = os.write(self._write_fd, data)
            data = data[written:]

    def receive(self) -> str | None:
        while True:
            end = self._buffer.find(b"\0")
            if end >= 0:
                message = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return message.decode("utf-8")
            if self._read_fd < 0:
                return None
            try:
                chunk = os.read(self._read_fd, _CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                # The reader closes its own end, at EOF: closing an fd another thread is blocked
                # reading could hand its number to a new file under that reader.
                os.close(self._read_fd)
                self._read_fd = -1
                return None
            self._buffer += chunk

    def close(self) -> None:
        """Close labctl's end of the command pipe: the browser reads EOF and quits."""
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1


class WebSocketTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    def send(self, message: str) -> None:
        self._websocket.send(message)

    def receive(self) -> str | None:
        try:
            return self._websocket.receive()
        except (OSError, WebSocketError):
            return None

    def close(self) -> None:
        self._websocket.close()
