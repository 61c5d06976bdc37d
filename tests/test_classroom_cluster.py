"""A class on an LXD cluster (`hosts:` entries with `member:`), through the CLI, against the fake
`lxc` made a 3-member cluster: each student's whole lab is launched on one member (`--target`),
the students spread over the members, the placement kept across runs (also when lab.yaml lists
the members in another order), a member that is down reported as the reason its student's lab
is unreachable and given no new students, and `labctl hosts` printing a student's hosts line.
lab.yaml mistakes about members are reported with their line.

A stand-in load balancer listens on the fake's loopback addresses (127.81.0.N) and answers as
each student's nginx would: only on that student's LB address, round robin over that student's
Running app instances.
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
from labctl.config.load import parse_lab
from labctl.errors import ConfigError
from labctl.render.userdata import LB_APPLY_COMMAND, VM_STATUS_COMMAND
from tests.fake_lxc.fixture import FakeLxc

pytestmark = pytest.mark.slow

MEMBERS = ("m1", "m2", "m3")
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
  - {{name: app, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 10s}}
manage_hosts: false
snapshots: {{baseline: false}}
hosts:
{hosts}"""
STATUS = {
    "cloud_init": {"status": "done"},
    "app": {
        "pm2_daemon": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 7}],
        "port_open": True,
    },
    "nginx": {"active": True, "config_ok": True, "config_error": ""},
}


