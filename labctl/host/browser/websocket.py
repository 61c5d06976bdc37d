"""A minimal websocket client (RFC 6455), for CDP on Windows.

Why hand-written: on Windows Python cannot hand Chrome the file descriptors 3 and 4 that
`--remote-debugging-pipe` needs, so CDP goes over `--remote-debugging-port` and a websocket to
127.0.0.1. The client only ever talks to the browser it started, on loopback, with text frames:
the handshake, masked text frames out, text/continuation/ping/close frames in. That is about
100 lines, against a dependency (`websocket-client`) for every labctl install.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import struct
from typing import BinaryIO, Final

_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_TEXT, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x0, 0x8, 0x9, 0xA
_MAX_MESSAGE: Final = 256 * 1024 * 1024  # a 1280x800 screenshot is a few MB of base64


class WebSocketError(Exception):
    pass


class WebSocket:
    """One client connection; `send` may be called from any thread (the caller serialises),
    `receive` from one reader thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader: BinaryIO = sock.makefile("rb")

    @classmethod
    def connect(cls, host: str, port: int, path: str, *, timeout: float = 10.0) -> WebSocket:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            sock.sendall(request.encode())
            websocket = cls(sock)
            websocket._check_handshake(key)
        except (OSError, WebSocketError):
            sock.close()
            raise
        sock.settimeout(None)  # the reader thread blocks until the browser speaks or closes
        return websocket

    def _check_handshake(self, key: str) -> None:
        status = self._reader.readline(65536).decode("latin-1")
        headers: dict[str, str] = {}
        while True:
            line = self._reader.readline(65536).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if " 101 " not in f"{status.strip()} ":
            raise WebSocketError(f"websocket handshake refused: {status.strip() or 'no answer'}")
        expected = base64.b64encode(
            hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
        ).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise WebSocketError("websocket handshake: wrong Sec-WebSocket-Accept")

    def send(self, text: str) -> None:
        self._send_frame(_TEXT, text.encode())

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        # XOR as one big integer: pure-Python byte loops would take seconds for a large message
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            length, "big"
        )
        self._sock.sendall(header + mask + masked)

    def receive(self) -> str | None:
        """The next text message; None when the connection closed."""
        parts: list[bytes] = []
        size = 0
        while True:
            frame = self._read_frame()
            if frame is None:
                return None
            final, opcode, payload = frame
            if opcode == _PING:
                self._send_frame(_PONG, payload)
                continue
            if opcode == _CLOSE:
                return None
            if opcode in (_TEXT, _CONTINUATION):
                parts.append(payload)
                size += len(payload)
                if size > _MAX_MESSAGE:
                    raise WebSocketError("websocket message too large")
                if final:
                    return b"".join(parts).decode("utf-8")

    def _read_frame(self) -> tuple[bool, int, bytes] | None:
        head = self._read_exactly(2)
        if head is None:
            return None
        final, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        if length in (126, 127):
            extended = self._read_exactly(2 if length == 126 else 8)
            if extended is None:
                return None
            length = int.from_bytes(extended, "big")
        if length > _MAX_MESSAGE:
            raise WebSocketError("websocket frame too large")
        mask = self._read_exactly(4) if masked else b""
        payload = self._read_exactly(length)
        if payload is None or mask is None:
            return None
        if masked:  # servers never mask (RFC 6455 5.1); accepted anyway
            repeated = (mask * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
                length, "big"
            )
        return final, opcode, payload

    def _read_exactly(self, count: int) -> bytes | None:
        data = self._reader.read(count) if count else b""
        return data if len(data) == count else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(_CLOSE, b"")
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread with EOF
        self._sock.close()
