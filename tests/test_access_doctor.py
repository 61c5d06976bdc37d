"""Use cases logs / shell / exec / doctor on the in-memory world."""

from __future__ import annotations

import pytest

from labctl.errors import ConfigError, LabctlError
from labctl.host.resources import HostResources, mem_available, storage_dir
from labctl.ops.access import exec_in, logs, shell
from labctl.ops.doctor import doctor
from labctl.ops.up import up
from labctl.render.userdata import app_log_command, cloud_init_log_command, nginx_log_command
from tests.lab_world import World

GIB = 1024**3


def ready(make_world) -> World:
    world = make_world()
    world.ctx.host = lambda: HostResources(64, 512 * GIB, 4096 * GIB, "/")
    assert up(world.ctx).ok
    return world


def test_logs_default_to_the_vms_main_log_by_role(make_world) -> None:
    world = ready(make_world)
    lb = logs(world.ctx, "lb", lines=20)
    assert lb.kind == "nginx" and "Unable to locate package" in lb.text and lb.returncode == 0
    app = logs(world.ctx, "app1")
    assert app.kind == "pm2"
    execs = [c for c in world.mp.calls_of("exec") if "tail" in c]
    assert execs[-2][2:] == tuple(nginx_log_command(20))
    assert execs[-1][2:] == tuple(app_log_command(100))


def test_logs_cloud_init_and_follow_hand_over_tail_f(make_world) -> None:
    world = ready(make_world)
    assert logs(world.ctx, "app2", kind="cloud-init", lines=5).kind == "cloud-init"
    world.mp.interactive_rc = 0
    followed = logs(world.ctx, "app2", kind="cloud-init", lines=5, follow=True)
    assert followed.text == ""
    tail = cloud_init_log_command(5)
    assert world.mp.interactive_calls[-1] == [
        "exec",
        "hello-app2",
        "--",
        *tail[:2],
        "-F",
        *tail[2:],
    ]


def test_logs_refuses_a_role_the_vm_lacks_and_unknown_vms(make_world) -> None:
    world = ready(make_world)
    with pytest.raises(ConfigError, match="--nginx: app1 has no lb role"):
        logs(world.ctx, "app1", kind="nginx")
    with pytest.raises(ConfigError, match="no VM named 'web9'"):
        logs(world.ctx, "web9")


def test_a_stopped_vm_is_refused_not_started(make_world) -> None:
    world = ready(make_world)
    world.mp.stop(["hello-app1"], timeout=10)
    with pytest.raises(LabctlError, match="hello-app1 is Stopped, not running"):
        logs(world.ctx, "app1")
    assert world.mp.vms["hello-app1"].state == "Stopped"


def test_shell_and_exec_hand_the_terminal_over_and_forward_the_code(make_world) -> None:
    world = ready(make_world)
    world.mp.interactive_rc = 0
    assert shell(world.ctx, "lb") == 0
    assert world.mp.interactive_calls[-1] == ["shell", "hello-lb"]
    world.mp.interactive_rc = 3
    assert exec_in(world.ctx, "app1", ["sh", "-c", "exit 3"]) == 3
    assert world.mp.interactive_calls[-1] == ["exec", "hello-app1", "--", "sh", "-c", "exit 3"]
    with pytest.raises(ConfigError, match="give the command after --"):
        exec_in(world.ctx, "app1", [])


def _statuses(report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def test_doctor_all_good(make_world) -> None:
    world = make_world()
    world.ctx.host = lambda: HostResources(8, 32 * GIB, 200 * GIB, "/var/snap/multipass")
    report = doctor(world.ctx, engines=lambda: [])
    assert report.ok, report.checks
    assert _statuses(report) == {
        "daemon": "ok",  # the engine's own lines (the Multipass ones: tests/test_multipass.py)
        "driver": "ok",
        "cpu": "ok",
        "memory": "ok",
        "disk": "ok",
        "hosts file": "ok",
        "domain": "ok",
        "browser": "skip",  # LABCTL_BROWSER=none in the tests (conftest); tests/browser/ has it
    }


def test_doctor_fails_on_capacity_and_a_claimed_domain(make_world) -> None:
    world = make_world()
    world.ctx.host = lambda: HostResources(2, 1 * GIB, 2 * GIB, "/home", 2 * GIB)
    world.hosts.write_text("# BEGIN labctl other\n10.0.0.9\thello.lab\n# END labctl other\n")
    report = doctor(world.ctx)
    assert not report.ok
    status = _statuses(report)
    assert status["cpu"] == "warn"  # 4 vCPUs on 2 CPUs: shared, not impossible
    assert status["memory"] == "fail" and status["disk"] == "fail" and status["domain"] == "fail"


def test_memory_in_use_now_only_warns(make_world) -> None:
    world = make_world()
    world.ctx.host = lambda: HostResources(8, 1 * GIB, 200 * GIB, "/", 32 * GIB)
    assert _statuses(doctor(world.ctx))["memory"] == "warn"


def test_doctor_only_counts_vms_that_are_not_running(make_world) -> None:
    world = ready(make_world)
    world.ctx.host = lambda: HostResources(8, 512 * 1024**2, 200 * GIB, "/")
    assert _statuses(doctor(world.ctx))["memory"] == "ok"  # the lab's VMs already run


def test_doctor_with_the_daemon_down_fails_and_lists_nothing(make_world) -> None:
    world = make_world()
    world.ctx.host = lambda: HostResources(8, 32 * GIB, 200 * GIB, "/")
    world.mp.daemon = None
    report = doctor(world.ctx)
    assert not report.ok
    assert _statuses(report)["daemon"] == "fail"
    assert "list" not in [call[0] for call in world.mp.calls]


def test_doctor_hosts_file_through_sudo(make_world, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    world.ctx.host = lambda: HostResources(8, 32 * GIB, 200 * GIB, "/")
    monkeypatch.setattr("labctl.ops.doctor.os.access", lambda path, mode: False)  # not root
    world.ctx.can_sudo = lambda: True
    assert _statuses(doctor(world.ctx))["hosts file"] == "ok"
    world.ctx.can_sudo = lambda: False
    assert _statuses(doctor(world.ctx))["hosts file"] == "warn"


def test_hostinfo_reads_meminfo_and_falls_back_to_home(tmp_path) -> None:
    assert mem_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n") == 2 * 1024 * 1024
    assert mem_available("MemTotal: 1 kB\n") is None
    assert storage_dir((str(tmp_path / "nope"), str(tmp_path))) == tmp_path
    assert storage_dir((str(tmp_path / "nope"),)).is_dir()
