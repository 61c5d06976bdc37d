"""up's baseline snapshot, taken early by the VMs that are done while others wait for a launch slot
and after serving by the rest; on the in-memory world."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from labctl.engine.multipass.errors import MultipassError
from labctl.ops.up import up
from tests.lab_world import APP_IPS, World, with_options
from tests.test_lifecycle import make

LB_APPLY = "/usr/local/sbin/labctl-lb-apply"


def lb_apply_index(world: World) -> int:
    return next(
        i for i, call in enumerate(world.mp.calls) if call[0] == "exec" and LB_APPLY in call
    )


def fail_once(world: World, verb: str, instance: str, error: MultipassError) -> None:
    """The next `verb` on `instance` raises `error`; later ones work."""
    real: Callable[..., None] = getattr(world.mp, verb)
    left = [error]

    def once(*args: object, **kwargs: object) -> None:
        names = args[0] if isinstance(args[0], list) else [args[0]]
        if instance in names and left:
            world.mp.calls.append((verb, *map(str, names)))
            raise left.pop()
        real(*args, **kwargs)

    setattr(world.mp, verb, once)


def test_vms_done_while_others_queue_take_their_baseline_before_the_wiring(make_world) -> None:
    world = make(make_world)
    result = up(
        with_options(world.ctx, max_parallel=1)
    )  # one slot: app1, app2, app3, then lb (LPT)
    assert result.ok, result.failures
    assert result.baseline == "taken"
    early = {vm.vm: vm.early_baseline for vm in result.vms}
    assert early == {"app1": True, "app2": True, "app3": True, "lb": False}
    wired = lb_apply_index(world)
    snapshots = [i for i, call in enumerate(world.mp.calls) if call[0] == "snapshot"]
    assert len(snapshots) == 4 and sum(i < wired for i in snapshots) == 3
    # each early VM stopped alone; after serving only the last one (the LB) stops
    stops = [call[1:] for call in world.mp.calls_of("stop")]
    # the early ones in any order (each in its own thread, as its launch ends)
    assert sorted(stops[:3]) == [("hello-app1",), ("hello-app2",), ("hello-app3",)]
    assert stops[3:] == [("hello-lb",)]
    for name in ("hello-app1", "hello-app2", "hello-app3"):
        calls = [c for c in world.mp.calls if c[0] in ("stop", "snapshot", "start") and name in c]
        assert [c[0] for c in calls] == ["stop", "snapshot", "start"]
    manifest = world.ctx.lab_state.snapshots()["baseline"]
    assert sorted(manifest["vms"]) == ["app1", "app2", "app3", "lb"]
    assert manifest["lab_digest"] == "0" * 64
    assert all(set(vm.snapshots) == {"baseline"} for vm in world.mp.vms.values())
    assert all(vm.state == "Running" for vm in world.mp.vms.values())
    shown = [(e.vm, e.kind) for e in world.events if e.stage == "baseline"]
    assert ("app1", "start") in shown and ("app1", "done") in shown
    assert (None, "done") in shown  # the lab-wide line after serving


def test_a_lab_within_its_launch_slots_takes_the_baseline_after_serving(make_world) -> None:
    world = make(make_world)
    result = up(with_options(world.ctx, max_parallel=4))  # nobody ever waits for a slot
    assert result.ok and result.baseline == "taken"
    assert not any(vm.early_baseline for vm in result.vms)
    assert all(i > lb_apply_index(world) for i, c in enumerate(world.mp.calls) if c[0] == "stop")
    [stop] = world.mp.calls_of("stop")
    assert sorted(stop[1:]) == ["hello-app1", "hello-app2", "hello-app3", "hello-lb"]


def test_every_vm_early_means_no_stop_after_serving(make_world) -> None:
    world = make(make_world)
    world.ctx.lab_state.add_snapshot_vm(
        "baseline", "lb", "hello-lb", created="2026-12-06T00:00:00Z", lab_digest="0" * 64
    )  # as if the LB had it already: the three app VMs take theirs early, nothing is left after
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    assert result.baseline == "taken"
    assert all(i < lb_apply_index(world) for i, c in enumerate(world.mp.calls) if c[0] == "stop")


def test_an_early_snapshot_that_fails_is_taken_again_after_serving(make_world) -> None:
    world = make(make_world)
    fail_once(world, "snapshot", "hello-app1", MultipassError("snapshot failed: disk full"))
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    assert result.baseline == "taken"
    assert {vm.vm: vm.early_baseline for vm in result.vms}["app1"] is False
    assert "baseline" in world.mp.vms["hello-app1"].snapshots
    after = [c[1:] for c in world.mp.calls_of("stop")][-1]
    assert sorted(after) == ["hello-app1", "hello-lb"]  # the failed one and the last one
    assert any("not now" in e.message for e in world.events if e.vm == "app1")


def test_a_vm_that_does_not_start_after_its_early_baseline_is_a_failure(make_world) -> None:
    world = make(make_world)
    fail_once(world, "start", "hello-app1", MultipassError("start failed: hello-app1: timed out"))
    result = up(with_options(world.ctx, max_parallel=1))
    assert not result.ok
    [failure] = result.failures
    assert failure.stage == "baseline" and failure.vm == "app1"
    assert "did not start again after its baseline snapshot" in failure.message
    assert failure.hint and "labctl up" in failure.hint
    assert not [c for c in world.mp.calls if c[0] == "exec" and LB_APPLY in c]  # not wired
    world.mp.calls.clear()
    again = up(with_options(world.ctx, max_parallel=1))  # starts it, keeps its baseline, serves
    assert again.ok, again.failures
    assert ("start", "hello-app1") in world.mp.calls
    # app1..app3 kept the baselines they took; the LB, last and never wired, takes its own now
    assert world.mp.calls_of("snapshot") == [("snapshot", "hello-lb", "baseline")]


def test_no_snapshots_on_this_driver_stops_the_early_baselines_for_good(make_world) -> None:
    world = make(make_world)
    world.mp.snapshots_unsupported = True
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    assert result.baseline.startswith("skipped:") and "cannot take snapshots" in result.baseline
    assert len(world.mp.calls_of("snapshot")) == 1  # the first VM found out; nobody tried again
    assert all(vm.state == "Running" for vm in world.mp.vms.values())


def test_while_the_first_vm_finds_out_about_snapshots_the_next_one_waits_for_the_answer(
    make_world,
) -> None:
    """A slow first stop: the next VM is ready for its early baseline meanwhile, and must not
    stop as well on a driver that turns out to have no snapshots."""
    world = make(make_world)
    world.mp.snapshots_unsupported = True
    real_stop: Callable[..., None] = world.mp.stop
    first = threading.Event()

    def slow_first_stop(names: list[str], **kwargs: object) -> None:
        if not first.is_set():
            first.set()
            time.sleep(0.5)  # app2 launches and is ready for its baseline meanwhile
        real_stop(names, **kwargs)

    world.mp.stop = slow_first_stop  # type: ignore[method-assign]
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    assert len(world.mp.calls_of("snapshot")) == 1
    assert len(world.mp.calls_of("stop")) == 1  # nobody else stopped to find out again


def test_up_again_takes_the_baseline_of_a_vm_that_lacks_it_only(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).baseline == "taken"
    world.ctx.lab_state.forget_snapshot_vm("baseline", "app2")
    del world.mp.vms["hello-app2"].snapshots["baseline"]
    world.mp.calls.clear()
    again = up(world.ctx)
    assert again.ok and again.baseline == "taken"
    assert world.mp.calls_of("stop") == [("stop", "hello-app2")]
    assert world.mp.calls_of("snapshot") == [("snapshot", "hello-app2", "baseline")]


def test_the_lb_addresses_are_listed_once_while_the_last_cloud_init_is_checked(
    make_world,
) -> None:
    world = make(make_world)
    result = up(with_options(world.ctx, max_parallel=4))
    assert result.ok, result.failures
    verbs = [c[0] for c in world.mp.calls]
    wired = lb_apply_index(world)
    assert verbs[:wired].count("list") == 2  # preflight's, and the one the wiring used
    site = world.mp.vms["hello-lb"].site
    assert all(f"server {ip}:3000" in site for ip in APP_IPS.values())


def test_an_address_that_changes_in_an_early_baseline_restart_is_the_one_wired(
    make_world,
) -> None:
    world = make(make_world)

    def new_lease(name: str) -> None:  # the restart for its baseline brings a new DHCP lease
        if name == "hello-app1":
            world.mp.ips[name] = "10.77.0.21"

    world.mp.launch_hook = new_lease
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    assert {vm.vm: vm.early_baseline for vm in result.vms}["app1"]
    site = world.mp.vms["hello-lb"].site
    assert "server 10.77.0.21:3000" in site and "10.77.0.11" not in site


def test_a_failed_prefetched_listing_is_asked_again_by_the_wiring(make_world) -> None:
    world = make(make_world)
    real_list = world.mp.list
    lists = []

    def flaky_list() -> list:
        lists.append(1)
        if len(lists) == 2:  # the prefetch
            raise MultipassError("list failed: cannot connect to the multipass socket")
        return real_list()

    world.mp.list = flaky_list  # type: ignore[method-assign]
    result = up(with_options(world.ctx, max_parallel=4))
    assert result.ok, result.failures
    assert len(lists) >= 3
