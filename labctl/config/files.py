"""The one way labctl reads a file the user names (lab.yaml, a roster, anything `-f` points at).

A lab.yaml may be edited by students and run by an instructor with sudo rights, so a path must not
be able to hang labctl or make it read without end: only a regular file is read (a FIFO would block
on open, `/dev/zero` or `/dev/urandom` never end, a socket cannot be read), it is opened with
O_NONBLOCK and checked again on the open descriptor (the path may be swapped between the two
checks), and it is read with a byte limit: never the whole file first, then the size check.

Root must not read for someone what they could not read themselves: a file reached indirectly
(through a symlink or a hard link, or named in a file another user owns: a roster in lab.yaml)
must be readable by each of those users and, under sudo, by the user who ran sudo
(`read_refusal`, checked on the inode that was opened). Path resolution is walked by hand because
the kernel does not say which links it followed, nor whose they were.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from collections import deque
from pathlib import Path
from typing import Final

from labctl.safefs import describe_uid, invoking_user
from labctl.safefs import kind_of as kind_of  # re-exported: config reads kinds from here

_CHUNK: Final = 64 * 1024
MAX_LINKS: Final = 40  # the kernel's own limit before ELOOP


class FileRefusedError(Exception):
    """The file was not read; `message` says why (without the path: the caller names it)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def read_limited(
    path: Path,
    limit: int,
    *,
    what: str = "a file",
    too_big: str = "",
    follow_symlinks: bool = True,
    named_by: int | None = None,
) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, or FileRefusedError.

    `what` names the file in messages ("a lab.yaml"); `too_big` replaces the size sentence;
    `follow_symlinks=False` refuses a symlink (O_NOFOLLOW: the packing of an app folder);
    `named_by`: the uid of whoever wrote this path down (a roster named in lab.yaml).
    """
    return read_owned(
        path,
        limit,
        what=what,
        too_big=too_big,
        follow_symlinks=follow_symlinks,
        named_by=named_by,
    )[0]


def read_owned(
    path: Path,
    limit: int,
    *,
    what: str = "a file",
    too_big: str = "",
    follow_symlinks: bool = True,
    named_by: int | None = None,
) -> tuple[bytes, int]:
    """`read_limited`, and the uid owning the file that was read (whose words it holds)."""
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
        opened = os.fstat(fd)  # what was opened, not what was stat-ed a moment ago
        _check(opened, limit, what, too_big)
        refusal = read_refusal(path, opened, named_by=named_by) if follow_symlinks else None
        if refusal is not None:
            raise FileRefusedError(refusal)
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
    return b"".join(chunks), opened.st_uid


def _check(info: os.stat_result, limit: int, what: str, too_big: str) -> None:
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise FileRefusedError(f"is {kind}, expected {what} (a regular file)")
    if info.st_size > limit:
        raise FileRefusedError(f"file is {info.st_size} bytes; {too_big}")


def _limit_text(limit: int, what: str) -> str:
    size = f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
    return f"{what} is at most {size}"


def read_refusal(path: Path, opened: os.stat_result, *, named_by: int | None = None) -> str | None:
    """Why labctl must not use the file it opened at `path` (`opened`: fstat of it), or None.

    A file reached indirectly (through a symbolic link or a hard link, or whose path was written
    in a file by uid `named_by`) must be one that each of those users, and under sudo the user
    who ran sudo, could read themselves (the folders on its way included).
    """
    try:
        links, folders = _resolve(path)
        now = path.stat()
    except OSError:
        return "changed while labctl read it"
    if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
        return "changed while labctl read it"
    if not links and opened.st_nlink <= 1 and named_by is None:
        return None
    readers = {link.st_uid for link in links} | ({named_by} if named_by is not None else set())
    readers -= {0, os.geteuid()}
    sudo = invoking_user()
    if sudo is not None:
        readers.add(sudo[0])
    for uid in sorted(readers):
        if not _may_read(uid, opened, folders):
            how = (
                "a symbolic link to a file"
                if links
                else "a hard link to a file"
                if opened.st_nlink > 1
                else "a file"
            )
            role = (
                ", who ran sudo,"
                if sudo is not None and uid == sudo[0]
                else ", who owns the file naming it,"
                if uid == named_by and not links
                else ""
            )
            return (
                f"is {how} that {describe_uid(uid)}{role} cannot read; labctl does not read it "
                "for them"
            )
    return None


def _resolve(path: Path) -> tuple[list[os.stat_result], list[os.stat_result]]:
    """The links followed to resolve `path` (as the kernel does) and the folders it ends in."""
    links: list[os.stat_result] = []
    names: list[str] = []
    chain = [Path("/").stat()]  # the folders from / down to the current name
    todo = deque(Path(Path.cwd(), path).parts[1:])
    while todo:
        part = todo.popleft()
        if part == "..":
            if names:
                names.pop()
                chain.pop()
            continue
        here = "/" + "/".join([*names, part])
        info = Path(here).lstat()
        if stat.S_ISLNK(info.st_mode):
            links.append(info)
            if len(links) > MAX_LINKS:
                raise OSError(errno.ELOOP, "too many links")
            target = Path(here).readlink()
            if target.is_absolute():
                names, chain = [], chain[:1]
            todo.extendleft(reversed(target.parts[1:] if target.is_absolute() else target.parts))
            continue
        names.append(part)
        chain.append(info)
    return links, chain[:-1]


def _may_read(uid: int, file: os.stat_result, folders: list[os.stat_result]) -> bool:
    """Whether `uid` could open `file` for reading (permission bits; ACLs are not read)."""
    if uid == 0:
        return True
    groups = _groups_of(uid)

    def allows(info: os.stat_result, user: int, group: int, other: int) -> bool:
        if info.st_uid == uid:
            return bool(info.st_mode & user)
        if info.st_gid in groups:
            return bool(info.st_mode & group)
        return bool(info.st_mode & other)

    return all(allows(f, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH) for f in folders) and allows(
        file, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH
    )


def _groups_of(uid: int) -> set[int]:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        sudo = invoking_user()
        return {sudo[1]} if sudo is not None and sudo[0] == uid else set()
    return set(os.getgrouplist(entry.pw_name, entry.pw_gid))
