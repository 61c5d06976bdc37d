"""One test session's LXD footprint on the host: taken at the start, undone at the end.

Everything lives under one run folder (default /var/lib/labctl-lxd-test, $LABCTL_LXD_RUN_DIR
overrides; not a pytest tmp dir: an unprivileged container's root must traverse the path to its
rootfs, and a 0700 parent forbids it), every device name starts with DEVICE_PREFIX and every
container name with CONTAINER_PREFIX. `run.json` there records the host baseline (iptables
rules, forwarding switches) taken BEFORE any daemon starts, and whether this run started lxcfs;
so the next session can undo a run that was killed before its teardown. A lock beside the
folder keeps two sessions from sharing (or cleaning up) one footprint.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.lxd import hostnet, leftovers
from tests.lxd.daemon import Lxcfs
from tests.simvm._proc import SimError, link_names, write_json

RUN_DIR_ENV: Final = "LABCTL_LXD_RUN_DIR"
DEFAULT_RUN_DIR: Final = Path("/var/lib/labctl-lxd-test")
DEVICE_PREFIX: Final = "lxt"
CONTAINER_PREFIX: Final = "lxt-"


def run_dir() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


@dataclass
class Report:
    """What a clean-up found and removed (said in the test output), and what it could not."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, items: list[str]) -> None:
        if items:
            self.removed.setdefault(kind, []).extend(items)

    def summary(self) -> str:
        """Counts, and which processes: after a clean teardown a process here is a surprise."""
        if not self.removed:
            return "nothing to remove"
        parts = [f"{kind}: {len(items)}" for kind, items in self.removed.items()]
        programs = [item.split()[1] for item in self.removed.get("processes", []) if " " in item]
        if programs:
            parts.append(f"({', '.join(programs)})")
        return "; ".join(parts)


class LxdRun:
    """begin() cleans up a killed earlier run and takes the baseline; end() puts it back."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or run_dir()
        self.state_file = self.root / "run.json"
        self.lock_file = self.root.with_name(f"{self.root.name}.lock")
        self.state: dict[str, Any] = {}
        self.lxcfs = Lxcfs(self.root / "lxcfs.pid")
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def begin(self) -> Report:
        """Lock, undo a leftover run, record the baseline, make the folder, start lxcfs."""
        self._lock()
        report = self.cleanup_leftovers()
        self.state = {
            "firewall": hostnet.firewall_snapshot(),
            "forwarding": hostnet.forwarding_snapshot(),
            "lxcfs_pid": None,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        self._save()
        if self.lxcfs.ensure():
            assert self.lxcfs.process is not None
            self.state["lxcfs_pid"] = self.lxcfs.process.pid
            self._save()
        return report

    def end(self) -> Report:
        """Undo everything (processes, mounts, links, rules, switches, lxcfs, the folder) and
        check that nothing is left; raises SimError naming what survived."""
        try:
            self.lxcfs.stop()  # first: our own child, reaped here (not left a zombie)
            report = self._undo(self.state)
            self._verify(self.state, report)
            return report
        finally:
            self._unlock()

    def cleanup_leftovers(self) -> Report:
        """Undo an earlier run that did not reach its teardown (killed, or crashed)."""
        if not self.root.exists():
            return Report()
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            state = {}  # no baseline: LXD's rules for our devices are still recognisable
        report = self._undo(state)
        self._verify(state, report)
        return report

    # -- the work ----------------------------------------------------------------------------
    def _undo(self, state: dict[str, Any]) -> Report:
        report = Report()
        report.add("processes", leftovers.kill_leftovers(self.root, CONTAINER_PREFIX))
        report.add("mounts", leftovers.unmount_under(self.root))
        report.add("loop devices", leftovers.detach_loops(self.root))
        report.add("cgroups", leftovers.remove_cgroups(CONTAINER_PREFIX))
        report.add("links", hostnet.delete_links(DEVICE_PREFIX))
        report.add(
            "iptables rules", hostnet.restore_firewall(state.get("firewall", {}), DEVICE_PREFIX)
        )
        if state.get("forwarding"):
            report.add("forwarding switches", hostnet.restore_forwarding(state["forwarding"]))
        lxcfs_pid = state.get("lxcfs_pid")
        if isinstance(lxcfs_pid, int) and _is_lxcfs(lxcfs_pid):
            Lxcfs.stop_pid(lxcfs_pid)
            report.add("lxcfs", [str(lxcfs_pid)])
        if self.root.exists():
            leftovers.remove_tree(self.root)
        return report

    def _verify(self, state: dict[str, Any], report: Report) -> None:
        left = report.left
        pids = leftovers.leftover_pids(self.root, CONTAINER_PREFIX)
        if pids:
            left["processes"] = leftovers.describe(pids)
        links = [name for name in link_names() if name.startswith(DEVICE_PREFIX)]
        if links:
            left["links"] = links
        rules = hostnet.leftover_lxd_rules(state.get("firewall", {}), DEVICE_PREFIX)
        if rules:
            left["iptables rules"] = rules
        if state.get("forwarding"):
            changed = hostnet.forwarding_changes(state["forwarding"])
            if changed:
                left["forwarding switches"] = changed
        lxcfs_pid = state.get("lxcfs_pid")
        if isinstance(lxcfs_pid, int) and _is_lxcfs(lxcfs_pid):
            left["lxcfs"] = [str(lxcfs_pid)]
        if self.root.exists():
            left["folder"] = [str(self.root)]
        if left:
            raise SimError(f"LXD test clean-up left things behind: {left}")

    # -- plumbing ----------------------------------------------------------------------------
    def _save(self) -> None:
        write_json(self.state_file, self.state, mode=0o600)

    def _lock(self) -> None:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[LxdRun]:
        self.begin()
        try:
            yield self
        finally:
            self.end()


def _is_lxcfs(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip() == "lxcfs"
    return False
