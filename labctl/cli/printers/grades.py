"""`labctl check`'s grades as data: `Graded` rows (one per lab: its results, or the error that kept
it from being checked), the JSON document, and JUnit XML for CI systems and graders. The check
command prints them as a table (one lab) or a matrix (a class)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from labctl.cli import jsonout
from labctl.cli.terminal import xml_text
from labctl.ops.checks.base import CheckResult, LabChecks
from labctl.ops.classroom.fanout import StudentRun


@dataclass(frozen=True)
class Graded:
    student: str | None  # None: a single lab
    lab: str
    domain: str
    result: LabChecks | None
    error: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.result is not None and not self.error and self.result.passed

    @property
    def label(self) -> str:
        return self.student or self.lab


def from_runs(runs: list[StudentRun[LabChecks]]) -> list[Graded]:
    return [
        Graded(run.student, run.lab, run.domain, run.result, run.error, run.hint) for run in runs
    ]


def from_lab(result: LabChecks) -> list[Graded]:
    return [Graded(None, result.lab, result.domain, result)]


def all_passed(rows: list[Graded]) -> bool:
    return all(row.passed for row in rows)


def checks_document(rows: list[Graded]) -> dict[str, Any]:
    """One document: per lab (student), per check: status, reason, duration, screenshots."""
    labs: list[dict[str, Any]] = []
    for row in rows:
        entry: dict[str, Any] = {"student": row.student, "lab": row.lab, "domain": row.domain}
        if row.result is not None:
            entry |= jsonout.data(row.result)
        entry |= {"passed": row.passed, "error": row.error or None}
        entry.setdefault("checks", [])
        labs.append(entry)
    return {"passed": all_passed(rows), "labs": labs}


def checks_junit(rows: list[Graded]) -> str:
    """JUnit XML: one testsuite per student (lab), one testcase per check, failure = the reason.

    Well-formed whatever the values hold: one student's VM must not make the class's report
    unreadable to the grader (`_xml_safe`)."""
    suites = ET.Element("testsuites", name="labctl check")
    total = failures = errors = skipped = 0
    for row in rows:
        results = row.result.results if row.result is not None and not row.error else []
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=row.label,
            tests=str(len(results) or 1),
            failures=str(sum(not r.passed and not r.skipped for r in results)),
            errors="0" if results else "1",
            skipped=str(sum(r.skipped for r in results)),
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        ET.SubElement(
            ET.SubElement(suite, "properties"), "property", name="domain", value=row.domain
        )
        if not results:
            case = ET.SubElement(suite, "testcase", classname=row.lab, name="lab", time="0")
            ET.SubElement(case, "error", message=row.error or "not checked")
            errors += 1
            total += 1
            continue
        for item in results:
            case = ET.SubElement(
                suite, "testcase", classname=row.lab, name=item.name, time=f"{item.seconds:.3f}"
            )
            if item.screenshots:  # properties first, as pytest writes them
                properties = ET.SubElement(case, "properties")
                for shot in item.screenshots:
                    ET.SubElement(
                        properties, "property", name=f"screenshot {shot.path}", value=shot.file
                    )
            if item.skipped:
                ET.SubElement(case, "skipped", message=item.reason)
                skipped += 1
            elif not item.passed:
                failure = ET.SubElement(case, "failure", message=item.reason, type="check")
                failure.text = item.reason
                failures += 1
            _attach_screenshots(case, item)
            total += 1
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    suites.set("skipped", str(skipped))
    _xml_safe(suites)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _xml_safe(root: ET.Element) -> None:
    """Every attribute and text of the tree made fit for XML 1.0 (`xml_text`), in one pass, so
    no field can be forgotten; ElementTree escapes markup characters but writes a control
    character as it is, which no XML parser accepts."""
    for element in root.iter():
        for key, value in list(element.attrib.items()):
            element.set(key, xml_text(value))
        if element.text:
            element.text = xml_text(element.text)
        if element.tail:
            element.tail = xml_text(element.tail)


def _attach_screenshots(case: ET.Element, item: CheckResult) -> None:
    """Screenshot paths as the [[ATTACHMENT|path]] lines Jenkins and GitLab show as attachments."""
    if not item.screenshots:
        return
    out = ET.SubElement(case, "system-out")
    out.text = "\n".join(f"[[ATTACHMENT|{shot.file}]]" for shot in item.screenshots)
