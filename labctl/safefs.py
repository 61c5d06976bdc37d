"""How labctl touches files when it runs as root in a folder other users can write.

An instructor runs labctl with sudo in a lab folder students can write to, so any name there may be
a symlink, a FIFO, a hard link or a folder a student made. Three rules, each kept here:

- `PrivateDir`: labctl's own folders (the state dir and its parent, the hosts-file lock's folder)
  are opened without following links and checked on the open descriptor: a folder, owned by a
  trusted user (`trusted_owners`), not writable by group or others, and set to 0700. Every file in
  one is reached through that descriptor (openat, renameat), opened with O_NOFOLLOW and checked
  again on its own descriptor (a regular file, a trusted owner, one hard link), and replaced by a
  new temp file renamed over it, so nothing can be swapped between the check and the use.
- `output_problem` / `write_output`: a file the user names (`check --junit`, `init`'s files) is
  written to a new temp file beside it and renamed over the name (a link there is replaced, never
  followed), and under sudo it belongs to the user who ran sudo.
- who is trusted (`trusted_owners`, `invoking_user`), which the one reader of user files
  (config/files.py) also asks: root never reads a file for someone who could not read it.

The standard library has every primitive (`os.open` with `dir_fd`, O_NOFOLLOW); no maintained
library bundles these rules, so they are written out here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from labctl.errors import LabctlError, UnsafePathError

_NOFOLLOW: Final = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink"),
)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


# --- who is trusted -------------------------------------------------------------------------


def invoking_user() -> tuple[int, int] | None:
    """(uid, gid) of the user who ran `sudo labctl`, when labctl runs as root through sudo."""
    raw_uid, raw_gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() != 0 or not (raw_uid.isascii() and raw_uid.isdigit()) or int(raw_uid) == 0:
        return None
    uid = int(raw_uid)
    if raw_gid.isascii() and raw_gid.isdigit():
        return uid, int(raw_gid)
    try:
        return uid, pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def trusted_owners() -> frozenset[int]:
    """Who may own labctl's folders and files: root, this user, and under sudo whoever ran it."""
    sudo = invoking_user()
    return frozenset({0, os.geteuid(), *((sudo[0],) if sudo else ())})


