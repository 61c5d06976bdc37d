"""Next steps that are true: what a failed launch leaves behind decides what the user runs next.

An engine may keep the instance after a launch timeout (Multipass always does), in a state that
says which way on works: running or starting means cloud-init is still going and `labctl up`
again keeps the instance and waits for it; broken (Multipass: SSH never came up) means only a
rebuild helps; gone means `labctl up` launches it again.
"""

from __future__ import annotations

from labctl.engine.base import State
from labctl.errors import EngineError, LabctlError, LaunchTimeoutError
from labctl.model import Vm
from labctl.ops.context import LabContext


def after_launch_failure(ctx: LabContext, vm: Vm, exc: EngineError) -> tuple[str | None, bool]:
    """(hint, whether `labctl up` again continues) for a launch that raised `exc`."""
    if not isinstance(exc, LaunchTimeoutError):
        return exc.hint, True
    name = ctx.instance(vm)
    try:
        found = next((i for i in ctx.engine.list() if i.name == name), None)
    except LabctlError:
        return exc.hint, True  # the daemon does not answer: its own hint says what to do
    if found is None:
        return "`labctl up` again launches it.", True
    if found.state is State.BROKEN:
        return (
            f"{name} is in state {found.shown_state} (it never came up): "
            f"`labctl reset {vm.name} --rebuild` deletes and launches it again.",
            False,
        )
    return (
        f"{name} is {found.shown_state} and still provisioning: `labctl up` again keeps it and waits for "
        "cloud-init (up to waits.cloud_init). If launches are this slow every time, raise "
        "waits.launch in lab.yaml.",
        True,
    )
