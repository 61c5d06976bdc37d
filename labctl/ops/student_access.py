"""`labctl access --student NAME`: let a student's own machine into their lab, and nothing else.

On LXD with a project per student (`{student}` in engine.project), the student gets a join token
restricted to their project, and the one command that adds the server as a remote with it and
opens a shell in their lab's first app instance. `revoke` removes what was granted. The trust
entry is named after the student's lab (`labctl-<lab>-<student>`) so it is found again.

The token is a secret: it travels only in the result, which the CLI prints on stdout for the
instructor who asked; no event, log line or error carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.engine.base import StudentAccess
from labctl.errors import ConfigError, LabctlError
from labctl.model import Lab
from labctl.ops.context import LabContext

TRUST_PREFIX = "labctl-"
DEFAULT_PORT = 8443


class AccessRefusedError(LabctlError):
    """The server cannot hand out access as it is set up; the message says what to change."""


@dataclass(frozen=True)
class AccessResult:
    student: str
    project: str
    remote: str  # the remote's name on the student's machine
    instance: str
    command: str = field(repr=False)  # carries the token: a secret
    trust_name: str = ""


@dataclass(frozen=True)
class RevokeResult:
    student: str
    project: str
    trust_name: str
    removed: int


def check_lab(lab: Lab) -> None:
    """Refuse a lab that gives students no project of their own (before any engine call)."""
    engine = lab.engine
    if engine is None or engine.name != "lxd":
        raise ConfigError(
            [
                "labctl access needs engine: lxd (students reach their own instances through an "
                "LXD project of their own); this lab runs on "
                + (engine.name if engine is not None else "the engine this machine has")
            ]
        )
    if not lab.is_class or not engine.per_student_project:
        raise ConfigError(
            [
                "labctl access needs a class whose students each have an LXD project: add a "
                'class: section and set engine.project to a name with {student} (like "'
                + lab.name
                + '-{student}")'
            ]
        )


def trust_name(ctx: LabContext) -> str:
    return f"{TRUST_PREFIX}{ctx.lab.name}"


def _engine(ctx: LabContext) -> StudentAccess:
    engine = ctx.engine
    if not isinstance(engine, StudentAccess):
        raise ConfigError([f"labctl access: {engine.capabilities.display_name} cannot do it"])
    return engine


def grant(ctx: LabContext) -> AccessResult:
    """A new join token for the student's project and the command the student runs."""
    engine = _engine(ctx)
    project = ctx.lab.engine.project_for(ctx.student) if ctx.lab.engine else ""
    if not engine.network_addresses():
        raise AccessRefusedError(
            "the LXD server listens on its local socket only, so a student's machine cannot reach "
            "it; labctl changes no server settings",
            hint="Let it listen on the classroom network (its address there), then run labctl "
            f"access again: lxc config set core.https_address <server address>:{DEFAULT_PORT}",
        )
    if ctx.engine.prepare_argvs():
        raise AccessRefusedError(
            f"project {project} is not set up yet",
            hint=f"`labctl up --student {ctx.student}` creates it (and the lab), then run labctl "
            "access again.",
        )
    granted = engine.grant_access(trust_name(ctx))
    remote = ctx.lab.name
    instance = ctx.instance(ctx.lab.app_vms[0])
    return AccessResult(
        student=ctx.student or "",
        project=granted.project,
        remote=remote,
        instance=instance,
        command=engine.student_command(remote, granted.token, instance),
        trust_name=granted.trust_name,
    )


def revoke(ctx: LabContext) -> RevokeResult:
    """Remove the student's trusted clients and unused tokens."""
    engine = _engine(ctx)
    project = ctx.lab.engine.project_for(ctx.student) if ctx.lab.engine else ""
    name = trust_name(ctx)
    return RevokeResult(ctx.student or "", project, name, engine.revoke_access(name))
