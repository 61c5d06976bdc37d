"""The one way labctl reads a file the user names (lab.yaml, a roster, anything `-f` points at).

A lab.yaml may be edited by students and run by an instructor with sudo rights, so a path must not
be able to hang labctl or make it read without end: only a regular file is read (a FIFO would block
on open, `/dev/zero` or `/dev/urandom` never end, a socket cannot be read), it is opened with
O_NONBLOCK and checked again on the open descriptor (the path may be swapped between the two
checks), and it is read with a byte limit: never the whole file first, then the size check.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

_CHUNK: Final = 64 * 1024
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink"),
)


class FileRefusedError(Exception):
    """The file was not read; `message` says why (without the path: the caller names it)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_limited(
    path: Path, limit: int, *, what: str = "a file", too_big: str = "", follow_symlinks: bool = True
) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, or FileRefusedError.

    `what` names the file in messages ("a lab.yaml"); `too_big` replaces the size sentence;
    `follow_symlinks=False` refuses a symlink (O_NOFOLLOW: the packing of an app folder).
    """
    too_big = too_big or _limit_text(limit, what)
    try:
        before = path.stat() if follow_symlinks else path.lstat()
    except FileNotFoundError:
        raise FileRefusedError("no such file", missing=True) from None
    except OSError as exc:
        raise FileRefusedError(f"cannot read: {exc.strerror or exc}") from None
    _check(before, limit, what, too_big)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileRefusedError("no such file", missing=True) from None
    except OSError as exc:
        raise FileRefusedError(f"cannot read: {exc.strerror or exc}") from None
    try:
        _check(
            os.fstat(fd), limit, what, too_big
        )  # what was opened, not what was stat-ed a moment ago
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise FileRefusedError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if total > limit:  # it grew while being read
        raise FileRefusedError(f"file is over {limit} bytes; {too_big}")
    return b"".join(chunks)


def _check(info: os.stat_result, limit: int, what: str, too_big: str) -> None:
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise FileRefusedError(f"is {kind}, expected {what} (a regular file)")
    if info.st_size > limit:
        raise FileRefusedError(f"file is {info.st_size} bytes; {too_big}")


def _limit_text(limit: int, what: str) -> str:
    size = f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
    return f"{what} is at most {size}"
