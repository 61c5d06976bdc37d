"""What every check works with (`Target`: the lab, its VMs' addresses, one status report) and
what it gives back (`Verdict`), plus the results `labctl check` returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from labctl.model import Vm
from labctl.ops.context import LabContext
from labctl.ops.status import StatusReport, VmStatus

BACKEND_VM_HEADER: Final = "x-labctl-vm"  # the builtin hello app names its VM (cloud-init/hello)
UPSTREAM_HEADER: Final = "x-lab-backend"  # labctl's own site adds $upstream_addr
MAX_REASON: Final = 160  # one line on a projector


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


@dataclass(frozen=True)
class Target:
    """The lab under check, gathered once: `report` is `labctl status`'s report."""

    ctx: LabContext
    report: StatusReport

    @property
    def lab_ip(self) -> str | None:
        return self.report.domain.lb_ip or self.vm_status(self.ctx.lab.lb_vm).ip

    def vm_status(self, vm: Vm) -> VmStatus:
        return next(v for v in self.report.vms if v.name == vm.name)

    def ip(self, vm: Vm) -> str | None:
        status = self.vm_status(vm)
        return status.ip if status.state == "Running" else None

    def unreachable(self, vm: Vm) -> str:
        """Why `vm` cannot be checked ('' when it can)."""
        status = self.vm_status(vm)
        if status.state == "Missing":
            return f"{vm.name}: instance {status.instance} does not exist"
        if status.state != "Running":
            return f"{vm.name}: VM is {status.state}"
        return "" if status.ip else f"{vm.name}: no IPv4 address"

    def backend_of(self, headers: dict[str, str]) -> str | None:
        """The app VM that answered, from the app's own header or the upstream address nginx adds."""
        named = headers.get(BACKEND_VM_HEADER, "").strip()
        if named and self.ctx.lab.vm(named) is not None:
            return named
        upstream = headers.get(UPSTREAM_HEADER, "").replace(" : ", ",").split(",")[-1].strip()
        port = self.ctx.lab.app.port
        for vm in self.ctx.lab.app_vms:
            if upstream and upstream == f"{self.ip(vm)}:{port}":
                return vm.name
        return None


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason: str
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"


@dataclass(frozen=True)
class LabChecks:
    """One lab's results, in the order the checks ran."""

    lab: str
    domain: str
    stage: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "domain": self.domain,
            "stage": self.stage,
            "passed": self.passed,
            "checks": [{**asdict(r), "status": r.status} for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"
