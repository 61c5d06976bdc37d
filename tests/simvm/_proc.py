"""Small helpers shared by the simvm modules: subprocess with timeouts, locks, JSON state."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

DEFAULT_TIMEOUT: Final[float] = 30.0


class SimError(RuntimeError):
    """Any failure of the simulation machinery itself (not of the simulated guest)."""


class CloudInitTimeout(SimError):  # noqa: N818 - reads like the Multipass message it models
    """run_cloud_init did not finish in time; the VM keeps provisioning, like Multipass."""


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv (never through a shell), capture text output, raise SimError on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_bytes.decode() if input_bytes is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise SimError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise SimError(
            f"command failed (rc={proc.returncode}): {' '.join(argv)}: {proc.stderr.strip()}"
        )
    return proc


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (flock) on path; works across short-lived processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    """Atomic write: temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.chmod(mode)
    tmp.replace(path)


def netns_list() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def link_names() -> list[str]:
    out = run(["ip", "-o", "link", "show"]).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (a zombie's kill(0) still succeeds)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_all(list_pids: Any, *, grace: float = 2.0, rounds: int = 5) -> None:
    """SIGTERM everything list_pids() returns, SIGKILL after grace; repeat (supervisors respawn)."""
    import signal
    import time

    for round_no in range(rounds):
        pids = [p for p in list_pids() if p != os.getpid() and pid_alive(p)]
        if not pids:
            return
        sig = signal.SIGTERM if round_no == 0 else signal.SIGKILL
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if round_no == 0 else 1.0)
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    leftover = [p for p in list_pids() if pid_alive(p)]
    if leftover:
        raise SimError(f"processes survived SIGKILL: {leftover}")
