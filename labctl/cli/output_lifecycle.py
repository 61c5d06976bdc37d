"""How snapshot, reset and doctor results look (split from output.py to keep modules small)."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labctl.cli.output import print_failures
from labctl.ops.doctor import DoctorReport
from labctl.ops.reset import ResetResult
from labctl.ops.snapshot import SnapshotList, SnapshotOutcome
from labctl.ops.wire import Wiring

_STATUS = {
    "ok": "[green]ok  [/green]",
    "warn": "[yellow]warn[/yellow]",
    "fail": "[red]FAIL[/red]",
    "skip": "[dim]skip[/dim]",
}
_VERB = {"save": "taken", "restore": "restored", "delete": "deleted"}


def _serving(out: Console, domain: str, wiring: Wiring | None, seconds: float) -> None:
    if wiring is not None and wiring.ok and wiring.check is not None:
        seen = sorted(wiring.backend_names.get(b, b) for b in wiring.check.backends_seen)
        out.print(
            f"[green]{escape(wiring.url or f'http://{domain}/')} is serving[/green] via "
            f"{escape(wiring.lb_ip or '?')} through {', '.join(seen)} ({seconds:.0f}s)"
        )


def print_snapshot(out: Console, err: Console, result: SnapshotOutcome, domain: str) -> None:
    verb = _VERB.get(result.action, result.action)
    if result.done:
        out.print(f"snapshot {escape(result.name)!r} {verb}: {', '.join(result.done)}")
    if result.failed or result.not_tried:
        lacking = sorted([*result.failed, *result.not_tried])
        err.print(
            f"[red]✗ snapshot {escape(result.name)!r} NOT {verb} on:[/red] {', '.join(lacking)}"
        )
        for vm, why in result.failed.items():
            err.print(f"  {vm}: {why}", markup=False)
        for vm in result.not_tried:
            err.print(f"  {vm}: not tried (the driver has no snapshots)", markup=False)
        if result.action == "save":
            err.print(
                f"  Those VMs lack the snapshot; `labctl snapshot delete {result.name}` removes "
                "it from the others.",
                markup=False,
            )
        if result.wiring is not None:
            err.print("  The lab was started again.", markup=False)
    if result.wiring is not None:
        print_failures(err, result.wiring.failures)
        _serving(out, domain, result.wiring, result.seconds)


def print_snapshot_list(out: Console, listing: SnapshotList) -> None:
    if not listing.entries and not listing.unrecorded:
        out.print(f"lab {listing.lab} has no snapshots (take one: labctl snapshot save NAME)")
    if listing.entries:
        table = Table(title=f"lab {listing.lab}: snapshots", title_justify="left")
        for column in ("name", "taken (UTC)", "VMs", "missing", "lab.yaml"):
            table.add_column(column)
        for entry in listing.entries:
            table.add_row(
                escape(entry.name),
                entry.created,
                ", ".join(entry.present) or "-",
                "[red]" + ", ".join(entry.missing) + "[/red]" if entry.missing else "-",
                "[yellow]changed since[/yellow]" if entry.config_changed else "same",
            )
        out.print(table)
    for entry in listing.entries:
        if entry.config_changed:
            out.print(
                f"[yellow]warning:[/yellow] lab.yaml changed since {escape(entry.name)!r} was "
                "taken; restoring it brings back the VMs as they were then (re-run `labctl up` "
                "after restoring to apply the new lab.yaml)."
            )
    if listing.unrecorded:
        out.print(f"also in Multipass (not taken by labctl): {', '.join(listing.unrecorded)}")
    if listing.note:
        out.print(f"note: {escape(listing.note)}")


def snapshot_list_json(listing: SnapshotList) -> str:
    return json.dumps(asdict(listing), indent=2)


def print_reset(out: Console, err: Console, result: ResetResult) -> None:
    for vm in result.vms:
        why = f" ({vm.why})" if vm.why else ""
        out.print(f"{escape(vm.vm)}: {vm.how}{escape(why)}")
    if result.baseline == "retaken":
        out.print("baseline snapshot taken again for the rebuilt VM(s)")
    print_failures(err, result.failures)
    _serving(out, result.domain, result.wiring, result.seconds)


def print_doctor(out: Console, report: DoctorReport) -> None:
    for check in report.checks:
        out.print(f"{_STATUS[check.status]} {check.name:<11} {escape(check.detail)}")
        if check.hint and check.status in ("warn", "fail"):
            out.print(f"     {'':<11} {escape(check.hint)}")
    failed = [c.name for c in report.checks if c.status == "fail"]
    out.print(
        f"[red]{len(failed)} check(s) failed:[/red] {', '.join(failed)}"
        if failed
        else f"[green]lab {escape(report.lab)} can run here[/green]"
    )
