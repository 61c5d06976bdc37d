"""Hints that are true, and URLs that are exact, end to end through the CLI against the
subprocess fake multipass (plain backend: `up` stops at serve, see tests/test_faults.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.cli.commands.up import print_up
from labctl.ops.bringup import VmOutcome
from labctl.ops.failures import StageFailure
from labctl.ops.up import UpResult
from tests.fake_multipass.fixture import FakeMultipass
from tests.test_faults import HOSTS_TEXT, LAB, LB_APPLY, World, assert_up_stopped_line, one_line


@pytest.fixture
def world(fake_multipass: FakeMultipass, tmp_path: Path) -> World:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS_TEXT)
    fake_multipass.on_exec("hello-lb", LB_APPLY, stdout="applied\n")
    return World(fake_multipass, lab, hosts, tmp_path / "state")


def test_ssh_timeout_says_at_once_that_a_rebuild_is_the_way_on(world: World) -> None:
    world.fake.configure(ssh_timeout=["hello-app2"])
    result = world.run("up")
    assert result.exit_code == 1
    assert "timed out (SSH never came up" in one_line(result.output, "✗ launch [app2]:")
    assert (
        "hello-app2 is in state Unknown (it never came up): `labctl reset app2 --rebuild`"
        in result.output
    )
    assert_up_stopped_line(result.output, up_continues=False)
    world.fake.configure(ssh_timeout=None)
    again = world.run("reset", "app2", "--rebuild")  # the hint, followed
    assert "app2: rebuilt (state Unknown)" in again.output
    assert world.fake.instance("hello-app2")["state"] == "Running"
    world.assert_down_leaves()


def test_reset_on_a_lab_that_is_not_up_says_so_and_launches_nothing(world: World) -> None:
    result = world.run("reset")
    assert result.exit_code == 1
    assert "lab 'hello' is not up (none of its VMs exist); nothing was reset" in result.output
    assert "Run `labctl up` first." in result.output
    assert world.fake.calls("launch") == [] and world.fake.instances() == {}


def test_missing_lb_helper_says_the_vm_was_not_provisioned_by_labctl(
    fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    (tmp_path / "lab.yaml").write_text(LAB)
    (tmp_path / "hosts").write_text(HOSTS_TEXT)
    world = World(fake_multipass, tmp_path / "lab.yaml", tmp_path / "hosts", tmp_path / "state")
    # no on_exec for labctl-lb-apply: the fake's shell answers "command not found", exit 127
    result = world.run("up")
    line = one_line(result.output, "✗ lb [lb]:")
    assert (
        "hello-lb has no /usr/local/sbin/labctl-lb-apply: it was not provisioned by labctl" in line
    )
    assert "nginx rejected" not in result.output
    assert "`labctl reset lb --rebuild` launches it again" in result.output
    assert_up_stopped_line(result.output, up_continues=False)
    status = world.run("status", "--json")
    problems = json.loads(status.output)["problems"]
    assert any(
        "no /usr/local/sbin/labctl-vm-status on the VM: it was not provisioned by labctl" in p
        for p in problems
    )


def test_unreadable_health_answer_says_what_was_expected(world: World) -> None:
    world.run("up")
    world.fake.on_exec("hello-app1", ["/usr/local/sbin/labctl-vm-status"], stdout="<html>")
    result = world.run("status", "--json")
    assert result.exit_code == 1
    app1 = next(vm for vm in json.loads(result.output)["vms"] if vm["name"] == "app1")
    assert app1["problems"] == [
        "health check: /usr/local/sbin/labctl-vm-status answered something that is not its JSON "
        "report (was this VM provisioned by labctl?)"
    ]


def test_urls_carry_the_lb_port_when_it_is_not_80(world: World) -> None:
    world.lab.write_text(LAB + "lb: {port: 8080}\n")
    result = world.run("up")
    assert "serve [lb]: http://hello.lab:8080/: not ready after 1s" in result.output
    assert "http://hello.lab/" not in result.output
    plan = world.run("plan")
    assert "waiting for http://hello.lab:8080/ to answer" in plan.output
    status = world.run("status")
    assert "domain: http://hello.lab:8080/ is not serving" in status.output
    world.lab.write_text(LAB)
    assert "waiting for http://hello.lab/ to answer" in world.run("plan").output


def test_up_summary_never_counts_a_vm_without_an_ip_and_names_the_url(capsys) -> None:
    from rich.console import Console

    out, err = Console(width=200), Console(width=200, stderr=True)
    vms = [VmOutcome("app1", "l-app1", "launched"), VmOutcome("lb", "l-lb", "launched")]
    no_ip = UpResult("l", "l.lab", vms, [StageFailure("ip", "no IPv4", vm="lb")])
    print_up(out, err, no_ip)
    assert "1 VM(s) ready (app1)" in capsys.readouterr().err