def describe_uid(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


# --- labctl's own folders ------------------------------------------------------------------------


class UntrustedFileError(UnsafePathError):
    """A name in labctl's own folder that labctl did not make; `reason` says how it tells."""

    def __init__(self, path: Path, reason: str) -> None:
        remove = "rm -r" if reason.startswith("is a directory") else "rm"
        super().__init__(
            f"refusing {path}: it {reason}, so labctl did not make it; remove it "
            f"({remove} {path}) and run labctl again"
        )
        self.path = path
        self.reason = reason


class PrivateDir:
    """A checked folder held open; its files are reached through the descriptor only."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        create: bool,
        label: str = "directory",
        keep_mode: bool = False,
        remedy: str = "",
        within: PrivateDir | None = None,
    ) -> PrivateDir | None:
        """`path` opened and checked (made 0700 if `create`); None if it is missing.

        `within`: `path.name` is opened inside that checked folder, without a path lookup.
        `keep_mode`: a folder the user named: checked, but not set to 0700.
        `remedy`: what to do when the name is not a folder (default: remove it).
        """
        where, name = (within.fd, path.name) if within is not None else (None, str(path))
        if create:
            try:
                if within is None:
                    path.parent.mkdir(parents=True, exist_ok=True)  # the place the user chose
                os.mkdir(name, 0o700, dir_fd=where)
            except FileExistsError:
                pass
            except OSError as exc:
                raise UnsafePathError(
                    f"{label} {path}: cannot create it: {exc.strerror or exc}"
                ) from None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=where)
        except FileNotFoundError:
            if not create:
                return None
            raise UnsafePathError(f"{label} {path}: vanished while labctl made it") from None
        except OSError as exc:
            why = _open_failure(exc, name, where)
            fix = remedy or f"remove it (rm {path}) and run labctl again"
            if exc.errno == errno.EACCES:
                fix = "run labctl as the user who made it (or with sudo)"
            raise UnsafePathError(f"{label} {path}: {why}; {fix}") from None
        try:
            _check_folder(fd, path, label, keep_mode)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    def subdir(self, name: str, *, create: bool, label: str = "directory") -> PrivateDir | None:
        return PrivateDir.open(self.path / name, create=create, label=label, within=self)

    def read(self, name: str, limit: int, *, secret: bool = False) -> bytes | None:
        """The file's bytes, None if there is none; UntrustedFileError if labctl did not make it.

        `secret`: also refused when group or others have any permission on it.
        """
        fd = self._open_entry(name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return None
        try:
            self._check_entry(fd, name, secret=secret)
            data = b""
            while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
                data += chunk
        finally:
            os.close(fd)
        if len(data) > limit:
            raise UntrustedFileError(self.path / name, f"is over {limit} bytes")
        return data

    def write(self, name: str, data: bytes, *, durable: bool = False) -> None:
        """Replace `name` by `data` (0600): a new temp file renamed over it (links not followed)."""
        try:
            _replace(self.fd, name, data, mode=0o600, durable=durable)
        except IsADirectoryError:
            raise UntrustedFileError(self.path / name, "is a directory") from None
        except OSError as exc:
            raise LabctlError(f"cannot write {self.path / name}: {exc.strerror or exc}") from None

    def open_lock(self, name: str) -> int:
        """A descriptor on the lock file `name` (made 0600 if missing), to flock."""
        fd = self._open_entry(name, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)
        assert fd is not None  # O_CREAT: missing is made
        try:
            info = self._check_entry(fd, name)
            if stat.S_IMODE(info.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def names(self, fd: int, name: str) -> bool:
        """Whether `name` is still the file open on `fd` (not removed or replaced since)."""
        try:
            now = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold an exclusive flock on `name` (a short read-modify-write: waits for it)."""
        fd = self.open_lock(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _open_entry(self, name: str, flags: int) -> int | None:
        try:
            return os.open(name, flags | _NOFOLLOW, 0o600, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            reason = _open_failure(exc, name, self.fd)
            raise UntrustedFileError(self.path / name, reason) from None

    def _check_entry(self, fd: int, name: str, *, secret: bool = False) -> os.stat_result:
        info = os.fstat(fd)
        reason = _entry_problem(info, secret=secret)
        if reason:
            raise UntrustedFileError(self.path / name, reason)
        return info


def _entry_problem(info: os.stat_result, *, secret: bool) -> str | None:
    kind = kind_of(info.st_mode)
    if kind is not None:
        return f"is {kind}"
    if info.st_uid not in trusted_owners():
        return f"belongs to {describe_uid(info.st_uid)}"
    # 0 is a file labctl replaced (renamed over) while this descriptor was reading it: fine.
    if info.st_nlink > 1:
        return f"has {info.st_nlink} hard links"
    if secret and info.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(info.st_mode):04o} (others may read it)"
    return None


def _check_folder(fd: int, path: Path, label: str, keep_mode: bool) -> None:
    info = os.fstat(fd)
    if info.st_uid not in trusted_owners():
        raise UnsafePathError(
            f"refusing {label} {path}: it belongs to {describe_uid(info.st_uid)}, who could swap "
            f"its files for links; remove it (rm -r {path}) or run labctl as its owner"
        )
    if info.st_mode & 0o022:
        raise UnsafePathError(
            f"refusing {label} {path}: mode {stat.S_IMODE(info.st_mode):04o} lets other users "
            f"add or swap files in it; fix: chmod 700 {path}"
        )
    if not keep_mode and stat.S_IMODE(info.st_mode) != 0o700:
        os.fchmod(fd, 0o700)


def _open_failure(exc: OSError, name: str, where: int | None) -> str:
    """Why `name` could not be opened, in words: what it is instead, or the system's reason."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO):
        try:
            info = os.stat(name, dir_fd=where, follow_symlinks=False)
        except OSError:
            return exc.strerror or str(exc)
        kind = kind_of(info.st_mode) or "a regular file"
        if stat.S_ISLNK(info.st_mode):
            return "is a symbolic link (labctl never follows links to its own files)"
        return f"is {kind}" + (", not a directory" if exc.errno == errno.ENOTDIR else "")
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or str(exc)


def _replace(
    dir_fd: int,
    name: str,
    data: bytes,
    *,
    mode: int,
    durable: bool,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write `data` to a new temp file in `dir_fd` and rename it over `name`."""
    temp = f".{name[:100]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if owner is not None:
                os.fchown(fd, *owner)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


# --- files the user names for labctl to write -------------------------------------------


def output_problem(path: Path) -> str | None:
    """Why labctl could not write `path` (asked before any work starts), or None if it can."""
    if path.name in ("", ".", ".."):
        return "not a file name"
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"there is no directory {path.parent}"
    except OSError as exc:
        return f"cannot open the directory {path.parent}: {exc.strerror or exc}"
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return "is a directory"
        probe = f".{path.name[:100]}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(
                os.open(
                    probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dir_fd
                )
            )
            os.unlink(probe, dir_fd=dir_fd)
        except OSError as exc:
            return f"cannot write in {path.parent}: {exc.strerror or exc}"
    finally:
        os.close(dir_fd)
    return None


def write_output(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically (a link at `path` is replaced, not followed); under
    sudo the file belongs to the user who ran sudo. Raises OSError."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _replace(dir_fd, path.name, data, mode=0o666, durable=True, owner=invoking_user())
    finally:
        os.close(dir_fd)