class StandInLb:
    """Every student's LB on the cluster's addresses (127.81.0.N, N = 1..48)."""

    def __init__(self, fake: FakeLxc) -> None:
        outer = self
        self.fake = fake

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                here = self.connection.getsockname()[0]
                student = (self.headers.get("Host") or "").split(".")[0]
                table: dict[str, Any] = outer.fake.instances()
                lb = table.get(f"cls-{student}-lb")
                app = table.get(f"cls-{student}-app")
                if lb is None or lb.get("ipv4") != here or app is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", f"{app['ipv4']}:3000")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        probe = socket.socket()
        probe.bind(("127.81.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            ThreadingHTTPServer((f"127.81.0.{n}", self.port), Handler) for n in range(1, 49)
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
def lb(fake_lxc: FakeLxc) -> Iterator[StandInLb]:
    fake_lxc.make_cluster(MEMBERS)
    stand_in = StandInLb(fake_lxc)
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
        return runner.invoke(app, [args[0], "-f", str(lab), *args[1:]], env=env)

    return invoke


def write_lab(tmp_path: Path, lb: StandInLb, names: list[str], members=MEMBERS) -> Path:
    hosts = "".join(f"  - {{name: {m}, member: {m}}}\n" for m in members)
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(students=", ".join(names), port=lb.port, hosts=hosts))
    return path


def located(fake: FakeLxc) -> dict[str, str]:
    return {name: inst["location"] for name, inst in fake.instances().items()}


def placements(tmp_path: Path) -> dict[str, str]:
    data = json.loads((tmp_path / "state" / "cls" / "class.json").read_text())
    return dict(data["placements"])


def test_each_lab_goes_on_one_member_and_stays_there_across_runs(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: StandInLb
) -> None:
    names = ["ann", "bob", "cat", "dan", "eve", "fay"]
    path = write_lab(tmp_path, lb, names)
    result = run(path, "up")
    assert result.exit_code == 0, result.output
    where = located(fake_lxc)
    for student in names:  # one member per lab: its LB shares the member's network with its app
        assert where[f"cls-{student}-app"] == where[f"cls-{student}-lb"]
    placed = placements(tmp_path)
    assert sorted(placed.values()) == sorted(MEMBERS * 2)  # spread: two students per member
    assert {s: where[f"cls-{s}-lb"] for s in names} == placed
    launches = [call["argv"] for call in fake_lxc.calls("launch")]
    assert all("--target" in argv for argv in launches) and len(launches) == 12

    # the next run, with the members listed the other way round: nobody moves, nothing relaunches
    reordered = write_lab(tmp_path, lb, names, members=tuple(reversed(MEMBERS)))
    again = run(reordered, "up")
    assert again.exit_code == 0, again.output
    assert placements(tmp_path) == placed and located(fake_lxc) == where
    assert len(fake_lxc.calls("launch")) == 12

    listed = len(fake_lxc.calls("list"))
    status = run(reordered, "status", "--json")
    assert status.exit_code == 0, status.output
    assert len(fake_lxc.calls("list")) == listed + 1  # the cluster is one server: one listing

    line = run(reordered, "hosts", "--student", "bob")
    lb_ip = fake_lxc.instances()["cls-bob-lb"]["ipv4"]
    assert line.exit_code == 0 and line.stdout == f"{lb_ip} bob.class.lab\n", line.output


def test_a_member_down_is_its_students_reason_and_gets_no_new_student(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: StandInLb
) -> None:
    fake_lxc.configure(member_down_stall=0)
    names = ["ann", "bob", "cat"]
    path = write_lab(tmp_path, lb, names)
    assert run(path, "up").exit_code == 0
    placed = placements(tmp_path)
    victim = next(s for s, m in placed.items() if m == "m2")
    fake_lxc.set_member_down("m2")

    status = run(path, "status", "--json")
    rows = {row["student"]: row for row in json.loads(status.stdout)["students"]}
    assert status.exit_code == 1
    problems = rows[victim]["problems"]
    assert any("unreachable: cluster member m2 does not answer" in p for p in problems), problems
    assert all(rows[s]["healthy"] for s in names if s != victim), rows

    check = run(path, "check", "--check", "lb-serves", "--json")
    graded = {lab["student"]: lab for lab in json.loads(check.stdout)["labs"]}
    assert check.exit_code == 1 and not graded[victim]["passed"]
    [verdict] = graded[victim]["checks"]
    assert "cluster member m2 does not answer" in verdict["reason"], verdict
    others = {s: graded[s]["checks"][0]["reason"] for s in names if s != victim}
    # the others are reached through their LBs (the stand-in's page is not the app's own)
    assert all(
        reason.endswith("answers 200 but not the app's page: 'hello'") for reason in others.values()
    ), others

    hosts = run(path, "hosts", "--student", victim)
    assert hosts.exit_code == 1 and "cluster member m2 does not answer" in hosts.output

    more = write_lab(tmp_path, lb, [*names, "dan", "eve"])
    grown = run(more, "up", "--student", "dan", "--student", "eve")
    assert grown.exit_code == 0, grown.output
    now = placements(tmp_path)
    assert now[victim] == "m2"  # kept: it comes back when the member does
    assert now["dan"] != "m2" and now["eve"] != "m2", now


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (
            "  - {name: a, member: m1}\n  - {name: b, member: m1}\n",
            "lab.yaml:18:15: hosts[1].member: member 'm1' of the local daemon (no remote) is also "
            "hosts[0]: one entry per server",
        ),
        (
            "  - {name: a, member: m1}\n  - {name: b}\n",
            "lab.yaml:18:5: hosts[1]: hosts[0] names a member of this cluster: give this host one "
            "too",
        ),
    ],
)
def test_member_mistakes_name_their_line(hosts: str, expected: str) -> None:
    text = LAB.format(students="ann", port=80, hosts=hosts)
    with pytest.raises(ConfigError) as caught:
        parse_lab(text)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_a_member_needs_the_lxd_engine() -> None:
    text = LAB.format(students="ann", port=80, hosts="  - {name: a, member: m1}\n")
    text = text.replace("engine: lxd\nimage: labctl-test", "engine: multipass\nimage: '24.04'")
    with pytest.raises(ConfigError) as caught:
        parse_lab(text)
    assert any(
        p.startswith("lab.yaml:17:15: hosts[0].member: a member is a member of an LXD cluster")
        for p in caught.value.problems
    ), caught.value.problems
