"""`labctl status` for a class: a matrix of students x (VM state, cloud-init, pm2, nginx, domain).

Fast for a whole class: every student's `status` runs in parallel (and each checks its VMs in
parallel), and the students on one engine host share ONE listing call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from labctl.ops.classroom.contexts import ClassContext, HostRef, place, select_students
from labctl.ops.classroom.fanout import StudentRun, fan_out
from labctl.ops.context import LabContext
from labctl.ops.status import StatusReport, VmStatus, status


@dataclass(frozen=True)
class StudentCell:
    """One student's row, flattened for the matrix."""

    vm_states: dict[str, str]  # vm -> the engine's word for its state (or Missing)
    vm_ok: dict[str, bool]
    cloud_init: str  # "3/3 done" or the first problem
    pm2: str
    nginx: str
    domain: str


@dataclass(frozen=True)
class ClassStatus:
    lab: str
    vms: list[str]
    hosts: dict[str, str | None]  # host name -> remote (None: the local server)
    students: list[StudentRun[StatusReport]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def healthy(self) -> bool:
        return bool(self.students) and all(
            run.result is not None and run.result.healthy for run in self.students
        )

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for run in self.students:
            report = run.result
            row: dict[str, Any] = {
                "student": run.student,
                "host": run.host,
                "remote": run.remote,
                "lab": run.lab,
                "domain": run.domain,
                "healthy": report is not None and report.healthy,
                "error": run.error or None,
                "problems": report.problems if report else [run.error],
                "matrix": None,
                "status": report.to_dict() if report else None,
            }
            if report is not None:
                cell = cell_of(report)
                row["matrix"] = {
                    "vms": cell.vm_states,
                    "cloud_init": cell.cloud_init,
                    "pm2": cell.pm2,
                    "nginx": cell.nginx,
                    "domain": cell.domain,
                }
            rows.append(row)
        healthy = [r["student"] for r in rows if r["healthy"]]
        return {
            "lab": self.lab,
            "class": True,
            "healthy": self.healthy,
            "vms": self.vms,
            "hosts": self.hosts,
            "summary": {
                "students": len(rows),
                "healthy": len(healthy),
                "unhealthy": [r["student"] for r in rows if not r["healthy"]],
            },
            "students": rows,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def cell_of(report: StatusReport) -> StudentCell:
    vms = report.vms
    return StudentCell(
        {vm.name: vm.state for vm in vms},
        {vm.name: vm.healthy for vm in vms},
        _count(vms, lambda v: v.cloud_init, lambda v: v.cloud_init in ("done", "degraded done")),
        _pm2(vms),
        _nginx(vms),
        _domain(report),
    )


def _count(vms: list[VmStatus], value: Any, good: Any) -> str:
    running = [vm for vm in vms if vm.running]
    if not running:
        return "-"
    bad = [f"{vm.name}: {value(vm) or 'unknown'}" for vm in running if not good(vm)]
    return f"{len(running) - len(bad)}/{len(vms)} done" + (f" ({'; '.join(bad)})" if bad else "")


def _pm2(vms: list[VmStatus]) -> str:
    apps = [vm for vm in vms if "app" in vm.roles]
    online = [
        vm
        for vm in apps
        if vm.pm2 is not None and vm.pm2 and all(p.status == "online" for p in vm.pm2)
    ]
    return f"{len(online)}/{len(apps)} online"


def _nginx(vms: list[VmStatus]) -> str:
    lb = next((vm for vm in vms if "lb" in vm.roles), None)
    if lb is None or lb.nginx_active is None:
        return "-"
    if not lb.nginx_active:
        return "inactive"
    return "active" if lb.nginx_config_ok else "config BAD"


def _domain(report: StatusReport) -> str:
    domain = report.domain
    if domain.serving and not domain.backends_missing:
        return "serving"
    if domain.serving:
        return f"serving, missing {', '.join(domain.backends_missing)}"
    return "NOT serving"


def class_status(cctx: ClassContext, students: list[str] | None = None) -> ClassStatus:
    started = time.monotonic()
    chosen = select_students(cctx.lab, students)
    placement: dict[str, HostRef] = place(cctx, chosen, persist=False)

    def check(ctx: LabContext) -> StatusReport:
        return status(ctx)

    runs = fan_out(cctx, chosen, check, placement=placement, shared_listing=True)
    return ClassStatus(
        cctx.lab.name,
        [vm.name for vm in cctx.lab.vms],
        {h.name: h.remote for h in cctx.hosts()},
        runs,
        time.monotonic() - started,
    )
