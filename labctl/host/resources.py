"""What the host can give the lab's VMs: CPUs, available memory, free disk. Stdlib only.

Read-only and side-effect free; `doctor` and `up`'s capacity preflight compare it with what
lab.yaml asks for. Linux reads /proc/meminfo (MemAvailable); elsewhere memory is unknown (None).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Where multipassd keeps instance images, per platform (the disk that VM disks grow on).
STORAGE_DIRS: Final = (
    "/var/snap/multipass/common/data/multipassd",  # Linux (snap)
    "/var/root/Library/Application Support/multipassd",  # macOS
    r"C:\ProgramData\Multipass",  # Windows
)


@dataclass(frozen=True)
class HostResources:
    cpus: int
    memory_available: int | None  # bytes; None when unknown
    disk_free: int | None  # bytes free where VM disks live; None when unknown
    disk_path: str
    memory_total: int | None = None  # bytes; None when unknown
    # fs.inotify.max_user_instances: unprivileged containers' roots map to one host user, so
    # every container on this host shares it; None when unknown (not Linux, or not this host)
    inotify_instances: int | None = None


def storage_dir(candidates: tuple[str, ...] = STORAGE_DIRS) -> Path:
    """The first Multipass storage dir that exists (root may be needed to see it), else home."""
    for candidate in candidates:
        try:
            if Path(candidate).is_dir():
                return Path(candidate)
        except OSError:
            continue
    return Path.home()


def mem_available(meminfo: str, field: str = "MemAvailable") -> int | None:
    """A field (MemAvailable, MemTotal) from /proc/meminfo text, in bytes."""
    for line in meminfo.splitlines():
        if line.startswith(f"{field}:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None


def host_resources() -> HostResources:
    memory = total = None
    if sys.platform.startswith("linux"):
        try:
            meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
        except OSError:
            meminfo = ""
        memory, total = mem_available(meminfo), mem_available(meminfo, "MemTotal")
    where = storage_dir()
    try:
        free: int | None = shutil.disk_usage(where).free
    except OSError:
        free = None
    return HostResources(os.cpu_count() or 1, memory, free, str(where), total, inotify_limit())


def inotify_limit(path: Path = Path("/proc/sys/fs/inotify/max_user_instances")) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
