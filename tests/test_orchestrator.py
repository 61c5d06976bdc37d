from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import DaemonUnreachableError, ForeignInstanceError, LaunchTimeoutError
from labctl.host.state import LabState
from labctl.ops.down import down
from labctl.ops.plan import plan
from labctl.ops.status import status
from labctl.ops.up import up
from tests.lab_world import APP_IPS, healthy_vm_status, with_options
from tests.memory_engine import MemoryVm


def test_up_from_nothing_launches_wires_and_waits_for_every_backend(make_world) -> None:
    world = make_world()
    result = up(with_options(world.ctx, max_parallel=4))
    assert result.ok, result.failures
    assert sorted(c[1] for c in world.mp.calls_of("launch")) == [
        "hello-app1",
        "hello-app2",
        "hello-app3",
        "hello-lb",
    ]
    assert {vm.action for vm in result.vms} == {"launched"}
    site = world.mp.vms["hello-lb"].site
    assert all(f"server {ip}:3000" in site for ip in APP_IPS.values())
    assert "# BEGIN labctl hello\n127.0.0.1\thello.lab\n# END labctl hello\n" in world.hosts_text()
    assert result.check is not None and result.check.backends_seen == {
        f"{ip}:3000" for ip in APP_IPS.values()
    }
    assert sorted(result.backend_names.values()) == ["app1", "app2", "app3"]
    verbs = [c[0] for c in world.mp.calls]
    assert sorted(verbs[:2]) == ["list", "version"]  # asked at once
    # every VM's cloud-init is waited on before the LB is wired; the LB push comes last
    lb_push = next(
        i for i, c in enumerate(world.mp.calls) if c[-1] == "/usr/local/sbin/labctl-lb-apply"
    )
    waits = [i for i, c in enumerate(world.mp.calls) if c[2:4] == ("cloud-init", "status")]
    assert len(waits) == 4 and max(waits) < lb_push
    assert any(e.stage == "serve" and e.kind == "done" for e in world.events)


def test_cloud_init_goes_through_stdin_with_the_vm_role(make_world) -> None:
    world = make_world()
    up(world.ctx)
    lb_data = world.mp.vms["hello-lb"].user_data
    app_data = world.mp.vms["hello-app1"].user_data
    assert lb_data.startswith("#cloud-config") and "nginx" in lb_data
    assert app_data.startswith("#cloud-config") and "nodejs" in app_data


