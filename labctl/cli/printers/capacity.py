"""A class's capacity per engine host (doctor on a class; up when the class does not fit)."""

from __future__ import annotations

from typing import Any, Final

from rich.table import Table

from labctl.cli import jsonout
from labctl.cli.terminal import SafeConsole, line
from labctl.ops.classroom.up import HostCapacity

_STATUS: Final = {  # word, style
    "ok": ("ok", "green"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "red"),
    "skip": ("skip", "dim"),
}


def print_capacity(out: SafeConsole, rows: list[HostCapacity], *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("host", "students", "cpu", "memory", "disk", "figures"):
        table.add_column(column)
    for row in rows:
        cells = {check.name: check for check in row.checks}
        table.add_row(
            row.host + (f" ({row.remote})" if row.remote else ""),
            str(len(row.students)),
            *(
                line(_STATUS[cells[name].status], f" {cells[name].detail}")
                if name in cells
                else "-"
                for name in ("cpu", "memory", "disk")
            ),
            row.source + (f"; list failed: {row.listing_error}" if row.listing_error else ""),
        )
    out.print(table)


def capacity_document(lab: str, rows: list[HostCapacity]) -> dict[str, Any]:
    hosts = [{**jsonout.data(row), "fits": row.fits} for row in rows]
    return {"lab": lab, "ok": all(row.fits for row in rows), "hosts": hosts}
