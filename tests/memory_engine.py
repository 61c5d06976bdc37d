"""An in-memory engine (labctl.engine.base.Engine), for use-case unit tests; mypy checks it.

It records every call and keeps instance states in Multipass's words (`capabilities` are
Multipass's unless a test passes others); exec answers the few commands labctl runs. The
subprocess-level fake (tests/fake_multipass) covers the real CLI contract; this one keeps the
use-case tests fast and lets them assert call order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labctl.engine.base import (
    Argv,
    Capabilities,
    Engine,
    ExecResult,
    HealthLine,
    Instance,
    LaunchSpec,
    Snapshot,
    Stdin,
)
from labctl.engine.multipass.adapter import CAPABILITIES as MULTIPASS_CAPABILITIES
from labctl.engine.multipass.adapter import MIN_VERSION, MultipassError
from labctl.engine.multipass.parse import VersionInfo, state_of
from labctl.errors import (
    DaemonUnreachableError,
    EngineError,
    InstanceNotFoundError,
    LaunchTimeoutError,
    SnapshotsUnsupportedError,
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


# Aliases: inside the class body, `list` names the method, not the builtin.
_Argv = list[str]
_Instances = list[Instance]
_Snapshots = list[Snapshot]
_Health = list[HealthLine]


class MemoryEngine:
    executable = "multipass"

    def __init__(
        self,
        *,
        ips: dict[str, str] | None = None,
        launch_delay: float = 0.0,
        capabilities: Capabilities = MULTIPASS_CAPABILITIES,
    ) -> None:
        self.capabilities = capabilities
        self.vms: dict[str, MemoryVm] = {}
        self.calls: list[tuple[str, ...]] = []
        self.ips = ips or {}
        self.launch_delay = launch_delay
        self.daemon: str | None = "1.16.3"
        self.fail_launch: dict[str, EngineError] = {}
        self.cloud_init_rc: dict[str, int] = {}
        self.vm_status: dict[str, dict[str, Any]] = {}
        self.lb_apply_rc = 0
        self.exec_hook: Callable[[str, list[str]], ExecResult | None] | None = None
        self._lock = threading.Lock()
        self.active_launches = 0
        self.max_active_launches = 0
        # snapshots (docs/engines/multipass.md) and the rest of the adapter
        self.driver = "qemu"
        self.snapshots_unsupported = False
        self.fail_snapshot: dict[str, EngineError] = {}  # instance -> error on snapshot/restore
        self.launch_hook: Callable[[str], None] | None = None  # runs after a launch created the VM
        self.interactive_calls: list[list[str]] = []
        self.labels: dict[
            str, dict[str, str]
        ] = {}  # instance -> ownership labels it was launched with
        self.interactive_rc = 0

    def _record(self, *call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def calls_of(self, verb: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == verb]

    def version(self) -> VersionInfo:
        self._record("version")
        return VersionInfo(client="1.16.3", daemon=self.daemon)

    def ready(self) -> str:
        info = self.version()
        if info.daemon is None:
            raise DaemonUnreachableError("multipass is installed but its daemon does not answer")
        found = info.daemon_tuple()
        if found is not None and found < MIN_VERSION:
            raise MultipassError(f"Multipass {info.daemon} is too old")
        return f"multipass {info.daemon}"

    def health(self, *, image: str | None = None) -> _Health:
        self._record("health")
        if self.daemon is None:
            return [HealthLine("daemon", "fail", "multipassd does not answer")]
        return [
            HealthLine("daemon", "ok", f"multipassd {self.daemon} answers"),
            HealthLine("driver", "ok", self.driver),
        ]

    def prepare(self) -> str | None:
        return None

    def prepare_argvs(self) -> list[list[str]]:
        return []

    def snapshots_unavailable(self) -> str | None:
        info = self.version()
        found = info.daemon_tuple()
        if found is not None and found < (1, 13, 0):
            return f"Multipass {info.daemon} has no snapshots (they need 1.13.0 or newer)"
        self._record("get", "local.driver")
        if self.driver in ("lxd", "libvirt"):
            return f"the {self.driver} driver cannot take snapshots (multipass #3328)"
        return None

    def list(self) -> _Instances:
        self._record("list")
        return [
            Instance(
                vm.name,
                state_of(vm.state),
                vm.state,
                tuple(vm.ipv4 if vm.state == "Running" else []),
                labels=dict(self.labels.get(vm.name, {})) if self.capabilities.keeps_labels else {},
            )
            for vm in self.vms.values()
        ]

    def launch(self, spec: LaunchSpec) -> None:
        name = spec.name
        self._record("launch", name)
        self.labels[name] = dict(spec.labels)
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
                user_data=spec.user_data,
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
        self, name: str, argv: Argv, *, stdin: Stdin = None, timeout: float, check: bool = False
    ) -> ExecResult:
        self._record("exec", name, *argv)
        vm = self.vms.get(name)
        if vm is None:
            raise MultipassError(f'exec failed: instance "{name}" does not exist')
        if vm.state != "Running":
            vm.state = "Running"  # multipass exec auto-starts a stopped instance
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

    # --- the command lines: what plan shows (a made-up CLI, `mem`) ------------------------------

    def version_argv(self) -> _Argv:
        return ["mem", "version"]

    def list_argv(self) -> _Argv:
        return ["mem", "list"]

    def list_snapshots_argv(self) -> _Argv:
        return ["mem", "list-snapshots"]

    def launch_argv(self, spec: LaunchSpec) -> _Argv:
        sizes = [f"--cpus={spec.cpus}", f"--memory={spec.memory}", f"--disk={spec.disk}"]
        return ["mem", "launch", spec.name, spec.image, *sizes, f"--timeout={spec.timeout:g}"]

    def exec_argv(self, name: str, argv: Sequence[str]) -> _Argv:
        return ["mem", "exec", name, "--", *argv]

    def start_argv(self, names: Sequence[str], *, timeout: float) -> _Argv:
        return ["mem", "start", *names, f"--timeout={timeout:g}"]

    def stop_argv(self, names: Sequence[str], *, force: bool, timeout: float) -> _Argv:
        return ["mem", "stop", *names, *(["--force"] if force else [])]

    def delete_argv(self, names: Sequence[str]) -> _Argv:
        return ["mem", "delete", *names]

    def recover_argv(self, names: Sequence[str]) -> _Argv:
        return ["mem", "recover", *names]

    def snapshot_argv(self, name: str, snapshot: str, *, comment: str) -> _Argv:
        return ["mem", "snapshot", name, snapshot]

    def restore_argv(self, name: str, snapshot: str) -> _Argv:
        return ["mem", "restore", name, snapshot]

    def delete_snapshot_argv(self, name: str, snapshot: str) -> _Argv:
        return ["mem", "delete-snapshot", name, snapshot]

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        self._record("start", *names)
        for name in names:
            vm = self.vms[name]
            vm.state = "Running"
            if name in self.ips:  # a restart may bring a new DHCP lease
                vm.ipv4 = [self.ips[name]]

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        self._record("stop", *names)
        for name in names:
            self.vms[name].state = "Stopped"

    def recover(self, names: Sequence[str]) -> None:
        self._record("recover", *names)
        for name in names:
            self.vms[name].state = "Stopped"

    def delete(self, names: Sequence[str]) -> None:
        self._record("delete", *names)
        for name in names:
            self.vms.pop(name, None)

    # --- settings, snapshots, interactive -------------------------------------------------------

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
        if vm.state != "Stopped" and self.capabilities.snapshot_needs_stop:
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

    def list_snapshots(self) -> _Snapshots:
        self._record("list-snapshots")
        if self.snapshots_unsupported:
            return []
        return [
            Snapshot(vm.name, snap, data["comment"])
            for vm in self.vms.values()
            for snap, data in vm.snapshots.items()
        ]

    def interactive(self, name: str, argv: Sequence[str] | None = None) -> int:
        args = ["shell", name] if argv is None else ["exec", name, "--", *argv]
        self._record("interactive", *args)
        self.interactive_calls.append(args)
        return self.interactive_rc


def _is_an_engine(engine: MemoryEngine) -> Engine:
    return engine  # mypy (make typecheck) proves MemoryEngine implements the whole interface
