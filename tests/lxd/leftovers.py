"""Find and remove what LXD test daemons leave on the host: processes, mounts, cgroups, dirs.

Everything the LXD fixtures start lives under one run folder (the daemons' LXD_DIRs, the
helper dnsmasq's pid and lease files), and every container name starts with one prefix. So a
leftover is recognised by a path under that folder in a process's command line or LXD_DIR, or
by a container cgroup named after the prefix (`lxc.payload.<name>`, `lxc.monitor.<name>`),
which also finds a container's own processes after its daemon was killed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

from tests.simvm._proc import SimError, kill_all, run

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
CGROUP_KINDS: Final = ("lxc.payload.", "lxc.monitor.")


def _ancestors() -> set[int]:
    """This process and its parents (never ours to kill, even if run from the folder)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def _references(pid: int, root: str, container_prefix: str) -> bool:
    proc = Path(f"/proc/{pid}")
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        if any(root.encode() in arg for arg in argv):
            return True
        for var in (proc / "environ").read_bytes().split(b"\0"):
            if var.startswith(b"LXD_DIR=") and var[8:].decode(errors="replace").startswith(root):
                return True
        cgroups = (proc / "cgroup").read_text()
    except OSError:  # gone meanwhile
        return False
    return any(f"/{kind}{container_prefix}" in cgroups for kind in CGROUP_KINDS)


def leftover_pids(root: Path, container_prefix: str) -> list[int]:
    """Processes that belong to the test daemons under `root` or to their containers."""
    skip = _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and pid not in skip and _references(pid, str(root), container_prefix):
            found.append(pid)
    return sorted(found)


def describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            described.append(f"{pid} {argv.strip()[:160]}")
    return described


def kill_leftovers(root: Path, container_prefix: str) -> list[str]:
    """SIGTERM then SIGKILL every leftover process; return what was found."""
    found = describe(leftover_pids(root, container_prefix))
    kill_all(lambda: leftover_pids(root, container_prefix))
    return found


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # octal escapes (\040)
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(root: Path) -> list[str]:
    points = mounts_under(root)
    for point in points:
        run(["umount", "-l", point], check=False)
    left = mounts_under(root)
    if left:
        raise SimError(f"mounts survived umount -l: {left}")
    return points


def detach_loops(root: Path) -> list[str]:
    """Loop devices whose backing file lives under `root` (a loop-file storage pool)."""
    shown = run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)
    detached = []
    for line in shown.stdout.splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[1].strip().startswith(f"{root}/"):
            run(["losetup", "--detach", words[0]], check=False)
            detached.append(words[0])
    return detached


def remove_cgroups(container_prefix: str) -> list[str]:
    """Empty container cgroups named after the prefix, in every hierarchy (deepest first)."""
    removed = []
    for hierarchy in [CGROUP_ROOT, *CGROUP_ROOT.iterdir()]:
        if not hierarchy.is_dir():
            continue
        for kind in CGROUP_KINDS:
            for group in hierarchy.glob(f"{kind}{container_prefix}*"):
                for sub in sorted(group.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if sub.is_dir():
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()
                    removed.append(str(group))
        with contextlib.suppress(OSError):  # liblxc's helper cgroup; recreated when needed
            (hierarchy / "lxc.pivot").rmdir()
    return removed


def remove_tree(root: Path) -> None:
    """rm -rf `root`, refusing while anything is mounted below it (it would delete through)."""
    if mounts_under(root):
        raise SimError(f"refusing to delete {root}: still mounted: {mounts_under(root)}")
    run(["rm", "-rf", "--one-file-system", str(root)], timeout=300)
