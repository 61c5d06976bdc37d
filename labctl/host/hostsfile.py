"""The hosts-file entry for a lab's domain: a managed block, replaced atomically.

Text in, text out (`apply_block`), plus one writer (`write_hosts`). Every line that is not inside
labctl's own block for this lab is kept byte for byte.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from labctl.errors import HostsFileError, LabctlError
from labctl.host import privileged
from labctl.host.state import LockHolder, read_holder, write_holder
from labctl.safefs import PrivateDir

BEGIN: Final = "# BEGIN labctl {lab}"
END: Final = "# END labctl {lab}"
_WINDOWS_HOSTS: Final = r"C:\Windows\System32\drivers\etc\hosts"


def hosts_path() -> Path:
    """`LABCTL_HOSTS_FILE` if set (tests never touch the real file), else the OS's hosts file."""
    override = os.environ.get("LABCTL_HOSTS_FILE")
    if override:
        return Path(override)
    return Path(_WINDOWS_HOSTS if sys.platform == "win32" else "/etc/hosts")


def entry_line(ip: str, names: list[str]) -> str:
    return f"{ip}\t{' '.join(names)}"


def render_block(lab: str, ip: str, names: list[str]) -> str:
    return f"{BEGIN.format(lab=lab)}\n{entry_line(ip, names)}\n{END.format(lab=lab)}\n"


def apply_block(text: str, lab: str, block: str | None) -> str:
    """Return `text` with this lab's block replaced by `block` (None removes it).

    A new block is appended at the end; an existing one is replaced where it stands.
    """
    begin, end = BEGIN.format(lab=lab), END.format(lab=lab)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\r\n") == begin), None)
    if start is not None:
        stop = next((i for i in range(start, len(lines)) if lines[i].rstrip("\r\n") == end), None)
        if stop is None:  # a damaged block (someone deleted the END line): drop to the end of it
            stop = start
            while stop + 1 < len(lines) and not lines[stop + 1].startswith("#"):
                stop += 1
        before, after = lines[:start], lines[stop + 1 :]
        newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
        middle = [] if block is None else [_with_newline(block, newline)]
        return "".join(before + middle + after)
    if block is None:
        return text
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    prefix = text if not text or text.endswith(("\n", "\r")) else text + newline
    return prefix + _with_newline(block, newline)


def _with_newline(block: str, newline: str) -> str:
    return "".join(line + newline for line in block.splitlines())


@dataclass(frozen=True)
class ManagedEntry:
    lab: str
    ip: str
    names: tuple[str, ...]


def managed_entries(text: str) -> list[ManagedEntry]:
    """Every labctl block in `text` (any lab), to find a domain another lab already claims."""
    found: list[ManagedEntry] = []
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# BEGIN labctl "):
            current = line.removeprefix("# BEGIN labctl ").strip()
        elif line.startswith("# END labctl "):
            current = None
        elif current and line and not line.startswith("#"):
            ip, *names = line.split()
            found.append(ManagedEntry(current, ip, tuple(names)))
    return found


def read_hosts(path: Path) -> str:
    try:
        # newline="" keeps CRLF lines byte for byte (read_text has no newline= before 3.13)
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise HostsFileError(f"cannot read hosts file {path}: {exc.strerror}") from None


HOSTS_LOCK_WAIT: Final = 60.0  # seconds; a hosts update takes milliseconds (a sudo prompt longer)


def hosts_lock_dir() -> Path:
    """Where the hosts-file lock lives: a folder only root (or this user) can write.

    Never the shared temp dir, where any local user could hold the lock or plant a link there.
    Root uses /run/labctl; a user (who writes the hosts file through sudo) uses their own runtime
    folder, so runs by different users are not serialized with each other.
    """
    if os.geteuid() == 0:
        return Path("/run/labctl") if Path("/run").is_dir() else Path("/var/run/labctl")
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return (Path(runtime) if Path(runtime).is_absolute() else Path.home() / ".cache") / "labctl"


@contextlib.contextmanager
def _hosts_lock(path: Path, lab: str, wait: float) -> Iterator[None]:
    # Two labs may update the same hosts file at once; serialize read-modify-write so neither
    # loses the other's block. A held lock is waited for `wait` seconds, then named.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    name = f"hosts-{digest}.lock"
    directory = PrivateDir.open(
        hosts_lock_dir(), create=True, label="the hosts-file lock directory"
    )
    assert directory is not None  # create=True
    with directory:
        fd = _take(directory, name, path, wait)
        try:
            write_holder(fd, f"lab {lab}")
            yield
        finally:
            directory.remove(name)  # still held: whoever waits on it sees it gone and retries
            os.close(fd)  # drops the flock


def _take(directory: PrivateDir, name: str, path: Path, wait: float) -> int:
    """The lock file `name`, flocked: waited for up to `wait` seconds, then HostsFileError."""
    deadline = time.monotonic() + wait
    while True:
        fd = directory.open_lock(name)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _busy(path, read_holder(fd), wait) from None
                    time.sleep(0.05)
            if directory.names(fd, name):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its last holder removed it on release: take the one at the name now


def _busy(path: Path, holder: LockHolder | None, wait: float) -> HostsFileError:
    who = (
        f"labctl PID {holder.pid} ({holder.command}, since "
        f"{time.strftime('%H:%M:%S', time.localtime(holder.since))})"
        if holder is not None
        else "another labctl process"
    )
    return HostsFileError(
        f"the hosts file {path} is being changed by {who}; waited {wait:.0f} s, nothing was "
        "changed",
        hint="Run your command again when it is done"
        + (f", or stop it (kill {holder.pid})." if holder is not None else "."),
    )


def update_hosts(
    path: Path,
    lab: str,
    block: str | None,
    *,
    backup: Callable[[str], None] | None = None,
    lock_wait: float = HOSTS_LOCK_WAIT,
) -> bool:
    """Set (or remove, when `block` is None) this lab's block. Returns True if the file changed.

    With `backup`, it is given the file's previous text first (the last version before labctl
    changed it: `LabState.save_hosts_backup`), so a damaged hosts file can always be put back.
    """
    with _hosts_lock(path, lab, lock_wait):
        old = read_hosts(path)
        new = apply_block(old, lab, block)
        if new == old:
            return False
        if backup is not None:
            _save_backup(backup, old)
        write_hosts(path, new)
        return True


def _save_backup(backup: Callable[[str], None], text: str) -> None:
    try:
        backup(text)
    except LabctlError as exc:
        raise HostsFileError(
            f"cannot save the hosts backup: {exc.message}; the hosts file was left as it was"
        ) from None


def write_hosts(path: Path, text: str) -> None:
    """Replace the file atomically; fall back to sudo when it is not writable."""
    try:
        _atomic_write(path, text)
    except PermissionError:
        try:
            privileged.replace_file(path, text)
        except privileged.PrivilegeError as exc:
            raise HostsFileError(
                f"cannot write {path}: permission denied ({exc})",
                hint="Run labctl with sudo, or pass --no-hosts and add the printed line yourself.",
            ) from None
    except OSError as exc:
        raise HostsFileError(
            f"cannot write {path}: {exc.strerror or exc}; the file was left as it was"
        ) from None


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=".labctl-hosts-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        try:
            tmp.replace(path)
        except OSError as exc:
            # A hosts file that is a bind mount (Docker containers, our own e2e tests) cannot be
            # renamed over (EBUSY); write it in place instead, still in one write call.
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            with path.open("r+", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
    finally:
        tmp.unlink(missing_ok=True)