def test_second_up_changes_nothing(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    hosts_before = world.hosts_text()
    world.mp.calls.clear()
    again = up(world.ctx)
    assert again.ok
    assert world.mp.calls_of("launch") == [] and world.mp.calls_of("start") == []
    assert {vm.action for vm in again.vms} == {"existing"}
    assert (
        again.lb_config == "unchanged" and again.hosts is not None and again.hosts.changed is False
    )
    assert world.hosts_text() == hosts_before


def test_partial_lab_launches_only_what_is_missing_and_resyncs_the_lb(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    del world.mp.vms["hello-app2"]
    world.mp.ips["hello-app2"] = "10.77.0.99"
    world.mp.stop(["hello-app3"], timeout=10)
    world.mp.calls.clear()
    result = up(world.ctx)
    assert result.ok, result.failures
    assert world.mp.calls_of("launch") == [("launch", "hello-app2")]
    assert world.mp.calls_of("start") == [("start", "hello-app3")]
    assert "server 10.77.0.99:3000" in world.mp.vms["hello-lb"].site
    assert "10.77.0.12" not in world.mp.vms["hello-lb"].site
    assert result.lb_config == "applied"


def test_launches_respect_max_parallel(make_world) -> None:
    world = make_world()
    world.mp.launch_delay = 0.15
    assert up(with_options(world.ctx, max_parallel=2)).ok
    assert world.mp.max_active_launches == 2


def test_foreign_instance_with_a_lab_name_is_refused_and_left_alone(make_world) -> None:
    world = make_world()
    world.mp.vms["hello-app2"] = MemoryVm("hello-app2", ipv4=["10.5.5.5"])  # someone else's VM
    with pytest.raises(ForeignInstanceError) as caught:
        up(world.ctx)
    assert "hello-app2 (Running)" in caught.value.message
    assert world.mp.calls_of("launch") == []
    assert down(world.ctx).foreign_left == ["hello-app2"]
    assert "hello-app2" in world.mp.vms


def test_running_instance_with_our_marker_is_adopted_when_state_was_lost(
    make_world, tmp_path: Path
) -> None:
    world = make_world()
    assert up(world.ctx).ok
    world.mp.vms["hello-app1"].marker = {"lab": "hello", "vm": "app1", "roles": ["app"]}
    world.ctx.state = LabState(tmp_path / "fresh-state")
    with pytest.raises(ForeignInstanceError) as caught:  # the others carry no marker here
        up(world.ctx)
    assert "hello-app1" not in caught.value.message
    assert "hello-app1" in world.ctx.lab_state.owned()


def test_cloud_init_failure_names_the_vm_and_shows_the_log(make_world) -> None:
    world = make_world()
    world.mp.cloud_init_rc["hello-app2"] = 1
    result = up(world.ctx)
    assert not result.ok
    [failure] = result.failures
    assert (failure.stage, failure.vm) == ("cloud-init", "app2")
    assert "cloud-init failed on hello-app2" in failure.message
    assert "Unable to locate package nodejs" in failure.log_tail
    assert len(world.mp.calls_of("launch")) == 4  # the others went on
    assert "BEGIN labctl" not in world.hosts_text()  # nothing wired on a failed lab


def test_launch_timeout_is_reported_with_the_instance_left_behind(make_world) -> None:
    world = make_world()
    world.mp.fail_launch["hello-app3"] = LaunchTimeoutError(
        "hello-app3: timed out waiting for initialization; the instance was left behind",
        hint="labctl down, or multipass delete --purge hello-app3",
    )
    result = up(world.ctx)
    [failure] = result.failures
    assert (failure.stage, failure.vm) == ("launch", "app3")
    assert "left behind" in failure.message
    # the in-memory daemon leaves it Unknown: the one way on is a rebuild, said at once
    assert "`labctl reset app3 --rebuild`" in (failure.hint or "") and not failure.resumable
    assert "hello-app3" in world.ctx.lab_state.owned()  # so `down` can clean it up
    assert "hello-app3" in down(world.ctx).deleted


def test_rerun_after_a_launch_timeout_names_the_unknown_instance(make_world) -> None:
    world = make_world()
    world.mp.fail_launch["hello-app3"] = LaunchTimeoutError("timed out")
    up(world.ctx)
    world.mp.fail_launch.clear()
    result = up(world.ctx)
    [failure] = result.failures
    assert "state Unknown" in failure.message and "labctl reset app3 --rebuild" in (
        failure.hint or ""
    )


def test_daemon_down_stops_before_anything(make_world) -> None:
    world = make_world()
    world.mp.daemon = None
    with pytest.raises(DaemonUnreachableError):
        up(world.ctx)
    # only the two read-only questions asked at once; nothing launched or changed
    assert sorted(c[0] for c in world.mp.calls) in (["version"], ["list", "version"])


def test_nginx_rejecting_the_site_fails_the_lb_stage(make_world) -> None:
    world = make_world()
    world.mp.lb_apply_rc = 1
    result = up(world.ctx)
    [failure] = result.failures
    assert failure.stage == "lb" and "configuration file test failed" in failure.message
    assert "previous one stays active" in failure.message


def test_serve_stage_times_out_naming_the_missing_backend(make_world) -> None:
    world = make_world(serve="1s")
    world.lb.dead.add("10.77.0.13:3000")
    result = up(world.ctx)
    [failure] = result.failures
    assert failure.stage == "serve"
    assert "backends never seen: 10.77.0.13:3000" in failure.message


def test_no_hosts_prints_the_line_and_checks_through_the_lb_ip(make_world) -> None:
    world = make_world()
    result = up(with_options(world.ctx, no_hosts=True))
    assert result.ok, result.failures
    assert result.hosts is not None and result.hosts.line == "127.0.0.1\thello.lab"
    assert world.hosts_text() == "127.0.0.1 localhost\n"


def test_status_healthy_then_names_the_broken_vm(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    healthy_vm_status(world.mp)
    report = status(world.ctx)
    assert report.healthy, report.problems
    assert report.domain.backends_seen == ["app1", "app2", "app3"]
    world.mp.vm_status["hello-app2"]["app"] = {
        "pm2_daemon": True,
        "port_open": False,
        "processes": [{"name": "hello", "status": "stopped", "restarts": 3}],
    }
    world.lb.dead.add("10.77.0.12:3000")
    report = status(world.ctx)
    assert not report.healthy
    assert "app2: pm2 process 'hello' is stopped" in report.problems
    assert "app2: nothing listens on port 3000" in report.problems
    assert (
        "app2: backend 10.77.0.12:3000 did not answer through the load balancer" in report.problems
    )
    assert report.domain.backends_missing == ["app2"]


def test_status_survives_stopped_and_addressless_vms(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    healthy_vm_status(world.mp)
    world.mp.stop(["hello-app1"], timeout=10)
    world.mp.vms["hello-app3"].ipv4 = ["N/A"]
    report = status(world.ctx)
    by_name = {vm.name: vm for vm in report.vms}
    assert by_name["app1"].problems == ["VM is Stopped"]
    assert by_name["app3"].problems[0] == "no IPv4 address (N/A)"
    assert by_name["app2"].healthy
    assert '"healthy": false' in report.to_json()


def test_down_purges_ours_and_removes_the_hosts_entry(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    result = down(world.ctx)
    assert sorted(result.deleted) == ["hello-app1", "hello-app2", "hello-app3", "hello-lb"]
    assert len(world.mp.calls_of("delete")) == 1  # one multipass call for the whole lab
    assert world.hosts_text() == "127.0.0.1 localhost\n"
    again = down(world.ctx)
    assert again.deleted == [] and len(again.already_gone) == 4 and not again.hosts_removed


def test_plan_lists_the_launches_in_order_without_launching(make_world) -> None:
    world = make_world()
    result = plan(with_options(world.ctx, max_parallel=3))
    assert world.mp.calls_of("launch") == []
    launches = [s for s in result.steps if s.argv and "launch" in s.argv]
    assert len(launches) == 4 and all(s.parallel and s.order == 2 for s in launches)
    # the engine's own command line, exactly as it would run it
    assert launches[0].argv == [
        "mem", "launch", "hello-app1", "24.04", "--cpus=1", "--memory=1G", "--disk=5G",
        "--timeout=60",
    ]  # fmt: skip
    assert [s.order for s in result.steps] == sorted(s.order for s in result.steps)
    assert {vm.action for vm in result.vms} == {"launch"}


def test_down_that_cannot_write_the_hosts_file_says_the_vms_are_gone(
    make_world, monkeypatch
) -> None:
    from labctl.errors import HostsFileError
    from labctl.host import hostsfile as hosts_module

    world = make_world()
    assert up(world.ctx).ok

    def full(path, text) -> None:
        raise HostsFileError(
            f"cannot write {path}: No space left on device; the file was left as it was"
        )

    monkeypatch.setattr(hosts_module, "write_hosts", full)
    with pytest.raises(HostsFileError) as caught:
        down(world.ctx)
    assert caught.value.message.startswith(
        "deleted hello-app1, hello-app2, hello-app3, hello-lb, but the hosts"
    )
    assert "# BEGIN labctl hello" in (caught.value.hint or "")
    assert world.mp.vms == {}
