from __future__ import annotations

from collections.abc import Sequence

import pytest

from labctl.engine.base import ExecResult
from labctl.errors import ConfigError
from labctl.ops.drill import drill
from labctl.ops.up import up
from tests.lab_world import APP_IPS, World, healthy_vm_status


def backend_of(instance: str) -> str:
    return f"{APP_IPS[instance]}:3000"


def wire_backends(world: World) -> list[tuple[str, ...]]:
    """Make pm2 stop/start, SIGSTOP/SIGCONT and VM stop/start change what the stand-in LB sees."""
    actions: list[tuple[str, ...]] = []

    def hook(name: str, argv: list[str]) -> ExecResult | None:
        if argv[:1] != ["pm2"]:
            return None
        actions.append((name, *argv))
        if argv[1] == "stop" or argv[-2:-1] == ["SIGSTOP"]:
            world.lb.dead.add(backend_of(name))
        else:
            world.lb.dead.discard(backend_of(name))
        return ExecResult(0, "", "")

    world.mp.exec_hook = hook
    real_stop, real_start = world.mp.stop, world.mp.start

    def stop(names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        real_stop(names, force=force, timeout=timeout)
        world.lb.dead.update(backend_of(n) for n in names)

    def start(names: Sequence[str], *, timeout: float) -> None:
        real_start(names, timeout=timeout)
        world.lb.dead.difference_update(backend_of(n) for n in names)

    world.mp.stop, world.mp.start = stop, start  # type: ignore[method-assign]
    return actions


def ready(make_world) -> World:
    world = make_world()
    assert up(world.ctx).ok
    healthy_vm_status(world.mp)
    return world


@pytest.mark.parametrize("mode", ["app", "freeze", "vm"])
def test_drill_passes_on_a_lab_that_fails_over(make_world, mode: str) -> None:
    world = ready(make_world)
    actions = wire_backends(world)
    result = drill(world.ctx, mode=mode, requests=30)  # type: ignore[arg-type]
    assert result.passed, [(s.name, s.observed) for s in result.steps if not s.passed]
    names = [step.name for step in result.steps]
    assert names == [
        "precheck",
        f"app1 down ({mode})",
        "app1 back",
        f"app2 down ({mode})",
        "app2 back",
        f"app3 down ({mode})",
        "app3 back",
        "all backends down",
        "all back",
    ]
    one_down = result.steps[1]
    assert one_down.observed.startswith("30/30 x 200 from app2, app3")
    assert result.steps[7].observed == "20 x 502"
    assert world.lb.dead == set()  # everything restored
    if mode == "app":
        assert ("hello-app1", "pm2", "stop", "hello") in actions and (
            "hello-app1",
            "pm2",
            "start",
            "hello",
        ) in actions
    if mode == "freeze":
        assert ("hello-app2", "pm2", "sendSignal", "SIGSTOP", "hello") in actions
    if mode == "vm":
        assert ("stop", "hello-app3") in world.mp.calls and (
            "start",
            "hello-app3",
        ) in world.mp.calls


def test_drill_fails_naming_the_step_when_the_lb_does_not_fail_over(make_world) -> None:
    world = ready(make_world)
    wire_backends(world)
    world.lb.failover = False
    result = drill(world.ctx, vms=["app2"], requests=30)
    assert not result.passed
    failed = [s for s in result.steps if not s.passed]
    assert failed[0].name == "app2 down (app)"
    assert "x 502" in failed[0].observed
    assert world.lb.dead == set()


def test_drill_refuses_a_lab_with_a_single_upstream(make_world) -> None:
    world = ready(make_world)
    wire_backends(world)
    world.lb.only = backend_of("hello-app1")
    result = drill(world.ctx, requests=10)
    assert not result.passed
    assert [s.name for s in result.steps] == ["precheck"]
    assert "did not answer through the load balancer" in result.steps[0].observed
    assert not any(c[0] == "exec" and "pm2" in c for c in world.mp.calls)  # nothing was taken down


def test_drill_restores_everything_when_interrupted(make_world) -> None:
    world = ready(make_world)
    actions = wire_backends(world)
    inner = world.mp.exec_hook
    assert inner is not None

    def interrupt_second_stop(name: str, argv: list[str]) -> ExecResult | None:
        if argv[:2] == ["pm2", "stop"] and name == "hello-app2":
            world.lb.dead.add(backend_of(name))
            raise KeyboardInterrupt
        return inner(name, argv)

    world.mp.exec_hook = interrupt_second_stop
    with pytest.raises(KeyboardInterrupt):
        drill(world.ctx, requests=10)
    assert ("hello-app2", "pm2", "start", "hello") in actions  # restored on the way out
    assert world.lb.dead == set()


def test_drill_rejects_a_vm_that_is_not_an_app(make_world) -> None:
    world = ready(make_world)
    with pytest.raises(ConfigError, match="--vm lb: not an app VM of lab 'hello'"):
        drill(world.ctx, vms=["lb"])
