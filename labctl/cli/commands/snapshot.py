"""`labctl snapshot save|restore|delete|list`: whole-lab snapshots (a class: each student's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.table import Table

from labctl.cli.app import JsonOption, LabFileOption, StudentOption, command_app
from labctl.cli.labs import LabCommand, Shown, run_each_lab
from labctl.cli.printers.wiring import print_failures, print_if_serving
from labctl.cli.terminal import SafeConsole, line, styled
from labctl.config.load import load_lab
from labctl.ops import snapshot
from labctl.ops.context import LabContext
from labctl.ops.snapshot import SnapshotList, SnapshotOutcome

cli = command_app(
    name="snapshot",
    no_args_is_help=True,
    help="Whole-lab snapshots: snapshot or restore each VM (stopped first where the engine "
    "needs that), then wait until the domain serves again.",
)

SnapshotName = Annotated[str, typer.Argument(help="Snapshot name (letters, digits, hyphens).")]
_VERB: Final = {"save": "taken", "restore": "restored", "delete": "deleted"}


@cli.command("save")
def snapshot_save(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Stop the lab, snapshot every VM as NAME, start it again and wait until it serves.

    Example: labctl snapshot save before-lab3
    """
    run_each_lab(load_lab(file), student, _action("save", lambda ctx: snapshot.save(ctx, name)))


@cli.command("restore")
def snapshot_restore(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Stop the lab, restore every VM to NAME (discarding its current state), start it again and
    wait until the domain serves.

    Example: labctl snapshot restore baseline
    """
    work = _action("restore", lambda ctx: snapshot.restore(ctx, name))
    run_each_lab(load_lab(file), student, work)


@cli.command("delete")
def snapshot_delete(
    name: SnapshotName, file: LabFileOption = Path("lab.yaml"), student: StudentOption = None
) -> None:
    """Delete snapshot NAME from every VM (for good) and from the manifest."""
    work = _action("delete", lambda ctx: snapshot.delete(ctx, name), live=False)
    run_each_lab(load_lab(file), student, work)


@cli.command("list")
def snapshot_list(
    file: LabFileOption = Path("lab.yaml"),
    as_json: JsonOption = False,
    student: StudentOption = None,
) -> None:
    """List the lab's snapshots: when, which VMs have them, whether lab.yaml changed since."""
    listing = LabCommand[SnapshotList](
        "snapshot list", snapshot.list_snapshots, Shown(print_snapshot_list), title="snapshots"
    )
    run_each_lab(load_lab(file), student, listing, as_json=as_json)


def _action(
    action: str, work: Callable[[LabContext], SnapshotOutcome], *, live: bool = True
) -> LabCommand[SnapshotOutcome]:
    return LabCommand(
        f"snapshot {action}", work, Shown(print_snapshot, ok=lambda outcome: outcome.ok), live=live
    )


def print_snapshot(out: SafeConsole, err: SafeConsole, result: SnapshotOutcome) -> None:
    verb = _VERB.get(result.action, result.action)
    if result.done:
        out.print(f"snapshot {result.name!r} {verb}: {', '.join(result.done)}")
    if result.failed or result.not_tried:
        lacking = sorted([*result.failed, *result.not_tried])
        err.print(
            line((f"✗ snapshot {result.name!r} NOT {verb} on:", "red"), f" {', '.join(lacking)}")
        )
        for vm, why in result.failed.items():
            err.print(f"  {vm}: {why}")
        for vm in result.not_tried:
            err.print(f"  {vm}: not tried (the driver has no snapshots)")
        if result.action == "save":
            err.print(
                f"  Those VMs lack the snapshot; `labctl snapshot delete {result.name}` removes "
                "it from the others."
            )
        if result.wiring is not None:
            err.print("  The lab was started again.")
    if result.wiring is not None:
        print_failures(err, result.wiring.failures)
        print_if_serving(out, result.wiring, result.seconds)


def print_snapshot_list(out: SafeConsole, err: SafeConsole, listing: SnapshotList) -> None:
    if not listing.entries and not listing.unrecorded:
        out.print(f"lab {listing.lab} has no snapshots (take one: labctl snapshot save NAME)")
    if listing.entries:
        table = Table(title=f"lab {listing.lab}: snapshots", title_justify="left")
        for column in ("name", "taken (UTC)", "VMs", "missing", "lab.yaml"):
            table.add_column(column)
        for entry in listing.entries:
            table.add_row(
                entry.name,
                entry.created,
                ", ".join(entry.present) or "-",
                styled(", ".join(entry.missing), "red") if entry.missing else "-",
                styled("changed since", "yellow") if entry.config_changed else "same",
            )
        out.print(table)
    for entry in listing.entries:
        if entry.config_changed:
            out.print(
                line(
                    ("warning:", "yellow"),
                    f" lab.yaml changed since {entry.name!r} was taken; restoring it brings back "
                    "the VMs as they were then (re-run `labctl up` after restoring to apply the "
                    "new lab.yaml).",
                )
            )
    if listing.unrecorded:
        out.print(f"also in the engine (not taken by labctl): {', '.join(listing.unrecorded)}")
    if listing.note:
        out.print(f"note: {listing.note}")
