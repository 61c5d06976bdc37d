"""snapshot / reset / logs / shell / exec / doctor and the lab lock through the CLI, against the
subprocess-level fake multipass (plain backend).

A stand-in load balancer listens on the fake's loopback IPs (127.80.0.N) and answers like nginx
would: round robin over the app instances the fake says are Running, naming the backend in
X-Lab-Backend. So `up` here ends serving, and a stopped VM is routed around.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from tests.fake_multipass.fixture import FakeMultipass

ROOT = Path(__file__).resolve().parent.parent
LAB = """\
name: hello
domain: hello.lab
app: {{name: hello, source: {{builtin: hello}}}}
defaults: {{memory: 256M, disk: 1G}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 10s}}
manage_hosts: false
{extra}"""  # small VMs: up's capacity preflight reads this host's real free memory
APPS = ("hello-app1", "hello-app2")


class FakeLabLb:
    def __init__(self, fake: FakeMultipass) -> None:
        self.fake, self.counter = fake, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                instances = outer.fake.instances()
                alive = sorted(
                    inst["ipv4"][0]
                    for name, inst in instances.items()
                    if name in APPS and inst["state"] == "Running" and inst.get("ipv4")
                )
                outer.counter += 1
                if not alive:
                    self.send_response(502)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", f"{alive[outer.counter % len(alive)]}:3000")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        probe = socket.socket()
        probe.bind(("127.80.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            ThreadingHTTPServer((f"127.80.0.{n}", self.port), Handler) for n in range(1, 17)
        ]
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def lb(fake_multipass: FakeMultipass) -> Iterator[FakeLabLb]:
    stand_in = FakeLabLb(fake_multipass)
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    yield stand_in
    stand_in.close()


@pytest.fixture
def lab(tmp_path: Path, lb: FakeLabLb) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(port=lb.port, extra=""))
    return path


@pytest.fixture
def env(fake_multipass: FakeMultipass, tmp_path: Path) -> dict[str, str]:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    return {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(hosts),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def run(env: dict[str, str], lab: Path):
    runner = CliRunner()

    def invoke(*args: str):
        at = 2 if args[0] == "snapshot" else 1  # -f right after the command, before any `--`
        return runner.invoke(app, [*args[:at], "-f", str(lab), *args[at:]], env=env)

    return invoke


def commands(fake: FakeMultipass, since: int = 0) -> list[str]:
    return [call["command"] for call in fake.calls()[since:]]


def states(fake: FakeMultipass) -> dict[str, str]:
    return {name: inst["state"] for name, inst in fake.instances().items()}


def test_every_new_command_has_help() -> None:
    runner = CliRunner()
    for command in (
        ["snapshot", "save"],
        ["snapshot", "list"],
        ["snapshot", "restore"],
        ["snapshot", "delete"],
        ["reset"],
        ["logs"],
        ["shell"],
        ["exec"],
        ["doctor"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_up_serves_then_takes_the_baseline_by_stop_snapshot_start(run, fake_multipass) -> None:
    result = run("up")
    assert result.exit_code == 0, result.output
    assert "baseline snapshot taken" in result.output and "is serving" in result.output
    seen = commands(fake_multipass)
    assert seen.count("snapshot") == 3
    first = seen.index("snapshot")
    assert seen.index("stop") < first and max(
        i for i, c in enumerate(seen) if c == "snapshot"
    ) < len(seen) - 1 - seen[::-1].index("start")
    assert set(states(fake_multipass).values()) == {"Running"}
    listing = json.loads(run("snapshot", "list", "--json").output)
    [entry] = listing["entries"]
    assert entry["name"] == "baseline" and entry["present"] == ["app1", "app2", "lb"]
    assert entry["config_changed"] is False


def test_snapshot_save_on_a_running_lab_stops_and_restarts_it(run, fake_multipass) -> None:
    assert run("up").exit_code == 0
    mark = len(fake_multipass.calls())
    result = run("snapshot", "save", "before-lab3")
    assert result.exit_code == 0, result.output
    assert "snapshot 'before-lab3' taken: app1, app2, lb" in result.output
    assert "is serving" in result.output
    seen = commands(fake_multipass, mark)
    assert seen.index("stop") < seen.index("snapshot") < seen.index("start")
    assert set(states(fake_multipass).values()) == {"Running"}
    snaps = fake_multipass.run("list", "--snapshots", "--format", "json").stdout
    assert snaps.count("before-lab3") >= 3


def test_snapshot_restore_brings_back_a_serving_lab(run, fake_multipass) -> None:
    assert run("up").exit_code == 0
    fake_multipass.set_state("hello-app2", "Stopped")  # the student broke something
    mark = len(fake_multipass.calls())
    result = run("snapshot", "restore", "baseline")
    assert result.exit_code == 0, result.output
    assert "snapshot 'baseline' restored: app1, app2, lb" in result.output
    assert "through app1, app2" in result.output
    restores = [c["argv"] for c in fake_multipass.calls()[mark:] if c["command"] == "restore"]
    assert len(restores) == 3 and all("--destructive" in argv for argv in restores)
    assert set(states(fake_multipass).values()) == {"Running"}


def test_snapshot_list_warns_when_lab_yaml_changed(run, lab: Path) -> None:
    assert run("up").exit_code == 0
    lab.write_text(lab.read_text() + "aliases: [www.hello.lab]\n")
    result = run("snapshot", "list")
    assert result.exit_code == 0 and "lab.yaml changed since 'baseline'" in result.output


def test_bad_snapshot_name_is_one_line_exit_2(run, fake_multipass) -> None:
    result = run("snapshot", "save", "bad.name")
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "'bad.name' is not valid" in result.output
    assert fake_multipass.calls("stop") == []


def test_driver_without_snapshots_is_skipped_on_up_and_a_clear_error_on_save(
    run, fake_multipass
) -> None:
    fake_multipass.configure(snapshots_unsupported=True)
    up = run("up")
    assert up.exit_code == 0, up.output
    assert "no baseline snapshot" in up.output and "cannot take snapshots" in up.output
    result = run("snapshot", "save", "s1")
    assert result.exit_code == 1
    assert "NOT taken on: app1, app2, lb" in result.output
    assert "not tried" in result.output and "The lab was started again" in result.output
    assert set(states(fake_multipass).values()) == {"Running"}
    assert "Traceback" not in result.output


def test_multipass_older_than_1_13(run, fake_multipass) -> None:
    fake_multipass.configure(version="1.12.0")
    up = run("up")
    assert up.exit_code == 0 and "Multipass 1.12.0 has no snapshots" in up.output
    assert fake_multipass.calls("stop") == []
    result = run("snapshot", "save", "s1")
    assert result.exit_code == 1 and "1.13.0 or newer" in result.output
    assert fake_multipass.calls("stop") == []


def test_reset_one_vm_restores_it_and_stops_nothing_else(run, fake_multipass) -> None:
    assert run("up").exit_code == 0
    mark = len(fake_multipass.calls())
    result = run("reset", "app2")
    assert result.exit_code == 0, result.output
    assert "app2: restored" in result.output and "is serving" in result.output
    stops = [c["argv"][-1] for c in fake_multipass.calls()[mark:] if c["command"] == "stop"]
    assert stops == ["hello-app2"]


def test_unknown_instance_up_points_at_reset_rebuild_which_works(run, fake_multipass) -> None:
    assert run("up").exit_code == 0
    fake_multipass.set_state("hello-app1", "Unknown")
    up = run("up")
    assert up.exit_code == 1 and "labctl reset app1 --rebuild" in up.output
    result = run("reset", "app1", "--rebuild")
    assert result.exit_code == 0, result.output
    assert "app1: rebuilt (state Unknown)" in result.output
    assert "baseline snapshot taken again" in result.output
    assert set(states(fake_multipass).values()) == {"Running"}
    assert len(fake_multipass.calls("launch")) == 4


def test_logs_exec_and_shell(run, fake_multipass) -> None:
    assert run("up").exit_code == 0
    fake_multipass.on_exec("hello-lb", ["tail"], stdout="2026/01/01 [error] upstream timed out\n")
    result = run("logs", "lb", "-n", "5")
    assert result.exit_code == 0 and "upstream timed out" in result.output
    assert run("logs", "app1", "--pm2", "--nginx").exit_code == 2
    assert run("exec", "app1", "--", "exit", "3").exit_code == 3
    assert run("exec", "app1", "--", "true").exit_code == 0
    assert run("shell", "app1").exit_code == 0
    assert run("exec", "web9", "--", "true").exit_code == 2


def test_doctor_passes_here_and_fails_a_lab_that_cannot_fit(
    run, env: dict[str, str], tmp_path: Path, lb: FakeLabLb
) -> None:
    result = run("doctor")
    assert "multipass" in result.output and "driver      qemu" in result.output
    assert result.exit_code == 0, result.output
    huge = tmp_path / "huge.yaml"
    huge.write_text(LAB.format(port=lb.port, extra="").replace("memory: 256M", "memory: 4000G"))
    bad = CliRunner().invoke(app, ["doctor", "-f", str(huge)], env=env)
    assert bad.exit_code == 1 and "FAIL memory" in bad.output
    refused = CliRunner().invoke(app, ["up", "-f", str(huge)], env=env)
    assert refused.exit_code == 1 and "refusing to launch anything: memory" in refused.output


# --- processes: the lock, kill -9 ----------------------------------------------------------------------


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed with its multipass children
    )


def wait_for(predicate, proc: subprocess.Popen[str], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read() if proc.stdout and proc.poll() is not None else ""
            pytest.fail(f"labctl exited {proc.returncode} or timed out before that: {out}")
        time.sleep(0.05)


def kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_two_concurrent_ups_one_refuses_naming_the_other(env, lab: Path, fake_multipass) -> None:
    fake_multipass.configure(launch_latency=1.5)
    first = spawn(env, "up", "-f", str(lab))
    try:
        wait_for(lambda: any(c["command"] == "launch" for c in fake_multipass.calls()), first)
        second = spawn(env, "up", "-f", str(lab))
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 1, out
        assert f"lab 'hello' is busy: `labctl up` (PID {first.pid}" in out
        assert "nothing was done" in out
        out, _ = first.communicate(timeout=60)
        assert first.returncode == 0, out
    finally:
        kill_group(first)
    assert len(fake_multipass.calls("launch")) == 3


def test_kill_9_during_up_then_rerun_converges(env, lab: Path, fake_multipass, run) -> None:
    fake_multipass.configure(launch_latency=2.0)
    victim = spawn(env, "up", "-f", str(lab), "--max-parallel", "1")
    try:
        wait_for(lambda: any(c["command"] == "launch" for c in fake_multipass.calls()), victim)
        time.sleep(0.3)
    finally:
        kill_group(victim)
    assert victim.returncode == -signal.SIGKILL
    left = states(fake_multipass)
    assert 1 <= len(left) < 3  # a launch was cut off half way
    fake_multipass.configure(launch_latency=0)
    result = run("up")
    assert result.exit_code == 0, result.output
    assert "no longer running" in result.output  # the dead up's lock was taken over
    assert sorted(states(fake_multipass)) == ["hello-app1", "hello-app2", "hello-lb"]
    assert set(states(fake_multipass).values()) == {"Running"}
    again = run("up")
    assert again.exit_code == 0 and len(fake_multipass.instances()) == 3
