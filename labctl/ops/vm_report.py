"""One VM's labctl-vm-status report: from its status agent, else by `multipass exec`.

The agent (cloud-init/status_agent.py, one signed HTTP GET, labctl.host.agent) costs labctl a
thread and a socket; exec costs a multipass client process and an SSH session in the daemon,
which is what made `status` of a class slow (issue 14). exec stays the fallback for VMs without
an agent (launched by an older labctl, agent not started yet, a lost state dir and so its key)
and for an answer that fails its signature.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

from labctl.errors import CommandTimeoutError, MultipassError
from labctl.host.agent import AgentError, AgentTarget, lab_key, vm_key
from labctl.ops.context import LabContext
from labctl.render.agent import status_port
from labctl.render.userdata import VM_STATUS_COMMAND

Via = Literal["agent", "exec"]
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmReport:
    """The report (None if there is none) and how it was read; `problem` says why not."""

    report: dict[str, Any] | None
    via: Via
    problem: str = ""
    agent_error: str = ""  # why the agent was not used, when it was tried


def agent_key_of(ctx: LabContext) -> bytes | None:
    """The lab's status key if this lab has one and status may use agents (else exec only)."""
    if ctx.status_agent is None:
        return None
    return lab_key(ctx.lab_state.directory, create=False)


def read_vm_report(
    ctx: LabContext, instance: str, ip: str | None, key: bytes | None, vm_name: str = ""
) -> VmReport:
    """The report of a Running VM; never raises for a VM's fault."""
    if key is not None and ip is not None and ctx.status_agent is not None:
        target = AgentTarget(ip, status_port(ctx.lab), vm_key(key, instance))
        try:
            return VmReport(ctx.status_agent(target, ctx.lab.waits.check), "agent")
        except AgentError as exc:
            if exc.hung:  # it took the request: the VM is frozen or overloaded, exec would hang too
                return VmReport(None, "agent", _hung(ctx, instance), exc.message)
            _LOG.debug("%s: %s; reading it by exec", instance, exc.message)
            return replace(_by_exec(ctx, instance, vm_name or instance), agent_error=exc.message)
    return _by_exec(ctx, instance, vm_name or instance)


def _hung(ctx: LabContext, instance: str) -> str:
    return (
        f"health check hung: no answer within {ctx.lab.waits.check:.0f} s (waits.check); the "
        f"VM may be frozen or overloaded (try `multipass restart {instance}`)"
    )


def _by_exec(ctx: LabContext, instance: str, vm_name: str) -> VmReport:
    helper = VM_STATUS_COMMAND[-1]
    try:
        result = ctx.multipass.exec(instance, VM_STATUS_COMMAND, timeout=ctx.lab.waits.check)
        report = json.loads(result.stdout) if result.returncode == 0 else None
    except CommandTimeoutError:
        return VmReport(None, "exec", _hung(ctx, instance))
    except json.JSONDecodeError:  # say what was expected, not what the parser choked on
        return VmReport(
            None,
            "exec",
            f"health check: {helper} answered something that is not its JSON report (was this "
            "VM provisioned by labctl?)",
        )
    except MultipassError as exc:
        return VmReport(None, "exec", f"health check failed: {exc.message}")
    if result.returncode == 127:  # bash: command not found
        return VmReport(
            None,
            "exec",
            f"no {helper} on the VM: it was not provisioned by labctl (rebuild it: "
            f"`labctl reset {vm_name} --rebuild`)",
        )
    if not isinstance(report, dict):
        tail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return VmReport(None, "exec", f"health check failed: {tail}")
    return VmReport(report, "exec")
