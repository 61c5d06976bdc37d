"""`labctl hosts`: the one hosts-file line that points a lab's domain (and aliases) at its load
balancer, for a student to add on their own laptop (labctl writes this machine's entry itself)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.engine.base import State
from labctl.errors import LabctlError
from labctl.ops.context import LabContext


@dataclass(frozen=True)
class HostsLine:
    lab: str
    student: str | None
    ip: str
    names: list[str]

    @property
    def line(self) -> str:
        # spaces, not the tab labctl writes: a terminal turns a tab into spaces anyway, and a
        # hosts file takes either
        return f"{self.ip} {' '.join(self.names)}"


def hosts_line(ctx: LabContext) -> HostsLine:
    """The LB's address and the lab's server names; an error that says why when the LB has none."""
    lab = ctx.lab
    name = ctx.instance(lab.lb_vm)
    found = next((inst for inst in ctx.engine.list() if inst.name == name), None)
    if found is None:
        raise LabctlError(
            f"{name} (the load balancer) does not exist", hint="Run `labctl up` first."
        )
    if found.unreachable:
        raise LabctlError(f"{name} (the load balancer) is unreachable: {found.unreachable}")
    if found.state is not State.RUNNING or found.ip is None:
        raise LabctlError(
            f"{name} (the load balancer) is {found.shown_state} and has no IPv4 address",
            hint="Run `labctl up` (or `labctl status` to see why).",
        )
    return HostsLine(lab.name, ctx.student, found.ip, lab.server_names)
