"""A class spread over two LXD servers (each an `lxc remote`), through the CLI, against the fake
`lxc`: placement by declared capacity, kept across runs, one listing per server for `status`,
everything down again; and the capacity refusal that launches nothing.

A stand-in load balancer listens on the fake's loopback addresses of both servers (127.81.S.N)
and answers as each student's nginx would: only on the address of that student's LB instance,
round robin over that student's Running app instances on the same server (X-Lab-Backend).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from labctl.render.userdata import LB_APPLY_COMMAND, VM_STATUS_COMMAND
from tests.fake_lxc.class_lb import STATUS, ClassLb, class_cli
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


@pytest.fixture
def lb(fake_lxc: FakeLxc) -> Iterator[ClassLb]:
    for n, name in enumerate(SERVERS, start=5):
        fake_lxc.add_remote(name, address=f"10.0.0.{n}:8443")
    stand_in = ClassLb(lambda: [fake_lxc.instances(server=s) for s in SERVERS], subnets=(1, 2))
    fake_lxc.on_exec("*", LB_APPLY_COMMAND, stdout="applied\n")
    fake_lxc.on_exec("*", VM_STATUS_COMMAND, stdout=json.dumps(STATUS))
    yield stand_in
    stand_in.close()


@pytest.fixture
def run(fake_lxc: FakeLxc, tmp_path: Path) -> Callable[..., Result]:
    return class_cli(fake_lxc, tmp_path)


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
