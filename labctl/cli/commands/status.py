"""`labctl status`: every VM's state, cloud-init, pm2 and nginx, and whether the domain serves (a
class: one matrix row per student); `--watch` redraws the same table in place."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from labctl.cli.app import (
    JsonOption,
    LabFileOption,
    StudentOption,
    command_app,
)
from labctl.cli.labs import ClassView, LabCommand, Shown, open_each_lab, run_each_lab
from labctl.cli.terminal import SafeConsole, styled
from labctl.cli.watch import CountOption, IntervalOption, WatchOption, watch_target
from labctl.config.load import load_lab
from labctl.errors import ConfigError
from labctl.ops.classroom.status import ClassStatus, cell_of, class_status
from labctl.ops.status import StatusReport, VmStatus
from labctl.ops.status import status as lab_status

cli = command_app()


@cli.command()
def status(
    file: LabFileOption = Path("lab.yaml"),
    as_json: JsonOption = False,
    student: StudentOption = None,
    watch: WatchOption = False,
    interval: IntervalOption = 5.0,
    count: CountOption = 0,
) -> None:
    """Show every VM's state, cloud-init, pm2 and nginx, and whether the domain serves. Exit 1
    when anything is unhealthy. A class lab: one matrix row per student."""
    lab_file = load_lab(file)
    if not watch:
        run_each_lab(lab_file, student, STATUS, as_json=as_json)
        return
    if as_json:
        raise ConfigError(["--watch redraws a table in place; --json prints one document"])
    target = open_each_lab(lab_file, student, STATUS, events=False)
    watch_target(target, interval=interval, count=count)


def print_status(out: SafeConsole, err: SafeConsole, report: StatusReport) -> None:
    table = Table(title=f"lab {report.lab}", title_justify="left")
    for column in ("VM", "state", "IPv4", "roles", "cloud-init", "pm2", "nginx", "health"):
        table.add_column(column)
    for vm in report.vms:
        table.add_row(
            vm.name,
            vm.state,
            vm.ip or (", ".join(vm.ipv4) or "-"),
            ",".join(vm.roles),
            vm.cloud_init or "-",
            _pm2_cell(vm),
            _nginx_cell(vm),
            styled("ok", "green") if vm.healthy else styled("; ".join(vm.problems), "red"),
        )
    out.print(table)
    domain = report.domain
    resolves = "resolves to " + (", ".join(domain.resolved) or "nothing")
    serving = "serving" if domain.serving else "NOT serving"
    codes = "/".join(sorted({str(c) if c else "no answer" for c in domain.http_statuses})) or "-"
    out.print(
        f"domain {domain.name}: {resolves}; {serving} (HTTP {codes}); backends seen: "
        f"{', '.join(domain.backends_seen) or 'none'}"
        + (f"; missing: {', '.join(domain.backends_missing)}" if domain.backends_missing else "")
    )
    if report.stage != "lb":
        out.print(f"stage {report.stage}: the rest of the lab is the student's to build")
    if report.healthy:
        out.print(styled("healthy", "green"))
    else:
        out.print(styled("unhealthy:", "red"))
        for problem in report.problems:
            out.print(f"  - {problem}")


def _pm2_cell(vm: VmStatus) -> str:
    if vm.pm2 is None:
        return "-"
    return (
        ", ".join(
            f"{p.name}:{p.status}" + (f" (↻{p.restarts})" if p.restarts else "") for p in vm.pm2
        )
        or "none"
    )


def _nginx_cell(vm: VmStatus) -> str:
    if vm.nginx_active is None:
        return "-"
    return ("active" if vm.nginx_active else "inactive") + (
        ", config ok" if vm.nginx_config_ok else ", config BAD"
    )


def print_class_status(out: SafeConsole, err: SafeConsole, report: ClassStatus) -> None:
    table = Table(title=f"class {report.lab}", title_justify="left")
    for column in (
        "student",
        "host",
        *report.vms,
        "cloud-init",
        "pm2",
        "nginx",
        "domain",
        "health",
    ):
        table.add_column(column)
    for run in report.students:
        if run.result is None:
            table.add_row(
                run.student,
                run.host,
                *["?" for _ in report.vms],
                "-",
                "-",
                "-",
                "-",
                styled(run.error, "red"),
            )
            continue
        cell = cell_of(run.result)
        table.add_row(
            run.student,
            run.host,
            *(
                styled(cell.vm_states.get(vm, "?"), "green" if cell.vm_ok.get(vm) else "red")
                for vm in report.vms
            ),
            cell.cloud_init,
            cell.pm2,
            cell.nginx,
            f"{run.domain}: {cell.domain}",
            styled("ok", "green")
            if run.result.healthy
            else styled(f"{len(run.result.problems)} problem(s)", "red"),
        )
    out.print(table)
    sick = [run for run in report.students if run.result is None or not run.result.healthy]
    healthy = len(report.students) - len(sick)
    out.print(f"{healthy} of {len(report.students)} student lab(s) healthy ({report.seconds:.1f}s)")
    for run in sick:
        problems = run.result.problems if run.result is not None else [run.error]
        for problem in problems:
            out.print(f"  - {run.student}: {problem}")


STATUS = LabCommand[StatusReport](
    "status",
    lambda ctx: lab_status(ctx),
    Shown(print_status, ok=lambda report: report.healthy),
    classroom=ClassView(class_status, Shown(print_class_status, ok=lambda report: report.healthy)),
)
