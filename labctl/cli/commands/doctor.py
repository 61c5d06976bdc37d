"""`labctl doctor`: can this machine run the lab (a class: each engine host's capacity against
the students placed on it)?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from labctl.cli import jsonout
from labctl.cli.app import JsonOption, LabFileOption, StudentOption, command_app
from labctl.cli.labs import ClassView, LabCommand, Shown, run_each_lab
from labctl.cli.printers.capacity import capacity_document, print_capacity
from labctl.cli.terminal import SafeConsole, line, styled
from labctl.config.load import load_lab
from labctl.ops.classroom.contexts import ClassContext, place, select_students
from labctl.ops.classroom.up import HostCapacity, class_capacity
from labctl.ops.doctor import Check, DoctorReport, browser_check
from labctl.ops.doctor import doctor as doctor_lab

cli = command_app()


@dataclass(frozen=True)
class ClassDoctor:
    """A class's doctor: each engine host's capacity, and whether `check` has a browser here."""

    hosts: list[HostCapacity]
    browser: Check

    @property
    def ok(self) -> bool:
        return all(row.fits for row in self.hosts)


_STATUS: Final = {  # word, style
    "ok": ("ok  ", "green"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "red"),
    "skip": ("skip", "dim"),
}


@cli.command()
def doctor(
    file: LabFileOption = Path("lab.yaml"),
    student: StudentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check this machine can run the lab: the engine and its daemon, snapshots, CPU, memory,
    disk, the hosts file, the domain. Exit 1 when a check fails. A class lab: the capacity of
    each engine host against the students placed on it.
    """
    lab_file = load_lab(file)
    lab = lab_file.lab.name

    def capacity(cctx: ClassContext, students: list[str] | None) -> ClassDoctor:
        chosen = select_students(cctx.lab, students)
        hosts = class_capacity(cctx, place(cctx, chosen, persist=False))
        return ClassDoctor(hosts, browser_check(cctx.lab))

    def print_class(out: SafeConsole, err: SafeConsole, found: ClassDoctor) -> None:
        print_capacity(out, found.hosts, title=f"class {lab}: capacity per host")
        print_checks(out, [found.browser])

    def class_document(found: ClassDoctor) -> dict[str, Any]:
        # browser: whether `labctl check` can open the students' sites here
        return capacity_document(lab, found.hosts) | {"browser": jsonout.data(found.browser)}

    command = LabCommand[DoctorReport](
        "doctor",
        doctor_lab,
        Shown(
            print_doctor,
            ok=lambda report: report.ok,
            document=lambda report: {"ok": report.ok, **jsonout.data(report)},
        ),
        classroom=ClassView(
            capacity,
            Shown(print_class, ok=lambda found: found.ok, document=class_document),
        ),
    )
    run_each_lab(lab_file, student, command, as_json=as_json)


def print_doctor(out: SafeConsole, err: SafeConsole, report: DoctorReport) -> None:
    print_checks(out, report.checks)
    failed = [c.name for c in report.checks if c.status == "fail"]
    out.print(
        line((f"{len(failed)} check(s) failed:", "red"), f" {', '.join(failed)}")
        if failed
        else styled(f"lab {report.lab} can run here", "green")
    )


def print_checks(out: SafeConsole, checks: list[Check]) -> None:
    """One line per doctor check (and its hint when it warns or fails)."""
    for check in checks:
        out.print(line(_STATUS[check.status], f" {check.name:<11} {check.detail}"))
        if check.hint and check.status in ("warn", "fail"):
            out.print(f"     {'':<11} {check.hint}")
