"""`labctl plan`: what `up` would do, in order, with the exact multipass argv lists. Launches nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.errors import MultipassError
from labctl.host.hostsfile import entry_line
from labctl.multipass.adapter import OPERATION_TIMEOUT
from labctl.ops.context import LabContext, classify_instances
from labctl.ops.launch_order import lpt_order
from labctl.render.userdata import LB_APPLY_COMMAND


@dataclass(frozen=True)
class PlannedVm:
    vm: str
    instance: str
    roles: list[str]
    cpus: int
    memory: str
    disk: str
    action: str  # launch | start | keep | refuse (foreign) | unknown


@dataclass(frozen=True)
class PlanStep:
    order: int
    what: str
    argv: list[str] | None = None
    parallel: bool = False  # runs concurrently with the other steps of the same order
    max_seconds: float | None = None  # the longest this step may take before up gives up


@dataclass(frozen=True)
class PlanResult:
    lab: str
    vms: list[PlannedVm]
    steps: list[PlanStep]
    max_parallel: int
    notes: list[str] = field(default_factory=list)


def plan(ctx: LabContext, *, max_parallel: int = 4, manage_hosts: bool | None = None) -> PlanResult:
    lab, mp = ctx.lab, ctx.multipass
    notes: list[str] = []
    actions: dict[str, str] = {}
    try:
        ownership = classify_instances(ctx, mp.list())
        for vm_name, inst in ownership.ours.items():
            actions[vm_name] = (
                "start" if inst.state in ("Stopped", "Suspended", "Deleted") else "keep"
            )
        for vm_name in ownership.foreign:
            actions[vm_name] = "refuse"
            notes.append(f"{lab.name}-{vm_name} exists and is not this lab's: up would refuse")
    except MultipassError as exc:
        notes.append(f"could not ask multipass what exists ({exc.message}); assuming nothing does")
    vms = [
        PlannedVm(
            vm.name,
            ctx.instance(vm),
            list(vm.roles),
            lab.cpus_of(vm),
            lab.memory_of(vm),
            lab.disk_of(vm),
            actions.get(vm.name, "launch"),
        )
        for vm in lab.vms
    ]
    steps = [
        PlanStep(
            1, "check the daemon", [mp.executable, "version", "--format", "json"], parallel=True
        ),
        PlanStep(1, "list instances", [mp.executable, "list", "--format", "json"], parallel=True),
    ]
    for vm in lab.vms:
        planned = next(p for p in vms if p.vm == vm.name)
        if planned.action == "launch":
            argv = mp.launch_argv(
                name=planned.instance,
                image=lab.image,
                cpus=planned.cpus,
                memory=planned.memory,
                disk=planned.disk,
                timeout=lab.waits.launch,
            )
            steps.append(
                PlanStep(
                    2,
                    f"launch {planned.instance} (user-data on stdin: labctl render {vm.name}); "
                    "multipass waits for cloud-init to finish (waits.launch)",
                    argv,
                    parallel=True,
                    max_seconds=lab.waits.launch,
                )
            )
        elif planned.action == "start":
            steps.append(
                PlanStep(
                    2,
                    f"start {planned.instance}",
                    [mp.executable, "start", planned.instance],
                    parallel=True,
                    max_seconds=lab.waits.launch,
                )
            )
    for vm in lab.vms:
        steps.append(
            PlanStep(
                3,
                f"wait for cloud-init on {ctx.instance(vm)} (waits.cloud_init)",
                mp.exec_argv(ctx.instance(vm), ["cloud-init", "status", "--wait"]),
                parallel=True,
                max_seconds=lab.waits.cloud_init,
            )
        )
    steps.append(
        PlanStep(
            4,
            "read the VMs' IPv4 addresses (ipv4[0]), as soon as every VM runs for good, beside "
            "the last cloud-init checks",
            [mp.executable, "list", "--format", "json"],
        )
    )
    steps.append(
        PlanStep(
            5,
            "point nginx at the app VMs (nginx -t, then reload; site on stdin)",
            mp.exec_argv(ctx.instance(lab.lb_vm), LB_APPLY_COMMAND),
        )
    )
    hosts = manage_hosts if manage_hosts is not None else lab.manage_hosts
    line = entry_line("<lb-ip>", lab.server_names)
    steps.append(
        PlanStep(
            6,
            f'{"write" if hosts else "print"} the hosts entry "{line.expandtabs(1)}"'
            + (f" in {ctx.hosts_file}" if hosts else ""),
        )
    )
    steps.append(
        PlanStep(
            7,
            f"wait until {lab.url} answers 200 through all "
            f"{len(lab.app_vms)} backend(s) (waits.serve)",
            max_seconds=lab.waits.serve,
        )
    )
    steps += _baseline_steps(ctx, notes, vms, max_parallel)
    return PlanResult(lab.name, vms, steps, max_parallel, notes)


def _baseline_steps(
    ctx: LabContext, notes: list[str], vms: list[PlannedVm], max_parallel: int
) -> list[PlanStep]:
    """The baseline snapshot cycle `up` runs for the VMs that lack one (ops/snapshot.py
    take_baseline): stop them, snapshot each, start them, wait until the domain serves. VMs done
    while others wait for a launch slot take theirs earlier (ops/bringup.py EarlyBaseline)."""
    lab, mp = ctx.lab, ctx.multipass
    if not lab.snapshots.baseline:
        notes.append("no baseline snapshot: snapshots.baseline is false in lab.yaml")
        return []
    have = ctx.lab_state.snapshots().get("baseline", {}).get("vms", {})
    lacking = [vm for vm in lab.vms if vm.name not in have]
    if not lacking:
        notes.append("every VM has its baseline snapshot already: up takes none")
        return []
    slotted = [
        vm for vm in lpt_order(lab, lacking) if _planned(vms, vm.name) in ("launch", "start")
    ]
    early = slotted[: max(0, len(slotted) - max_parallel)]
    if early:
        notes.append(
            f"{len(slotted)} VMs take launch slots, at most {max_parallel} at once: the ones done "
            "while others still wait for a slot (likely "
            + ", ".join(vm.name for vm in early)
            + ") stop, take their baseline snapshot and start again right away, before the LB "
            "points at them; the cycle below is for the rest"
        )
    names = [ctx.instance(vm) for vm in lacking if vm not in early]
    steps = [
        PlanStep(
            8,
            "baseline snapshot (snapshots.baseline; skipped where the driver has no snapshots): "
            f"stop {'every VM' if len(names) == len(lab.vms) else 'the VMs that lack it'}",
            [mp.executable, "stop", *names],
            max_seconds=OPERATION_TIMEOUT,
        )
    ]
    for order, name in enumerate(names, start=9):  # one after the other, not concurrent
        steps.append(
            PlanStep(
                order,
                f"snapshot {name} as baseline (`labctl reset` restores it)",
                [
                    mp.executable,
                    "snapshot",
                    "--name",
                    "baseline",
                    "--comment",
                    f"labctl lab {lab.name}",
                    name,
                ],
                max_seconds=OPERATION_TIMEOUT,
            )
        )
    steps.append(
        PlanStep(
            9 + len(names),
            "start every VM again" if len(names) == len(lab.vms) else "start them again",
            [mp.executable, "start", "--timeout", f"{lab.waits.launch:.0f}", *names],
            max_seconds=lab.waits.launch,
        )
    )
    steps.append(
        PlanStep(
            10 + len(names),
            f"re-point nginx and wait until {lab.url} serves again (waits.serve)",
            max_seconds=lab.waits.serve,
        )
    )
    return steps


def _planned(vms: list[PlannedVm], name: str) -> str:
    return next(p.action for p in vms if p.vm == name)
