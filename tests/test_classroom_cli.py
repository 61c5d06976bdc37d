"""Classroom mode through the CLI, against the subprocess-level fake multipass (plain backend).

A stand-in load balancer listens on the fake's loopback IPs (127.80.D.N) of every daemon and
answers like each student's nginx would: a request is served only on the address of the LB
instance of the student its Host header names, round robin over that student's Running app
instances on the same daemon (X-Lab-Backend). So a class `up` really ends serving.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from tests.fake_multipass.fixture import FakeMultipass

pytestmark = pytest.mark.slow

LAB = """\
name: cls
class:
{roster}
  domain: "{{student}}.class.lab"
app: {{name: hello, source: {{builtin: hello}}}}
defaults: {{memory: 256M, disk: 1G}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 10s}}
manage_hosts: false
snapshots: {{baseline: false}}
{extra}"""
STATUS = {  # what labctl's in-VM status script prints on a healthy VM
    "cloud_init": {"status": "done"},
    "app": {
        "pm2_daemon": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 7}],
        "port_open": True,
    },
    "nginx": {"active": True, "config_ok": True, "config_error": ""},
}


class ClassLb:
    """Every student's LB at once, on 127.80.D.N for D in 0..1 and N in 1..48."""

    def __init__(self, fake: FakeMultipass) -> None:
        self.fake = fake
        self.counters: dict[str, int] = {}  # LB address -> requests so far
        self.lock = threading.Lock()
        self.served: dict[str, set[str]] = {}  # domain -> LB addresses that served it
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                here = self.connection.getsockname()[0]
                domain = (self.headers.get("Host") or "").split(":")[0]
                student = domain.split(".")[0]
                backends = outer.backends(here, student)
                with outer.lock:  # round robin per LB: students check their domains at once
                    outer.counters[here] = turn = outer.counters.get(here, 0) + 1
                if backends is None:
                    self.send_response(404)  # not this student's LB
                    self.end_headers()
                    return
                if not backends:
                    self.send_response(502)
                    self.end_headers()
                    return
                outer.served.setdefault(domain, set()).add(here)
                self.send_response(200)
                self.send_header("X-Lab-Backend", f"{backends[turn % len(backends)]}:3000")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        probe = socket.socket()
        probe.bind(("127.80.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            ThreadingHTTPServer((f"127.80.{d}.{n}", self.port), Handler)
            for d in (0, 1)
            for n in range(1, 49)
        ]
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()

    def backends(self, here: str, student: str) -> list[str] | None:
        for daemon in self.fake.daemons().values():
            table: dict[str, Any] = daemon["instances"]
            lb = table.get(f"cls-{student}-lb")
            if lb is None or (lb.get("ipv4") or [None])[0] != here:
                continue
            return sorted(
                inst["ipv4"][0]
                for name, inst in table.items()
                if name.startswith(f"cls-{student}-app")
                and inst["state"] == "Running"
                and inst.get("ipv4")
            )
        return None

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def lb(fake_multipass: FakeMultipass) -> Iterator[ClassLb]:
    stand_in = ClassLb(fake_multipass)
    fake_multipass.on_exec("*", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    fake_multipass.on_exec("*", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(STATUS))
    yield stand_in
    stand_in.close()


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


def students(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


def write_lab(tmp_path: Path, lb: ClassLb, names: list[str], extra: str = "") -> Path:
    path = tmp_path / "lab.yaml"
    roster = f"  students: [{', '.join(names)}]"
    path.write_text(LAB.format(roster=roster, port=lb.port, extra=extra))
    return path


@pytest.fixture
def run(env: dict[str, str]):
    runner = CliRunner()

    def invoke(lab: Path, *args: str):
        at = 2 if args[0] == "snapshot" else 1
        return runner.invoke(app, [*args[:at], "-f", str(lab), *args[at:]], env=env)

    return invoke


def launched(fake: FakeMultipass) -> list[str]:
    names = []
    for call in fake.calls("launch"):
        argv = call["argv"]
        names.append(argv[argv.index("--name") + 1])
    return names


def test_validate_reports_roster_file_problems_with_line_numbers(tmp_path: Path, run) -> None:
    (tmp_path / "roster.csv").write_text("student,email\nalice,a@x\nBob,b@x\n\nbob,c@x\nx y,d@x\n")
    path = tmp_path / "lab.yaml"
    path.write_text(
        LAB.format(roster="  roster: roster.csv", port=80, extra="").replace(
            '"{student}.class.lab"', '"{student}.class.lab"\n  aliases: ["{student}-www.class.lab"]'
        )
    )
    result = run(path, "validate")
    assert result.exit_code == 2
    shown = str(tmp_path / "roster.csv")
    assert f"{shown}:5: duplicate student 'bob' (also 'Bob' at {shown}:3" in result.output
    assert f"{shown}:6: 'x y' is not a valid student name" in result.output
    assert "Traceback" not in result.output


def test_class_up_ten_students_under_one_bound_then_status_matrix(
    tmp_path: Path, run, fake_multipass: FakeMultipass, lb: ClassLb
) -> None:
    names = students(10)
    path = write_lab(tmp_path, lb, names)
    fake_multipass.configure(launch_latency=0.4)
    fake_multipass.configure(cloud_init_error=["cls-s04-app1"])
    result = run(path, "up", "--max-parallel", "3")
    assert result.exit_code == 1, result.output
    assert fake_multipass.max_concurrent("launch") == 3  # the bound was reached, never passed
    assert sorted(launched(fake_multipass)) == sorted(
        f"cls-{s}-{vm}" for s in names for vm in ("app1", "app2", "lb")
    )
    assert "9 of 10 student lab(s) up" in result.output
    assert "failed: s04 (cloud-init)" in result.output
    assert "Traceback" not in result.output
    for s in names:
        if s != "s04":
            assert f"{s}.class.lab" in lb.served, s  # every other student's domain served

    broken = {**STATUS, "cloud_init": {"status": "error"}}
    fake_multipass.on_exec(
        "cls-s04-app1", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(broken)
    )
    status = run(path, "status", "--json")
    assert status.exit_code == 1  # s04 is not healthy
    report = json.loads(status.stdout)
    assert report["class"] is True and report["vms"] == ["app1", "app2", "lb"]
    assert [row["student"] for row in report["students"]] == names
    assert report["summary"] == {"students": 10, "healthy": 9, "unhealthy": ["s04"]}
    for row in report["students"]:
        assert row["domain"] == f"{row['student']}.class.lab" and row["host"] == "local"
        assert row["matrix"]["vms"] == {"app1": "Running", "app2": "Running", "lb": "Running"}
        assert row["status"]["lab"] == f"cls-{row['student']}"
        assert row["matrix"]["domain"] == "serving", row
        assert row["matrix"]["cloud_init"].startswith("3/3" if row["healthy"] else "2/3")
    table = run(path, "status")
    assert "s04" in table.output and "9 of 10 student lab(s) healthy" in table.output
    watched = run(path, "status", "--watch", "--count", "2", "--interval", "1")
    assert watched.exit_code == 1, watched.output  # the matrix, refreshed twice
    assert watched.output.count("9 of 10 student lab(s) healthy") == 2
    assert "refresh 2 took" in watched.output


def test_student_option_selects_exactly_that_students_vms(
    tmp_path: Path, run, fake_multipass: FakeMultipass, lb: ClassLb
) -> None:
    path = write_lab(tmp_path, lb, students(4))
    result = run(path, "up", "--student", "s02", "-s", "s04")
    assert result.exit_code == 0, result.output
    assert sorted(launched(fake_multipass)) == sorted(
        f"cls-{s}-{vm}" for s in ("s02", "s04") for vm in ("app1", "app2", "lb")
    )
    status = run(path, "status", "--json", "--student", "s02")
    assert status.exit_code == 0, status.output
    assert [row["student"] for row in json.loads(status.stdout)["students"]] == ["s02"]
    exec_ = run(path, "exec", "app1", "--student", "s04", "--", "hostname")
    assert exec_.exit_code == 0, exec_.output
    assert fake_multipass.calls("exec")[-1]["argv"][:2] == ["exec", "cls-s04-app1"]
    assert run(path, "logs", "app1").exit_code == 2  # a class: logs needs one student
    assert run(path, "status", "--student", "nobody").exit_code == 2
    down = run(path, "down", "--student", "s02")
    assert down.exit_code == 0, down.output
    assert sorted(fake_multipass.instances()) == ["cls-s04-app1", "cls-s04-app2", "cls-s04-lb"]
