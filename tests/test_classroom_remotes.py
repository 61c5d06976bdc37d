"""A class spread over two LXD servers (each an `lxc remote`), through the CLI, against the fake
`lxc`: placement by declared capacity, kept across runs, one listing per server for `status`,
everything down again; and the capacity refusal that launches nothing.

A stand-in load balancer listens on the fake's loopback addresses of both servers (127.81.S.N)
and answers as each student's nginx would: only on the address of that student's LB instance,
round robin over that student's Running app instances on the same server (X-Lab-Backend).
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
from labctl.render.userdata import LB_APPLY_COMMAND, VM_STATUS_COMMAND
from tests.fake_lxc.fixture import FakeLxc

pytestmark = pytest.mark.slow

SERVERS = ("east", "west")
LAB = """\
name: cls
engine: lxd
image: labctl-test
class:
  students: [{students}]
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
hosts:
{hosts}"""
ROOMY = (
    "  - {name: east, remote: east, cpus: 64, memory: 256G, disk: 2000G}\n"
    "  - {name: west, remote: west, cpus: 64, memory: 256G, disk: 2000G}\n"
)
STATUS = {
    "cloud_init": {"status": "done"},
    "app": {
        "pm2_daemon": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 7}],
        "port_open": True,
    },
    "nginx": {"active": True, "config_ok": True, "config_error": ""},
}


class ClassLb:
    """Every student's LB on both servers, on 127.81.S.N (S = 1, 2; N = 1..48)."""

    def __init__(self, fake: FakeLxc) -> None:
        self.fake = fake
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                here = self.connection.getsockname()[0]
                student = (self.headers.get("Host") or "").split(".")[0]
                backends = outer.backends(here, student)
                with outer.lock:
                    outer.turns[here] = turn = outer.turns.get(here, 0) + 1
                if not backends:
                    self.send_response(404 if backends is None else 502)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", f"{backends[turn % len(backends)]}:3000")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        probe = socket.socket()
        probe.bind(("127.81.1.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            ThreadingHTTPServer((f"127.81.{s}.{n}", self.port), Handler)
            for s in (1, 2)
            for n in range(1, 49)
        ]
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()

    def backends(self, here: str, student: str) -> list[str] | None:
        for server in SERVERS:
            table: dict[str, Any] = self.fake.instances(server=server)
            lb = table.get(f"cls-{student}-lb")
            if lb is None or lb.get("ipv4") != here:
                continue
            return sorted(
                inst["ipv4"]
                for name, inst in table.items()
                if name.startswith(f"cls-{student}-app") and inst["status"] == "Running"
            )
        return None

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def lb(fake_lxc: FakeLxc) -> Iterator[ClassLb]:
    for n, name in enumerate(SERVERS, start=5):
        fake_lxc.add_remote(name, address=f"10.0.0.{n}:8443")
    stand_in = ClassLb(fake_lxc)
    fake_lxc.on_exec("*", LB_APPLY_COMMAND, stdout="applied\n")
    fake_lxc.on_exec("*", VM_STATUS_COMMAND, stdout=json.dumps(STATUS))
    yield stand_in
    stand_in.close()


@pytest.fixture
def run(fake_lxc: FakeLxc, tmp_path: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    env = {
        **fake_lxc.env,
        "LABCTL_LXC": str(fake_lxc.executable),
        "LABCTL_HOSTS_FILE": str(hosts),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    runner = CliRunner()

    def invoke(lab: Path, *args: str):
        at = 2 if args[0] == "snapshot" else 1
        return runner.invoke(app, [*args[:at], "-f", str(lab), *args[at:]], env=env)

    return invoke


def write_lab(tmp_path: Path, lb: ClassLb, names: list[str], hosts: str = ROOMY) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(students=", ".join(names), port=lb.port, hosts=hosts))
    return path


def students(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


def launched(fake: FakeLxc) -> list[str]:
    return [call["argv"][2].split(":")[-1] for call in fake.calls("launch")]


def placements(tmp_path: Path) -> dict[str, str]:
    data = json.loads((tmp_path / "state" / "cls" / "class.json").read_text())
    return dict(data["placements"])


def test_two_servers_each_get_their_share_and_the_placement_is_stable(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    names = students(6)
    path = write_lab(tmp_path, lb, names)
    result = run(path, "up")
    assert result.exit_code == 0, result.output
    east, west = fake_lxc.instances(server="east"), fake_lxc.instances(server="west")
    assert len(east) == len(west) == 9  # 3 students x 3 containers on each
    assert fake_lxc.instances() == {}  # nothing on the local server
    placed = placements(tmp_path)
    assert sorted(placed.values()) == ["east"] * 3 + ["west"] * 3
    for student, host in placed.items():
        assert f"cls-{student}-lb" in (east if host == "east" else west)
        labels = (east if host == "east" else west)[f"cls-{student}-lb"]["config"]
        assert labels["user.labctl.student"] == student  # ownership on the instance itself

    status = json.loads(run(path, "status", "--json").stdout)
    assert {row["student"]: row["host"] for row in status["students"]} == placed
    assert {row["student"]: row["remote"] for row in status["students"]} == placed
    assert all(row["healthy"] for row in status["students"]), status["summary"]
    last_two = fake_lxc.calls("list")[-2:]  # status: ONE listing per server for 6 students
    assert sorted(call["argv"][1] for call in last_two) == ["east:", "west:"]

    more = write_lab(tmp_path, lb, [*names, "s07", "s08"])
    again = run(more, "up")
    assert again.exit_code == 0, again.output
    placed_again = placements(tmp_path)
    assert {s: placed_again[s] for s in names} == placed
    assert sorted(placed_again[s] for s in ("s07", "s08")) == ["east", "west"]
    assert len(launched(fake_lxc)) == 8 * 3  # nothing launched twice

    down = run(more, "down")
    assert down.exit_code == 0, down.output
    assert fake_lxc.instances(server="east") == fake_lxc.instances(server="west") == {}


def test_capacity_refusal_is_a_table_and_launches_nothing(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    small = (
        "  - {name: east, remote: east, cpus: 4, memory: 2G, disk: 100G}\n"
        "  - {name: west, remote: west}\n"
    )
    path = write_lab(tmp_path, lb, students(6), small)
    result = run(path, "up")
    assert result.exit_code == 1, result.output
    assert fake_lxc.calls("launch") == []
    assert "what does not fit" in result.output and "refusing to launch anything" in result.output
    assert "east" in result.output and "FAIL" in result.output
    assert "west" in result.output and "skip" in result.output  # nothing declared: not checked
    assert not (tmp_path / "state" / "cls" / "class.json").exists()
