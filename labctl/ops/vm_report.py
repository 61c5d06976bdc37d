"""One VM's labctl-vm-status report: from its status agent, else by the engine's exec.

The agent (cloud-init/status_agent.py, one signed HTTP GET, labctl.host.agent) costs labctl a
thread and a socket; an exec costs an engine client process (and, on Multipass, an SSH session in
the daemon), which is what made `status` of a class slow. exec stays the fallback for VMs without
an agent (launched by an older labctl, agent not started yet, a lost state dir and so its key)
and for an answer that fails its signature.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Final, Literal

from labctl.errors import CommandTimeoutError, EngineError
from labctl.host.agent import AgentError, AgentTarget, lab_key, vm_key
from labctl.ops.context import LabContext
from labctl.ops.vm_schema import AnswerMisfitError, VmReportDoc, parse_json, report_of
from labctl.render.agent import status_port
from labctl.render.userdata import VM_STATUS_COMMAND

Via = Literal["agent", "exec"]
MIN_EXEC_TIME: Final = 5.0  # seconds exec gets after an agent failure, however late it came
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmReport:
    """The report (None if there is none) and how it was read; `problem` says why not."""

    report: VmReportDoc | None
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
    """The report of a Running VM, agent and exec together within about waits.check; never
    raises for a VM's fault."""
    if key is not None and ip is not None and ctx.status_agent is not None:
        target = AgentTarget(ip, status_port(ctx.lab), vm_key(key, instance))
        started = time.monotonic()
        try:
            answer = ctx.status_agent(target, ctx.lab.waits.check)
        except AgentError as exc:
            if exc.hung:  # it took the request: the VM is frozen or overloaded, exec would hang too
                return VmReport(None, "agent", _hung(ctx, vm_name or instance), exc.message)
            _LOG.debug("%s: %s; reading it by exec", instance, exc.message)
            # An agent that fails late (a bad answer after a long wait) leaves exec the rest.
            least = min(MIN_EXEC_TIME, ctx.lab.waits.check)
            left = max(least, ctx.lab.waits.check - (time.monotonic() - started))
            read = _by_exec(ctx, instance, vm_name or instance, timeout=left)
            return replace(read, agent_error=exc.message)
        return _checked(answer, "agent", vm_name or instance)  # signed by the VM: its own answer
    return _by_exec(ctx, instance, vm_name or instance, timeout=ctx.lab.waits.check)


def _checked(data: object, via: Via, vm_name: str) -> VmReport:
    try:
        return VmReport(report_of(data), via)
    except AnswerMisfitError as exc:
        return VmReport(None, via, f"report from {vm_name} does not fit: {exc.message}")


def _hung(ctx: LabContext, vm_name: str) -> str:
    return (
        f"health check hung: no answer within {ctx.lab.waits.check:.0f} s (waits.check); the "
        f"VM may be frozen or overloaded (restart it, or `labctl reset {vm_name}` puts it back "
        "to its baseline)"
    )


def _by_exec(ctx: LabContext, instance: str, vm_name: str, *, timeout: float) -> VmReport:
    helper = VM_STATUS_COMMAND[-1]
    try:
        result = ctx.engine.exec(instance, VM_STATUS_COMMAND, timeout=timeout)
    except CommandTimeoutError:
        return VmReport(None, "exec", _hung(ctx, vm_name or instance))
    except EngineError as exc:
        return VmReport(None, "exec", f"health check failed: {exc.message}")
    if result.returncode == 127:  # bash: command not found
        return VmReport(
            None,
            "exec",
            f"no {helper} on the VM: it was not provisioned by labctl (rebuild it: "
            f"`labctl reset {vm_name} --rebuild`)",
        )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return VmReport(None, "exec", f"health check failed: {tail}")
    try:
        data = parse_json(result.stdout)
    except AnswerMisfitError:  # say what was expected, not what the parser choked on
        return VmReport(
            None,
            "exec",
            f"health check: {helper} answered something that is not its JSON report (was this "
            "VM provisioned by labctl?)",
        )
    return _checked(data, "exec", vm_name)
