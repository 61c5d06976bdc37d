"""`labctl validate`: check lab.yaml and report every problem with its line (exit 2 if any)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from labctl.cli.app import JsonOption, LabFileOption, command_app, stdout, warn
from labctl.cli.jsonout import print_json
from labctl.config.load import load_lab
from labctl.errors import ConfigError
from labctl.model import Lab
from labctl.ops.validation import require_valid

cli = command_app()


@cli.command()
def validate(file: LabFileOption = Path("lab.yaml"), as_json: JsonOption = False) -> None:
    """Check lab.yaml and report every problem with its line. Exit 2 if there is any.

    Example: labctl validate -f examples/hello/lab.yaml
    """
    if as_json:
        try:
            lab_file = load_lab(file)
            warnings = require_valid(lab_file)
        except ConfigError as exc:
            print_json(_document(file, None, exc.problems))
            raise typer.Exit(exc.exit_code) from None
        warn(warnings)
        print_json(_document(file, lab_file.lab, []))
        return
    lab_file = load_lab(file)
    warn(require_valid(lab_file))
    lab = lab_file.lab
    if lab.class_ is not None:
        hosts = ", ".join(h.name for h in lab.hosts) or "the local daemon"
        stdout.print(
            f"{file}: ok — class {lab.name!r}, {len(lab.students)} students "
            f"(domains {lab.class_.domain}), {len(lab.vms)} VMs each, on {hosts}",
        )
        return
    stdout.print(
        f"{file}: ok — lab {lab.name!r}, domain {lab.domain}, {len(lab.vms)} VMs "
        f"({len(lab.app_vms)} app, LB on {lab.lb_vm.name})",
    )


def _document(file: Path, lab: Lab | None, problems: list[str]) -> dict[str, Any]:
    """ok, and what the file describes; or every problem (each `file:line:col: field: why`)."""
    doc: dict[str, Any] = {"file": str(file), "ok": lab is not None, "problems": problems}
    if lab is not None:
        doc["lab"] = lab.name
        doc["vms"] = [vm.name for vm in lab.vms]
        if lab.class_ is not None:
            doc.update(kind="class", students=list(lab.students), domain=lab.class_.domain)
        else:
            doc.update(kind="lab", domain=lab.domain, lb=lab.lb_vm.name)
    return doc
