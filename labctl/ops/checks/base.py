"""What every check works with (`Target`: the lab, its VMs' addresses, one status report, the
evidence the run gathers once) and what it gives back (`Verdict`), plus the results `labctl check`
returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from labctl.host.probes import HttpPage, fetch
from labctl.model import Vm
from labctl.ops.checks.browser_run import BrowserRun
from labctl.ops.checks.evidence import Evidence
from labctl.ops.context import LabContext
from labctl.ops.status import MISSING, StatusReport, VmStatus

# Headers naming the backend: a hint for reasons and for waiting, never proof (anyone can add them).
BACKEND_VM_HEADER: Final = "x-labctl-vm"  # the builtin hello app names its VM (cloud-init/hello)
UPSTREAM_HEADER: Final = "x-lab-backend"  # labctl's own site adds $upstream_addr
MAX_REASON: Final = 160  # one line on a projector
DIRECT_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Screenshot:
    path: str  # the page's path on the domain ("/movies")
    file: str  # where the PNG was saved


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    skipped: bool = False  # could not be checked here (no browser): neither pass nor fail
    screenshots: tuple[Screenshot, ...] = ()


@dataclass(frozen=True)
class Target:
    """The lab under check, gathered once: `report` is `labctl status`'s report; `evidence` is
    filled by the checks as they need it (checkfile.py, stopping.py)."""

    ctx: LabContext
    report: StatusReport
    browser: BrowserRun | None = None  # the browser check's browser and screenshot folder
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def lab_ip(self) -> str | None:
        return self.report.domain.lb_ip or self.vm_status(self.ctx.lab.lb_vm).ip

    def vm_status(self, vm: Vm) -> VmStatus:
        return next(v for v in self.report.vms if v.name == vm.name)

    def ip(self, vm: Vm) -> str | None:
        status = self.vm_status(vm)
        return status.ip if status.running else None

    def unreachable(self, vm: Vm) -> str:
        """Why `vm` cannot be checked ('' when it can)."""
        status = self.vm_status(vm)
        if status.state == MISSING:
            return f"{vm.name}: instance {status.instance} does not exist"
        if not status.running:
            said = next((p for p in status.problems if p.startswith("VM is ")), "")
            return f"{vm.name}: {said or f'VM is {status.state}'}"
        return "" if status.ip else f"{vm.name}: no IPv4 address"

    def backend_of(self, headers: dict[str, str]) -> str | None:
        """The app VM a header names (the hello app's own, or the upstream address labctl's site
        adds): a hint for reasons and waits only, since the student's nginx can add any header."""
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
    skipped: bool = False
    screenshots: tuple[Screenshot, ...] = ()

    @property
    def status(self) -> str:
        return "skip" if self.skipped else "pass" if self.passed else "fail"


@dataclass(frozen=True)
class LabChecks:
    """One lab's results, in the order the checks ran."""

    lab: str
    domain: str
    stage: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed or was skipped (a check that could not run here fails no one)."""
        return all(result.passed or result.skipped for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "domain": self.domain,
            "stage": self.stage,
            "passed": self.passed,
            # status says pass/fail/skip; `skipped` would only repeat it
            "checks": [
                {k: v for k, v in asdict(r).items() if k != "skipped"} | {"status": r.status}
                for r in self.results
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def direct_page(target: Target, vm_name: str, path: str = "/") -> HttpPage:
    """GET `path` from the app on `vm_name` directly (its address, `app.port`), the domain as Host."""
    lab = target.ctx.lab
    vm = lab.vm(vm_name)
    ip = target.ip(vm) if vm else None
    if ip is None:
        return HttpPage(None, error="no address")
    return fetch(ip, lab.app.port, lab.domain, path=path, timeout=DIRECT_TIMEOUT)
