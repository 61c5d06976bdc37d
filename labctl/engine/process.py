"""How the engines run their CLI: `bounded_run`, subprocess.run's calling convention with a
bounded capture (of each stream its head and its tail, the middle dropped and said so) and a
timeout that kills the command's whole process group.

subprocess.run keeps all of a command's output in memory, and an engine's `exec` prints whatever
the student's instance prints (megabytes of it, if they like): labctl keeps at most `limit` bytes
of each stream. Each engine's adapter runs its CLI only through this (argv lists, no shell).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final

CAPTURE_LIMIT: Final = 1024 * 1024  # bytes kept of each stream (stdout, stderr) of one command


def dropped_marker(count: int) -> str:
    """The line that stands where `count` bytes of output were dropped."""
    return f"\n[labctl: {count} bytes of output dropped here]\n"


class HeadTail:
    """The first limit/2 and the last limit/2 bytes of everything fed, and how many were dropped."""

    def __init__(self, limit: int = CAPTURE_LIMIT) -> None:
        self._head_limit = max(1, limit // 2)
        self._tail_limit = max(1, limit - self._head_limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self._tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def data(self) -> bytes:
        """Head and tail as bytes, the marker line between them when something was dropped."""
        middle = dropped_marker(self.dropped).encode() if self.dropped else b""
        return bytes(self.head) + middle + bytes(self.tail)

    def text(self) -> str:
        """As text (UTF-8, undecodable bytes replaced; head and tail decoded apart, so a
        character cut by the drop does not spoil the marker)."""
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return head + dropped_marker(self.dropped) + tail


def pump(
    stdin: IO[bytes] | None,
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    data: bytes | None,
    out: HeadTail,
    err: HeadTail,
    *,
    deadline: float | None,
) -> bool:
    """Write `data` to stdin and drain stdout/stderr into `out`/`err`, all at once (no side
    blocks on a full pipe), until both outputs end (True) or the monotonic `deadline` (False)."""
    assert stdout is not None and stderr is not None
    sent = 0
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ, out)
        selector.register(stderr, selectors.EVENT_READ, err)
        if stdin is not None and data:
            os.set_blocking(stdin.fileno(), False)
            selector.register(stdin, selectors.EVENT_WRITE)
        elif stdin is not None:
            stdin.close()
        while selector.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            for key, _ in selector.select(left):
                if key.data is None:  # stdin can take more
                    assert data is not None and stdin is not None
                    try:
                        sent += os.write(key.fd, data[sent : sent + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        sent = len(data)  # it stopped reading: what it has is what it gets
                    if sent >= len(data):
                        _unregister(selector, stdin)
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.feed(chunk)
                else:
                    _unregister(selector, key.fileobj)  # type: ignore[arg-type]
    return True


def _unregister(selector: selectors.BaseSelector, pipe: IO[bytes]) -> None:
    selector.unregister(pipe)
    pipe.close()


def bounded_run(
    argv: Sequence[str],
    *,
    capture_output: bool = False,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    limit: int = CAPTURE_LIMIT,
    **_: Any,  # text/errors/stdin/check as `_run` passes them: the capture is always text
) -> subprocess.CompletedProcess[str]:
    """Run argv like subprocess.run; with `capture_output`, keep at most `limit` bytes of each
    stream (head and tail) and kill the process group at `timeout` (TimeoutExpired, with what
    was captured). Without it, the command has the user's terminal (no timeout given: none)."""
    if not capture_output:
        return subprocess.run(argv, env=env, check=False, timeout=timeout, text=True)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: a timeout kills what it started too
    )
    out, err = HeadTail(limit), HeadTail(limit)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        data = None if input is None else input.encode()
        if not pump(proc.stdin, proc.stdout, proc.stderr, data, out, err, deadline=deadline):
            raise subprocess.TimeoutExpired(proc.args, timeout or 0.0)
        proc.wait(timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        raise subprocess.TimeoutExpired(
            list(argv), timeout or 0.0, output=out.data(), stderr=err.data()
        ) from None
    finally:
        if proc.returncode is None:  # not reaped yet, so the pid (and group id) is still its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return subprocess.CompletedProcess[str](list(argv), proc.returncode, out.text(), err.text())
