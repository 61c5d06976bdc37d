"""`labctl down`: purge the lab's own instances and remove its hosts entry. Idempotent."""

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


def down(ctx: LabContext, *, manage_hosts: bool | None = None) -> DownResult:
    with ctx.locked("down"):
        return _down(ctx, manage_hosts=manage_hosts)


def _down(ctx: LabContext, *, manage_hosts: bool | None) -> DownResult:
    ownership = classify_instances(ctx, ctx.multipass.list())
    ours = [inst.name for inst in ownership.ours.values()]
    if ours:
        ctx.emit("delete", "start", f"deleting {', '.join(sorted(ours))}")
        ctx.multipass.delete(ours, purge=True)  # one call; `--purge` frees the names at once
        ctx.emit("delete", "done", f"deleted {len(ours)} instance(s)")
    gone = [ctx.lab.instance_name(vm) for vm in ctx.lab.vms if vm.name in ownership.missing]
    ctx.lab_state.forget(ours + gone)
    ctx.lab_state.forget_all_snapshots()  # purged instances take their snapshots with them
    removed = False
    if manage_hosts if manage_hosts is not None else ctx.lab.manage_hosts:
        try:
            removed = update_hosts(
                ctx.hosts_file, ctx.lab.name, None, backup=ctx.lab_state.hosts_backup
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
    if foreign:
        ctx.emit("delete", "skip", f"left alone (not this lab's): {', '.join(foreign)}")
    return DownResult(sorted(ours), sorted(gone), foreign, removed, str(ctx.hosts_file))
