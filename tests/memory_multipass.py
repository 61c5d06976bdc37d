"""An in-memory stand-in for labctl.multipass.adapter.Multipass, for orchestrator unit tests.

It records every call and keeps instance states; exec answers the few commands labctl runs.
The subprocess-level fake (tests/fake_multipass) covers the real CLI contract; this one keeps the
use-case tests fast and lets them assert call order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labctl.errors import LaunchTimeoutError, MultipassError
from labctl.multipass.adapter import (
    ExecResult,
    Instance,
    InstanceNotFoundError,
    Snapshot,
    SnapshotsUnsupportedError,
    VersionInfo,
)
from labctl.render.userdata import INSTANCE_MARKER_PATH, LB_APPLY_COMMAND, VM_STATUS_COMMAND


@dataclass
class MemoryVm:
    name: str
    state: str = "Running"
    ipv4: list[str] = field(default_factory=list)
    user_data: str = ""
    marker: dict[str, Any] | None = None
    cloud_init_rc: int = 0
    site: str = ""
    files: dict[str, str] = field(default_factory=dict)  # free-form guest state tests may set
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> saved state


class MemoryMultipass:
    executable = "multipass"

    def __init__(self, *, ips: dict[str, str] | None = None, launch_delay: float = 0.0) -> None:
        self.vms: dict[str, MemoryVm] = {}
        self.calls: list[tuple[str, ...]] = []
        self.ips = ips or {}
        self.launch_delay = launch_delay
        self.daemon: str | None = "1.16.3"
        self.fail_launch: dict[str, MultipassError] = {}
        self.cloud_init_rc: dict[str, int] = {}
        self.vm_status: dict[str, dict[str, Any]] = {}
        self.lb_apply_rc = 0
        self.exec_hook: Callable[[str, list[str]], ExecResult | None] | None = None
        self._lock = threading.Lock()
        self.active_launches = 0
        self.max_active_launches = 0
        # snapshots (multipass.md §2.8) and the rest of the adapter
        self.driver = "qemu"
        self.snapshots_unsupported = False
        self.fail_snapshot: dict[str, MultipassError] = {}  # instance -> error on snapshot/restore
        self.launch_hook: Callable[[str], None] | None = None  # runs after a launch created the VM
        self.interactive_calls: list[list[str]] = []
        self.interactive_rc = 0

    def _record(self, *call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def calls_of(self, verb: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == verb]

    def version(self) -> VersionInfo:
        self._record("version")
        return VersionInfo(client="1.16.3", daemon=self.daemon)

    def list(self) -> list[Instance]:
        self._record("list")
        return [
            Instance(
                vm.name,
                vm.state,
                tuple(vm.ipv4 if vm.state == "Running" else []),
                "Ubuntu 24.04 LTS",
            )
            for vm in self.vms.values()
        ]

    def launch(
        self,
        *,
        name: str,
        image: str,
        cpus: int,
        memory: str,
        disk: str,
        cloud_init: str,
        timeout: float,
    ) -> None:
        self._record("launch", name)
        with self._lock:
            self.active_launches += 1
            self.max_active_launches = max(self.max_active_launches, self.active_launches)
        try:
            time.sleep(self.launch_delay)
            if name in self.vms:
                raise MultipassError(f'launch failed: instance "{name}" already exists')
            failure = self.fail_launch.get(name)
            vm = MemoryVm(
                name,
                ipv4=[self.ips.get(name, "10.99.0.1")],
                user_data=cloud_init,
                cloud_init_rc=self.cloud_init_rc.get(name, 0),
            )
            self.vms[name] = vm
            if self.launch_hook is not None:
                vm.state = "Starting"
                self.launch_hook(name)  # e.g. raise KeyboardInterrupt mid-launch
                vm.state = "Running"
            if failure is not None:
                if isinstance(failure, LaunchTimeoutError):
                    vm.state = "Unknown"
                raise failure
        finally:
            with self._lock:
                self.active_launches -= 1

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float,
        check: bool = False,
    ) -> ExecResult:
        self._record("exec", name, *argv)
        vm = self.vms.get(name)
        if vm is None:
            raise MultipassError(f'exec failed: instance "{name}" does not exist')
        if vm.state != "Running":
            vm.state = "Running"  # multipass exec auto-starts a stopped instance (§2.4)
        if self.exec_hook:
            hooked = self.exec_hook(name, list(argv))
            if hooked is not None:
                return hooked
        args = list(argv)
        if args[:2] == ["cloud-init", "status"]:
            return ExecResult(
                vm.cloud_init_rc,
                "status: done\n" if vm.cloud_init_rc != 1 else "status: error\n",
                "",
            )
        if args == ["cat", INSTANCE_MARKER_PATH]:
            if vm.marker is None:
                return ExecResult(
                    1, "", f"cat: {INSTANCE_MARKER_PATH}: No such file or directory\n"
                )
            return ExecResult(0, json.dumps(vm.marker), "")
        if args == list(LB_APPLY_COMMAND):
            if self.lb_apply_rc:
                return ExecResult(
                    1,
                    "",
                    "nginx: [emerg] invalid number of arguments\nnginx: configuration file test failed\n",
                )
            changed = vm.site != stdin
            vm.site = stdin or ""
            return ExecResult(0, "applied\n" if changed else "unchanged\n", "")
        if args == list(VM_STATUS_COMMAND):
            return ExecResult(0, json.dumps(self.vm_status.get(name, {})), "")
        if args and args[0] == "sudo" and "tail" in args:
            return ExecResult(0, "line 1\nE: Unable to locate package nodejs\n", "")
        return ExecResult(127, "", f"bash: line 1: {args[0] if args else ''}: command not found\n")

    def exec_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        return [self.executable, "exec", name, "--", *argv]

    def launch_argv(
        self, *, name: str, image: str, cpus: int, memory: str, disk: str, timeout: float
    ) -> list[str]:
        return [
            self.executable,
            "launch",
            image,
            "--name",
            name,
            "--cpus",
            str(cpus),
            "--memory",
            memory,
            "--disk",
            disk,
            "--cloud-init",
            "-",
            "--timeout",
            str(int(timeout)),
        ]

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        self._record("start", *names)
        for name in names:
            vm = self.vms[name]
            vm.state = "Running"
            if name in self.ips:  # a restart may bring a new DHCP lease (multipass.md §7.2)
                vm.ipv4 = [self.ips[name]]

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        self._record("stop", *names)
        for name in names:
            self.vms[name].state = "Stopped"

    def recover(self, names: Sequence[str]) -> None:
        self._record("recover", *names)
        for name in names:
            self.vms[name].state = "Stopped"

    def delete(self, names: Sequence[str], *, purge: bool = True) -> None:
        self._record("delete", *names)
        for name in names:
            self.vms.pop(name, None)

    # --- settings, snapshots, interactive -------------------------------------------------------

    def get(self, key: str) -> str:
        self._record("get", key)
        if key == "local.driver":
            return self.driver
        raise MultipassError(f"Unrecognized settings key: '{key}'")

    def _stopped(self, verb: str, name: str) -> MemoryVm:
        vm = self.vms.get(name)
        if vm is None:
            raise InstanceNotFoundError(f'{verb} failed: instance "{name}" does not exist')
        if self.snapshots_unsupported:
            raise SnapshotsUnsupportedError(
                f"`multipass {verb}`: this Multipass driver cannot take snapshots "
                "(The snapshots feature is not implemented on this backend.)"
            )
        if name in self.fail_snapshot:
            raise self.fail_snapshot[name]
        if vm.state != "Stopped":
            what = "take snapshots" if verb == "snapshot" else "restore snapshots"
            raise MultipassError(f"{verb} failed: Multipass can only {what} of stopped instances.")
        return vm

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        self._record("snapshot", name, snapshot)
        vm = self._stopped("snapshot", name)
        if snapshot in vm.snapshots:
            raise MultipassError(f"snapshot failed: Snapshot already exists: {name}.{snapshot}")
        vm.snapshots[snapshot] = {
            "comment": comment,
            "site": vm.site,
            "marker": vm.marker,
            "files": dict(vm.files),
        }

    def restore(self, name: str, snapshot: str) -> None:
        self._record("restore", name, snapshot)
        vm = self._stopped("restore", name)
        saved = vm.snapshots.get(snapshot)
        if saved is None:
            raise MultipassError(f"restore failed: No such snapshot: {name}.{snapshot}")
        vm.site, vm.marker, vm.files = saved["site"], saved["marker"], dict(saved["files"])

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        self._record("delete-snapshot", name, snapshot)
        vm = self.vms.get(name)
        if vm is None or snapshot not in vm.snapshots:
            raise MultipassError(f"delete failed: No such snapshot: {name}.{snapshot}")
        del vm.snapshots[snapshot]

    def list_snapshots(self) -> list[Snapshot]:
        self._record("list-snapshots")
        if self.snapshots_unsupported:
            return []
        return [
            Snapshot(vm.name, snap, "", data["comment"])
            for vm in self.vms.values()
            for snap, data in vm.snapshots.items()
        ]

    def interactive(self, args: Sequence[str]) -> int:
        self._record("interactive", *args)
        self.interactive_calls.append(list(args))
        return self.interactive_rc
