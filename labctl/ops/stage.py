"""Which course stage a lab is at (issue 13), and what that stage leaves to the student.

What each stage provides is in the model (`Lab.proxied_vms`, `Lab.hosts_managed`); this module
decides which stage applies: `--stage` on up/reset, else the stage the lab was last brought up
at (recorded in its state dir, so a later `up`, `status` or `check` never undoes a student's
work by falling back to lab.yaml), else lab.yaml's `stage:`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from labctl.errors import ConfigError
from labctl.model import Lab
from labctl.ops.context import LabContext

STAGE_NOTE: Final = "stage"


def staged(ctx: LabContext, override: str | None = None, *, announce: bool = True) -> LabContext:
    """`ctx` with its lab at the stage that applies; an `override` is recorded as the lab's."""
    stage = override or ctx.lab_state.note(STAGE_NOTE) or ctx.lab.stage
    try:
        lab_file = ctx.lab_file.with_stage(stage)
    except ConfigError:
        if override:
            raise
        lab_file = ctx.lab_file  # a recorded value labctl did not write: lab.yaml decides
    if override:
        ctx.lab_state.set_note(STAGE_NOTE, lab_file.lab.stage)
    elif announce and lab_file.lab.stage != ctx.lab.stage:
        ctx.emit(
            "stage",
            "info",
            f"lab {ctx.lab.name} stays at stage {lab_file.lab.stage} (where it was brought up; "
            f"lab.yaml says {ctx.lab.stage}): `--stage {ctx.lab.stage}` on up/reset moves it",
        )
    return ctx if lab_file is ctx.lab_file else replace(ctx, lab_file=lab_file)


def record_stage(ctx: LabContext) -> None:
    """Remember the stage `up` deployed (the first up of a lab records lab.yaml's)."""
    if ctx.lab_state.note(STAGE_NOTE) != ctx.lab.stage:
        ctx.lab_state.set_note(STAGE_NOTE, ctx.lab.stage)


def left_to_student(lab: Lab) -> list[str]:
    """What the student still has to build at the lab's stage (empty for the finished lab)."""
    lb, apps = lab.lb_vm.name, [vm.name for vm in lab.app_vms]
    if lab.stage == "app":
        return [
            f"write the nginx reverse proxy on {lb} for {lab.domain} (nginx runs its default site)",
            f"balance the load across {', '.join(apps)}",
            "stop one app, then all of them, and explain what the load balancer does",
        ]
    if lab.stage == "proxy":
        rest = [vm for vm in apps if vm not in {v.name for v in lab.proxied_vms}]
        return [
            f"turn the proxy on {lb} into a load balancer across {', '.join(apps)}"
            + (f" (it proxies to {apps[0]} only; add {', '.join(rest)})" if rest else ""),
            "stop one app, then all of them, and explain what the load balancer does",
        ]
    return []
