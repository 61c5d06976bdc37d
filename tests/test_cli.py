"""The CLI end to end against the subprocess-level fake multipass (plain backend).

The plain fake has no nginx, so `up` here runs every stage for real through the CLI and stops at
the serve stage (nothing listens on the fake LB address, a loopback 127.80.x.y). The whole path to
a serving lab runs on simulated VMs in test_e2e_sim.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from tests.fake_multipass.fixture import FakeMultipass

HELLO = """\
name: hello
domain: hello.lab
app: {{name: hello, source: {{builtin: hello}}}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: lb, roles: [lb]}}
waits: {{launch: 60s, cloud_init: 60s, serve: {serve}}}
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(HELLO.format(serve="1s"))
    return path


@pytest.fixture
def run(fake_multipass: FakeMultipass, tmp_path: Path, lab: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    runner = CliRunner()

    def invoke(*args: str, multipass: str | None = None):
        env = {
            **fake_multipass.env,
            "LABCTL_MULTIPASS": multipass or str(fake_multipass.executable),
            "LABCTL_HOSTS_FILE": str(hosts),
            "LABCTL_STATE_DIR": str(tmp_path / "state"),
        }
        return runner.invoke(app, list(args), env=env)

    invoke.hosts = hosts  # type: ignore[attr-defined]
    return invoke


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for command in ("validate", "schema", "render", "plan", "up", "status", "down"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_validate_reports_every_problem_with_exit_2(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 1lab\ndomain: x..y\nvms:\n  - {name: a, roles: [web]}\n")
    result = run("validate", "-f", str(bad))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{bad}:1:1: name:") and lines[1].startswith(f"{bad}:2:1: domain:")
    assert "vms[0].roles[0]: Input should be 'app' or 'lb', got 'web'" in result.output
    assert "Traceback" not in result.output


def test_validate_ok_and_schema(run, lab: Path) -> None:
    result = run("validate", "-f", str(lab))
    assert result.exit_code == 0 and "ok — lab 'hello'" in result.output
    schema = json.loads(run("schema").output)
    assert schema["title"] == "labctl lab.yaml"


def test_render_prints_user_data_and_rejects_unknown_vm(run, lab: Path) -> None:
    result = run("render", "lb", "-f", str(lab))
    assert result.exit_code == 0 and result.output.startswith("#cloud-config\n")
    missing = run("render", "web9", "-f", str(lab))
    assert missing.exit_code == 2 and "no VM named 'web9' (VMs: app1, app2, lb)" in missing.output


def test_plan_shows_exact_argv_and_launches_nothing(
    run, lab: Path, fake_multipass: FakeMultipass
) -> None:
    result = run("plan", "-f", str(lab), "--json")
    assert result.exit_code == 0
    plan = json.loads(result.output)
    launches = [step["argv"] for step in plan["steps"] if step["argv"] and "launch" in step["argv"]]
    assert len(launches) == 3
    assert launches[0][0] == str(fake_multipass.executable)
    assert (
        "--cloud-init" in launches[0] and launches[0][launches[0].index("--cloud-init") + 1] == "-"
    )
    assert fake_multipass.calls("launch") == []


def test_up_runs_every_stage_and_names_the_one_that_fails(
    run, lab: Path, fake_multipass: FakeMultipass
) -> None:
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    result = run("up", "-f", str(lab))
    assert result.exit_code == 1
    instances = fake_multipass.instances()
    assert sorted(instances) == ["hello-app1", "hello-app2", "hello-lb"]
    launches = fake_multipass.calls("launch")
    assert all(call["cloud_init"].startswith("#cloud-config") for call in launches)
    lb_ip = instances["hello-lb"]["ipv4"][0]
    assert lb_ip.startswith("127.80.")
    assert (
        f"# BEGIN labctl hello\n{lb_ip}\thello.lab\n# END labctl hello\n" in run.hosts.read_text()
    )
    assert "serve [lb]: http://hello.lab/: not ready after 1s" in result.output
    assert "Traceback" not in result.output


def test_status_json_reports_each_vm_without_crashing(
    run, lab: Path, fake_multipass: FakeMultipass
) -> None:
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    run("up", "-f", str(lab))
    fake_multipass.set_state("hello-app2", "Stopped")
    app_report = {
        "cloud_init": {"status": "done"},
        "app": {
            "pm2_daemon": True,
            "port_open": True,
            "processes": [{"name": "hello", "status": "online", "restarts": 0}],
        },
        "nginx": None,
    }
    fake_multipass.on_exec(
        "hello-app1", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(app_report)
    )
    result = run("status", "-f", str(lab), "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["healthy"] is False
    by_name = {vm["name"]: vm for vm in report["vms"]}
    assert by_name["app1"]["healthy"] is True and by_name["app1"]["pm2"][0]["status"] == "online"
    assert by_name["app2"]["state"] == "Stopped" and by_name["app2"]["ipv4"] == []
    assert by_name["lb"]["healthy"] is False  # the plain fake has no status script for it
    assert set(report["domain"]) >= {"resolves", "serving", "backends_seen"}
    assert report["domain"]["serving"] is False


def test_down_purges_and_is_idempotent(run, lab: Path, fake_multipass: FakeMultipass) -> None:
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    run("up", "-f", str(lab))
    fake_multipass.add_instance("someone-else")
    result = run("down", "-f", str(lab))
    assert result.exit_code == 0
    assert sorted(fake_multipass.instances()) == ["someone-else"]
    assert run.hosts.read_text() == "127.0.0.1 localhost\n"
    again = run("down", "-f", str(lab))
    assert again.exit_code == 0 and "already down" in again.output


def test_missing_multipass_says_how_to_install(run, lab: Path, tmp_path: Path) -> None:
    result = run("up", "-f", str(lab), multipass=str(tmp_path / "no-such-multipass"))
    assert result.exit_code == 1
    assert (
        "snap install multipass" in result.output
        and "brew install --cask multipass" in result.output
    )
    assert "Traceback" not in result.output


def test_daemon_down_is_one_clear_message(run, lab: Path, fake_multipass: FakeMultipass) -> None:
    fake_multipass.configure(daemon_down=True)
    result = run("up", "-f", str(lab))
    assert result.exit_code == 1
    assert "daemon (multipassd) does not answer" in result.output
    assert fake_multipass.calls("launch") == []


def test_launch_timeout_names_the_instance_left_behind(
    run, lab: Path, fake_multipass: FakeMultipass
) -> None:
    fake_multipass.configure(launch_timeout=["hello-app2"])
    result = run("up", "-f", str(lab))
    assert result.exit_code == 1
    assert "launch [app2]" in result.output and "hello-app2" in result.output
    assert "left the instance hello-app2 behind" in result.output
    assert "hello-app2" in fake_multipass.instances()
    run("down", "-f", str(lab))
    assert fake_multipass.instances() == {}


def test_cloud_init_error_shows_the_log_tail(run, lab: Path, fake_multipass: FakeMultipass) -> None:
    fake_multipass.configure(cloud_init_error=["hello-app1"])
    result = run("up", "-f", str(lab))
    assert result.exit_code == 1
    assert "cloud-init [app1]: cloud-init failed on hello-app1" in result.output
    assert "last log lines:" in result.output


def test_foreign_instance_is_refused(run, lab: Path, fake_multipass: FakeMultipass) -> None:
    fake_multipass.add_instance("hello-app1", state="Stopped")
    result = run("up", "-f", str(lab))
    assert result.exit_code == 1
    assert "hello-app1 (Stopped)" in result.output and "never touches instances" in result.output
    assert fake_multipass.calls("launch") == []
    assert fake_multipass.instance("hello-app1")["state"] == "Stopped"


def test_up_respects_max_parallel(
    run, lab: Path, fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    many = tmp_path / "many.yaml"
    many.write_text(
        HELLO.format(serve="1s").replace(
            "  - {name: lb, roles: [lb]}",
            "\n".join(f"  - {{name: app{i}, roles: [app]}}" for i in range(3, 7))
            + "\n  - {name: lb, roles: [lb]}",
        )
    )
    fake_multipass.configure(launch_latency=0.4)
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    run("up", "-f", str(many), "--max-parallel", "2")
    assert len(fake_multipass.calls("launch")) == 7
    assert fake_multipass.max_concurrent("launch") == 2
