"""LPT: VMs take launch slots heaviest first, ties in lab order."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from labctl.config.load import LabFile, parse_lab
from labctl.ops.bringup import bring_up_vms
from labctl.ops.context import RunOptions
from labctl.ops.launch_order import LaunchOrder, expected_weight, lpt_order
from tests.lab_world import lab_text


def test_app_vms_with_builds_go_before_the_lb_only_vm() -> None:
    lab = parse_lab(
        "name: o\ndomain: o.lab\n"
        "app: {name: web, source: {builtin: hello}, install: npm ci, build: npm run build}\n"
        "vms:\n  - {name: a0, roles: [app]}\n  - {name: a1, roles: [app]}\n"
        "  - {name: both, roles: [lb, app]}\n  - {name: a2, roles: [app]}\n"
    )
    assert [vm.name for vm in lpt_order(lab, lab.vms)] == ["both", "a0", "a1", "a2"]
    lb_only = parse_lab(
        "name: o\ndomain: o.lab\napp: {name: web, source: {builtin: hello}}\n"
        "vms:\n  - {name: lb, roles: [lb]}\n  - {name: a1, roles: [app]}\n"
    )
    assert [vm.name for vm in lpt_order(lb_only, lb_only.vms)] == ["a1", "lb"]
    assert expected_weight(lb_only, lb_only.vms[1]) < expected_weight(lab, lab.vms[1])


def test_up_launches_in_lpt_order_with_one_slot(make_world) -> None:
    world = make_world()
    text = lab_text(world.lb.port).replace(
        "  - {name: app1, roles: [app]}\n",
        "  - {name: lb, roles: [lb]}\n  - {name: app1, roles: [app]}\n",
        1,
    )
    text = text.replace("  - {name: lb, roles: [lb]}\nlb:", "lb:")
    lab = parse_lab(text)
    assert [vm.name for vm in lab.vms] == ["lb", "app1", "app2", "app3"]
    ctx = replace(
        world.ctx,
        lab_file=LabFile(lab, world.ctx.lab_file.path, "0" * 64),
        options=RunOptions(max_parallel=1),
    )
    outcomes, failures = bring_up_vms(ctx, lab.vms, {})
    assert not failures and [o.vm for o in outcomes] == ["lb", "app1", "app2", "app3"]
    launches = [c[1] for c in world.mp.calls_of("launch")]
    assert launches == ["hello-app1", "hello-app2", "hello-app3", "hello-lb"]


def test_a_withdrawn_name_lets_the_next_one_go() -> None:
    order = LaunchOrder(threading.BoundedSemaphore(1), ["first", "second"])
    got: list[str] = []

    def second() -> None:
        with order.slot("second"):
            got.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    assert got == []  # waits for "first", although the slot is free
    order.withdraw("first")  # e.g. first's VM already exists, or its render failed
    thread.join(5)
    assert got == ["second"]


def test_waiting_means_someone_in_line_and_no_slot_free() -> None:
    slots = threading.BoundedSemaphore(2)
    order = LaunchOrder(slots, ["a", "b", "c"])
    with order.slot("a"):
        assert not order.waiting()  # b and c are in line, but a slot is free: they go at once
        with order.slot("b"):
            assert order.waiting()  # c must wait for a or b to finish
        assert not order.waiting()
    order.withdraw("c")
    with order.slot("a"):  # nobody in line
        assert not order.waiting()
