"""SimBackend: instances are ``tests/simvm`` SimVMs (network namespaces, real nginx/pm2).

This is the selection hook plus a thin adapter written against the announced simvm API
(``SimNetwork(name, subnet, state_dir)``, ``SimVM(name, state_dir, network, ip)`` with
``create()``, ``run_cloud_init(text, timeout)``, ``exec(argv, *, stdin, stdout, stderr, user)``,
``stop()``, ``boot()``, ``destroy()``). Exercised end to end by tests/e2e. Snapshots copy the VM's private root (``cp -a``).
"""

from __future__ import annotations

import importlib
import io
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

from .backend import (
    Instance,
    ProvisionOutcome,
    ProvisionTimeoutError,
    finished,
)
from .errors import CommandError
from .faults import Settings


def load_simvm() -> Any:
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    errors = []
    for module in ("tests.simvm", "simvm"):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            errors.append(f"{module}: {exc}")
    raise CommandError(
        "fake multipass: backend 'sim' needs the tests/simvm library, which is not importable ("
        + "; ".join(errors)
        + ")",
        2,
    )


class SimBackend:
    name = "sim"
    lazy = False

    def __init__(self, settings: Settings, daemon_index: int) -> None:
        self.settings = settings
        self.daemon_index = daemon_index
        self.simvm = load_simvm()
        subnet = str(settings.get("sim_subnet") or f"10.213.{daemon_index}.0/24")
        self.subnet = ipaddress.ip_network(subnet, strict=False)
        default_dir = Path(os.environ.get("FAKE_MULTIPASS_HOME", ".")) / "sim"
        self.state_dir = Path(str(settings.get("sim_state_dir") or default_dir))
        # A per-test prefix keeps concurrent runs' bridges and namespaces apart (and exact cleanup)
        prefix = str(settings.get("sim_prefix") or "fmp")
        self.network = self.simvm.SimNetwork(
            f"{prefix}{daemon_index}", str(self.subnet), self.state_dir / "network"
        )

    def _ip(self, inst: Instance) -> str:
        host = int(inst["backend"].get("host", 1))
        return str(self.subnet.network_address + host + 1)  # .1 is the gateway

    def _vm(self, inst: Instance) -> Any:
        return self.simvm.SimVM(
            inst["name"], self.state_dir / inst["name"], self.network, self._ip(inst)
        )

    def start(self, inst: Instance) -> list[str]:
        vm = self._vm(inst)
        if not inst["backend"].get("created"):
            vm.create()
            inst["backend"]["created"] = True
        else:
            vm.boot()
        return [self._ip(inst)]

    def provision(
        self, inst: Instance, user_data: dict[str, Any] | None, timeout: float | None
    ) -> ProvisionOutcome:
        import yaml

        text = "#cloud-config\n" + yaml.safe_dump(user_data or {})
        timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,)
        ci_timeout = getattr(self.simvm, "CloudInitTimeout", None)
        if isinstance(ci_timeout, type) and issubclass(ci_timeout, BaseException):
            timeout_errors += (ci_timeout,)
        try:
            result = self._vm(inst).run_cloud_init(text, timeout)
        except timeout_errors:
            raise ProvisionTimeoutError from None
        # CloudInitResult.exit_code mirrors `cloud-init status`: 0 done, 1 error, 2 degraded
        code = int(getattr(result, "exit_code", 0))
        return finished(code)

    def exec(
        self, inst: Instance, argv: list[str], stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO
    ) -> int:
        return int(self._vm(inst).exec(argv, stdin=stdin, stdout=stdout, stderr=stderr))

    def stop(self, inst: Instance) -> None:
        self._vm(inst).stop()

    def delete(self, inst: Instance) -> None:
        self._vm(inst).destroy()

    def read_file(self, inst: Instance, path: str) -> bytes | None:
        out, err = io.BytesIO(), io.BytesIO()
        rc = self._vm(inst).exec(["cat", path], stdin=None, stdout=out, stderr=err, user="root")
        return out.getvalue() if rc == 0 else None

    def write_file(self, inst: Instance, path: str, data: bytes) -> None:
        sink = io.BytesIO()
        self._vm(inst).exec(
            ["tee", path], stdin=io.BytesIO(data), stdout=sink, stderr=sink, user="root"
        )

    def _vm_dir(self, inst: Instance) -> Path:
        return self.state_dir / inst["name"]

    def _snapshot_dir(self, inst: Instance, snap: dict[str, Any]) -> Path:
        return self._vm_dir(inst) / "snapshots" / str(snap["name"])

    def snapshot(self, inst: Instance, snap: dict[str, Any]) -> None:
        """Copy the VM's whole private root (everything a guest can change); it is stopped."""
        target = self._snapshot_dir(inst, snap)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _copy_tree(self._vm_dir(inst) / "root", target / "root")

    def restore(self, inst: Instance, snap: dict[str, Any]) -> None:
        """Put the snapshot's private root back (multipass restores only stopped instances)."""
        source = self._snapshot_dir(inst, snap) / "root"
        if not source.is_dir():
            raise CommandError(
                f"restore failed: snapshot data for {inst['name']}.{snap['name']} is missing", 2
            )
        root = self._vm_dir(inst) / "root"
        shutil.rmtree(root)
        _copy_tree(source, root)


def _copy_tree(source: Path, target: Path) -> None:
    # cp -a keeps owners, modes, symlinks and special files exactly, as a disk snapshot would
    subprocess.run(["cp", "-a", "--", str(source), str(target)], check=True, timeout=600)
