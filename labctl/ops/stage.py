"""A lab's course stage: recording the stage `up` deployed, and what that stage leaves to the
student.

What each stage provides is in the model (`Lab.proxied_vms`, `Lab.hosts_managed`); which stage
applies is decided once, when the context is built (ops/context.py): `--stage` on up/reset, else
the stage the lab was last brought up at (recorded here, so a later `up`, `status` or `check`
never undoes a student's work by falling back to lab.yaml), else lab.yaml's `stage:`.
"""

from __future__ import annotations

from labctl.model import Lab
from labctl.ops.context import STAGE_NOTE, LabContext


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
