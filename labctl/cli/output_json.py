"""`--json` for validate and doctor: one JSON document on stdout, whatever the outcome."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from labctl.model import Lab
from labctl.ops.classroom.up import HostCapacity
from labctl.ops.doctor import DoctorReport


def validate_json(file: Path, lab: Lab | None, problems: list[str]) -> str:
    """ok, and what the file describes; or every problem (each `file:line:col: field: why`)."""
    doc: dict[str, object] = {"file": str(file), "ok": lab is not None, "problems": problems}
    if lab is not None:
        doc["lab"] = lab.name
        doc["vms"] = [vm.name for vm in lab.vms]
        if lab.class_ is not None:
            doc.update(kind="class", students=list(lab.students), domain=lab.class_.domain)
        else:
            doc.update(kind="lab", domain=lab.domain, lb=lab.lb_vm.name)
    return json.dumps(doc, indent=2)


def doctor_json(report: DoctorReport) -> str:
    return json.dumps({"ok": report.ok, **asdict(report)}, indent=2)


def capacity_json(lab: str, rows: list[HostCapacity]) -> str:
    hosts = [{**asdict(row), "fits": row.fits} for row in rows]
    return json.dumps({"lab": lab, "ok": all(row.fits for row in rows), "hosts": hosts}, indent=2)
