"""A failed stage, and how to fetch the log lines that explain it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from labctl.errors import EngineError
from labctl.model import Vm
from labctl.ops.context import LabContext
from labctl.render.userdata import CLOUD_INIT_LOG_COMMAND

TAIL_LINES: Final = 40


@dataclass(frozen=True)
class StageFailure:
    stage: str  # preflight | launch | cloud-init | ip | lb | hosts | serve
    message: str
    vm: str | None = None
    log_tail: str = ""
    hint: str | None = None
    resumable: bool = True  # `labctl up` again continues (False: the hint names the way on)


def log_tail(
    ctx: LabContext, vm: Vm, command: Callable[[int], list[str]], lines: int = TAIL_LINES
) -> str:
    """Last lines of a log inside a VM; empty when it cannot be read (never masks the failure)."""
    try:
        result = ctx.engine.exec(ctx.instance(vm), command(lines), timeout=ctx.lab.waits.check)
    except EngineError:
        return ""
    return result.stdout if result.returncode == 0 else ""


def cloud_init_failure(ctx: LabContext, vm: Vm, returncode: int, output: str) -> StageFailure:
    name = ctx.instance(vm)
    if returncode == 1:
        message = f"cloud-init failed on {name}"
    else:
        detail = (output.strip().splitlines() or ["no output"])[-1]
        message = f"could not read cloud-init status on {name} (exit {returncode}: {detail})"
    return StageFailure(
        "cloud-init",
        message,
        vm=vm.name,
        log_tail=log_tail(ctx, vm, CLOUD_INIT_LOG_COMMAND),
        # `up` again would only wait on the same failed cloud-init: the VM must be launched anew
        hint=f"Full log: `labctl logs {vm.name} --cloud-init -n 1000`. The instance {name} was "
        f"left for inspection; fix lab.yaml (or the app), then `labctl reset {vm.name} --rebuild` "
        "launches it again.",
        resumable=False,
    )
