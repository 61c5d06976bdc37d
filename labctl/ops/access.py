"""`labctl logs|shell|exec VM`: look inside one lab VM.

`logs` reads the VM's main log by role (nginx's error log on the LB VM, pm2's logs on an app VM)
or the one asked for; `--follow` hands the terminal to `tail -F` through the engine. `shell` and
`exec` hand the terminal to the engine's own shell / exec and forward the exit code.
A stopped VM is refused rather than started behind the user's back (some engines start a stopped
instance to exec into it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from labctl.engine.base import State
from labctl.errors import ConfigError, LabctlError
from labctl.model import Vm
from labctl.ops.context import LabContext, classify_instances
from labctl.render.userdata import APP_LOG_COMMAND, CLOUD_INIT_LOG_COMMAND, NGINX_LOG_COMMAND

LogKind = Literal["cloud-init", "pm2", "nginx"]
LOG_COMMANDS: Final[dict[str, Callable[[int], list[str]]]] = {
    "cloud-init": CLOUD_INIT_LOG_COMMAND,
    "pm2": APP_LOG_COMMAND,
    "nginx": NGINX_LOG_COMMAND,
}


@dataclass(frozen=True)
class LogsResult:
    vm: str
    instance: str
    kind: str
    text: str  # empty when followed (it went to the terminal)
    returncode: int


def _vm(ctx: LabContext, name: str) -> tuple[Vm, str]:
    vm = ctx.lab.vm(name)
    if vm is None:
        known = ", ".join(v.name for v in ctx.lab.vms)
        raise ConfigError([f"no VM named {name!r} in lab {ctx.lab.name!r} (VMs: {known})"])
    instance = ctx.instance(vm)
    ownership = classify_instances(ctx, ctx.engine.list())
    if vm.name in ownership.foreign:
        raise LabctlError(
            f"{instance} exists but is not lab {ctx.lab.name!r}'s; labctl does not touch it"
        )
    inst = ownership.ours.get(vm.name)
    if inst is None:
        raise LabctlError(f"{instance} does not exist", hint="Run `labctl up` first.")
    if inst.state is not State.RUNNING:
        raise LabctlError(
            f"{instance} is {inst.shown_state}, not running",
            hint="Start the lab with `labctl up`"
            + (
                f", or rebuild it with `labctl reset {vm.name} --rebuild`."
                if inst.state is State.BROKEN
                else "."
            ),
        )
    return vm, instance


def default_log(vm: Vm) -> LogKind:
    """The VM's main log: nginx on the LB VM (also when it runs the app too), else pm2."""
    return "nginx" if "lb" in vm.roles else "pm2"


def logs(
    ctx: LabContext,
    name: str,
    *,
    kind: LogKind | None = None,
    lines: int = 100,
    follow: bool = False,
) -> LogsResult:
    vm = ctx.lab.vm(name)
    if vm is not None and kind in ("nginx", "pm2"):
        role = "lb" if kind == "nginx" else "app"
        if role not in vm.roles:
            raise ConfigError(
                [f"--{kind}: {name} has no {role} role (roles: {', '.join(vm.roles)})"]
            )
    vm, instance = _vm(ctx, name)
    chosen = kind or default_log(vm)
    argv = LOG_COMMANDS[chosen](lines)
    if follow:
        at = argv.index("tail") + 1
        argv = [*argv[:at], "-F", *argv[at:]]  # -F: keeps following across log rotation
        code = _hand_over(ctx, instance, argv)
        return LogsResult(vm.name, instance, chosen, "", code)
    result = ctx.engine.exec(instance, argv, timeout=60)
    return LogsResult(vm.name, instance, chosen, result.stdout + result.stderr, result.returncode)


def shell(ctx: LabContext, name: str) -> int:
    _, instance = _vm(ctx, name)
    return _hand_over(ctx, instance, None)


def exec_in(ctx: LabContext, name: str, argv: list[str]) -> int:
    if not argv:
        raise ConfigError(["exec: give the command after --, e.g. labctl exec app1 -- uptime"])
    _, instance = _vm(ctx, name)
    return _hand_over(ctx, instance, argv)


def _hand_over(ctx: LabContext, instance: str, argv: list[str] | None) -> int:
    try:
        return ctx.engine.interactive(instance, argv)
    except KeyboardInterrupt:  # Ctrl-C ends `tail -F`/the remote command, not labctl's business
        return 130
