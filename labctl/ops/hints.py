"""Next steps that are true: what a failed launch leaves behind decides what the user runs next.

multipass keeps the instance after every launch timeout (multipass.md §2.1), in a state that says
which way on works (issue 12): Running or Starting means cloud-init is still going and
`labctl up` again keeps the VM and waits for it; Unknown (SSH never came up) means only a rebuild
helps; gone means `labctl up` launches it again.
"""

from __future__ import annotations

from labctl.errors import LabctlError, LaunchTimeoutError, MultipassError
from labctl.model import Vm
from labctl.ops.context import LabContext


def after_launch_failure(ctx: LabContext, vm: Vm, exc: MultipassError) -> tuple[str | None, bool]:
    """(hint, whether `labctl up` again continues) for a launch that raised `exc`."""
    if not isinstance(exc, LaunchTimeoutError):
        return exc.hint, True
    name = ctx.instance(vm)
    try:
        state = next((i.state for i in ctx.multipass.list() if i.name == name), None)
    except LabctlError:
        return exc.hint, True  # the daemon does not answer: its own hint says what to do
    if state == "Unknown":
        return (
            f"{name} is in state Unknown (SSH never answered): `labctl reset {vm.name} --rebuild` "
            "purges and launches it again.",
            False,
        )
    if state is None:
        return "`labctl up` again launches it.", True
    return (
        f"{name} is {state} and still provisioning: `labctl up` again keeps it and waits for "
        "cloud-init (up to waits.cloud_init). If launches are this slow every time, raise "
        "waits.launch in lab.yaml.",
        True,
    )
