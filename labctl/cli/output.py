"""How results look on a terminal (rich tables) and as JSON. Only the CLI calls this."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict
from typing import Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labctl.ops.down import DownResult
from labctl.ops.drill import DrillResult, DrillStep
from labctl.ops.failures import StageFailure
from labctl.ops.plan import PlanResult
from labctl.ops.status import StatusReport, VmStatus
from labctl.ops.up import UpResult

_LABCTL_COMMAND: Final = re.compile(r"`labctl ([a-z][^`]*)`")


def for_student(text: str, student: str | None) -> str:
    """Hints name single-lab commands; inside a class they must carry `--student NAME`, or
    following them would act on every student."""
    if not student:
        return text

    def scoped(match: re.Match[str]) -> str:
        command, separator, rest = match.group(1).partition(" -- ")
        scoped_command = f"{command} --student {student}"
        return f"`labctl {scoped_command}{separator}{rest}`"

    return _LABCTL_COMMAND.sub(scoped, text)


def print_failures(
    err: Console, failures: list[StageFailure], *, student: str | None = None
) -> None:
    hints: set[str] = set()
    for failure in failures:
        where = f" [{failure.vm}]" if failure.vm else ""
        err.print(f"[red]✗ {escape(failure.stage)}{escape(where)}:[/red] {escape(failure.message)}")
        if failure.log_tail.strip():
            err.print("  last log lines:", markup=False)
            for line in failure.log_tail.rstrip().splitlines()[-40:]:
                err.print(f"  | {line}", markup=False)
        if failure.hint and failure.hint not in hints:  # e.g. daemon down: once, not per VM
            hints.add(failure.hint)
            err.print(f"  {for_student(failure.hint, student)}", markup=False)


def print_up(out: Console, err: Console, result: UpResult) -> None:
    if result.vms:
        table = Table(title=f"lab {result.lab}", title_justify="left")
        for column in ("VM", "instance", "action", "IPv4", "cloud-init"):
            table.add_column(column)
        for vm in result.vms:
            table.add_row(vm.vm, vm.instance, vm.action, vm.ip or "-", vm.cloud_init or "-")
        out.print(table)
    if result.hosts and not result.hosts.managed:
        out.print(f"Add this line to {escape(result.hosts.path)}:\n  {escape(result.hosts.line)}")
    print_failures(err, result.failures)
    if result.failures:
        # a VM without an IP is not ready, whatever its cloud-init says
        no_ip = {f.vm for f in result.failures if f.stage == "ip"}
        ready = [vm.vm for vm in result.vms if vm.vm not in no_ip]
        # one way on: "up again continues" only when it does (not after a failed cloud-init)
        again = (
            "`labctl up` again continues from here; "
            if all(f.resumable for f in result.failures)
            else "do what the hint above says; "
        )
        err.print(
            f"up stopped: {len(ready)} VM(s) ready ({', '.join(ready) or 'none'}); nothing was "
            f"deleted. {again}`labctl down` removes the lab.",
            markup=False,
        )
    if result.baseline == "taken":
        out.print("baseline snapshot taken: `labctl reset` restores it")
    if result.ok and result.left:  # an early course stage (issue 13)
        apps = ", ".join(vm.vm for vm in result.vms if vm.vm in result.backend_names.values())
        out.print(
            f"[green]stage {result.stage} is ready[/green]"
            + (f": http://{escape(result.domain)}/ proxies to {apps}" if apps else "")
            + f" ({result.seconds:.0f}s). Left to the student:"
        )
        for item in result.left:
            out.print(f"  - {item}", markup=False)
        return
    if result.ok and result.check is not None:
        seen = sorted(result.backend_names.get(b, b) for b in result.check.backends_seen)
        url = result.url or f"http://{result.domain}/"
        out.print(
            f"[green]{escape(url)} is serving[/green] via {escape(result.lb_ip or '?')} "
            f"through {', '.join(seen)} ({result.seconds:.0f}s)"
        )


def print_status(out: Console, report: StatusReport) -> None:
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
            "[green]ok[/green]"
            if vm.healthy
            else "[red]" + escape("; ".join(vm.problems)) + "[/red]",
        )
    out.print(table)
    domain = report.domain
    resolves = "resolves to " + (", ".join(domain.resolved) or "nothing")
    serving = "serving" if domain.serving else "NOT serving"
    codes = "/".join(sorted({str(c) if c else "no answer" for c in domain.http_statuses})) or "-"
    out.print(
        f"domain {escape(domain.name)}: {escape(resolves)}; {serving} (HTTP {escape(codes)}); backends seen: "
        f"{', '.join(domain.backends_seen) or 'none'}"
        + (f"; missing: {', '.join(domain.backends_missing)}" if domain.backends_missing else "")
    )
    if report.stage != "lb":
        out.print(f"stage {report.stage}: the rest of the lab is the student's to build")
    if report.healthy:
        out.print("[green]healthy[/green]")
    else:
        out.print("[red]unhealthy:[/red]")
        for problem in report.problems:
            out.print(f"  - {problem}", markup=False)


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


def print_plan(out: Console, result: PlanResult) -> None:
    table = Table(title=f"lab {result.lab}: VMs", title_justify="left")
    for column in ("VM", "instance", "roles", "cpus", "memory", "disk", "action"):
        table.add_column(column)
    for vm in result.vms:
        table.add_row(
            vm.vm, vm.instance, ",".join(vm.roles), str(vm.cpus), vm.memory, vm.disk, vm.action
        )
    out.print(table)
    out.print(f"Steps (same number = concurrent; at most {result.max_parallel} launches at once):")
    for step in result.steps:
        limit = f" [at most {_duration(step.max_seconds)}]" if step.max_seconds else ""
        out.print(f"  {step.order}. {escape(step.what)}{escape(limit)}")
        if step.argv:
            out.print(f"       {escape(shlex.join(step.argv))}")
    for note in result.notes:
        out.print(f"note: {escape(note)}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min" + (f" {secs} s" if secs else "") if minutes else f"{secs} s"


def plan_json(result: PlanResult) -> str:
    return json.dumps(asdict(result), indent=2)


def print_down(out: Console, result: DownResult) -> None:
    if result.deleted:
        out.print(f"deleted: {', '.join(result.deleted)}")
    if result.already_gone:
        out.print(f"already gone: {', '.join(result.already_gone)}")
    if result.foreign_left:
        out.print(f"left alone (not this lab's): {', '.join(result.foreign_left)}")
    if result.hosts_removed:
        out.print(f"removed the hosts entry from {escape(result.hosts_path)}")
    if not (result.deleted or result.hosts_removed):
        out.print("nothing to do: the lab is already down")


def drill_step_printer(console: Console) -> Callable[[DrillStep], None]:
    def show(step: DrillStep) -> None:
        mark = "[green]✓[/green]" if step.passed else "[red]✗[/red]"
        console.print(f"{mark} {escape(step.name)}: {escape(step.observed)}", soft_wrap=True)

    return show


def print_drill(out: Console, result: DrillResult) -> None:
    table = Table(title=f"drill of lab {result.lab} (mode {result.mode})", title_justify="left")
    for column in ("step", "expectation", "observed", "result"):
        table.add_column(column)
    for step in result.steps:
        table.add_row(
            escape(step.name),
            escape(step.expectation),
            escape(step.observed),
            "[green]pass[/green]" if step.passed else "[red]FAIL[/red]",
        )
    out.print(table)
    failed = [step.name for step in result.steps if not step.passed]
    if failed:
        out.print(f"[red]drill failed[/red] at: {escape(', '.join(failed))}")
    else:
        out.print(
            "[green]drill passed[/green]: the load balancer behaved as expected in every step"
        )


def drill_json(result: DrillResult) -> str:
    data = asdict(result)
    data["passed"] = result.passed
    return json.dumps(data, indent=2)
