"""`labctl down`: delete the lab's own instances for good and remove its hosts entry. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.errors import HostsFileError
from labctl.host.hostsfile import update_hosts
from labctl.ops.context import LabContext, classify_instances


@dataclass(frozen=True)
class DownResult:
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    foreign_left: list[str] = field(default_factory=list)
    hosts_removed: bool = False
    hosts_path: str = ""


def down(ctx: LabContext) -> DownResult:
    with ctx.locked("down"):
        return _down(ctx)


def _down(ctx: LabContext) -> DownResult:
    ownership = classify_instances(ctx, ctx.engine.list())
    ours = [inst.name for inst in ownership.ours.values()]
    for vm, inst in ownership.ours.items():
        ctx.emit("delete", "start", f"deleting {inst.name}", vm=vm)
    if ours:
        ctx.engine.delete(ours)  # one call; deleted for good, so the names are free at once
    for vm, inst in ownership.ours.items():
        ctx.emit("delete", "done", f"deleted {inst.name}", vm=vm)
    for vm_name in ownership.missing:
        ctx.emit("delete", "skip", "already gone", vm=vm_name)
    for vm, inst in ownership.foreign.items():
        ctx.emit("delete", "skip", f"left alone: {inst.name} is not this lab's", vm=vm)
    gone = [ctx.lab.instance_name(vm) for vm in ctx.lab.vms if vm.name in ownership.missing]
    ctx.lab_state.forget(ours + gone)
    ctx.lab_state.forget_all_snapshots()  # deleted instances take their snapshots with them
    removed = False
    if not ctx.options.no_hosts and ctx.lab.manage_hosts:
        try:
            removed = update_hosts(
                ctx.hosts_file, ctx.lab.name, None, backup=ctx.lab_state.save_hosts_backup
            )
        except HostsFileError as exc:
            # The VMs are already gone: say so, and what is left to do by hand.
            deleted = f"deleted {', '.join(sorted(ours))}" if ours else "no VM needed deleting"
            raise HostsFileError(
                f"{deleted}, but the hosts entry could not be removed: {exc.message}",
                hint=f"Remove the lines between '# BEGIN labctl {ctx.lab.name}' and "
                f"'# END labctl {ctx.lab.name}' in {ctx.hosts_file} yourself, or run "
                "`labctl down` again once the file is writable.",
            ) from None
        if removed:
            ctx.emit("hosts", "done", f"removed {ctx.lab.domain} from {ctx.hosts_file}")
    foreign = sorted(inst.name for inst in ownership.foreign.values())
    return DownResult(sorted(ours), sorted(gone), foreign, removed, str(ctx.hosts_file))
