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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from labctl.config.load import parse_lab
from labctl.errors import ConfigError
from labctl.render.userdata import LB_APPLY_COMMAND, VM_STATUS_COMMAND
from tests.fake_lxc.class_lb import STATUS, ClassLb, class_cli
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


@pytest.fixture
def lb(fake_lxc: FakeLxc) -> Iterator[ClassLb]:
    fake_lxc.make_cluster(MEMBERS)
    stand_in = ClassLb(lambda: [fake_lxc.instances()])
    fake_lxc.on_exec("*", LB_APPLY_COMMAND, stdout="applied\n")
    fake_lxc.on_exec("*", VM_STATUS_COMMAND, stdout=json.dumps(STATUS))
    yield stand_in
    stand_in.close()


@pytest.fixture
def run(fake_lxc: FakeLxc, tmp_path: Path) -> Callable[..., Result]:
    return class_cli(fake_lxc, tmp_path)


def write_lab(tmp_path: Path, lb: ClassLb, names: list[str], members=MEMBERS) -> Path:
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
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
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
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
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


def without_hosts(path: Path) -> Path:
    """The same class with no `hosts:`: the cluster's own members are where it goes."""
    text = path.read_text()
    path.write_text(text[: text.index("hosts:\n")])
    return path


def test_without_hosts_a_class_goes_on_the_clusters_members_one_lab_per_member(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    names = ["ann", "bob", "cat"]
    path = without_hosts(write_lab(tmp_path, lb, names))
    result = run(path, "up")
    assert result.exit_code == 0, result.output
    where = located(fake_lxc)
    for student in names:
        assert where[f"cls-{student}-app"] == where[f"cls-{student}-lb"]
    assert sorted(placements(tmp_path).values()) == list(MEMBERS)  # one student per member
    assert all("--target" in call["argv"] for call in fake_lxc.calls("launch"))

    doctor = run(path, "doctor", "--json")
    rows = {row["host"]: row for row in json.loads(doctor.stdout)["hosts"]}
    assert doctor.exit_code == 0, doctor.output
    assert sorted(rows) == list(MEMBERS)
    assert rows["m2"]["source"] == "measured by the cluster on member m2"
    details = " ".join(check["detail"] for check in rows["m2"]["checks"])
    # the fake member's 4 CPUs, 16 GiB with 2 in use, and a 100 GiB pool with 10 used
    for figure in ("on 4 host CPUs", "14.0 GiB available", "90.0 GiB free"):
        assert figure in details, details


def test_students_go_where_the_cluster_measured_the_most_free_memory(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    # m2 has 64 GiB where m1 and m3 have 16: four labs of 512 MiB all fit best on m2
    fake_lxc.configure(member_resources={"m2": {"memory_total": 64 * 1024**3}})
    names = ["ann", "bob", "cat", "dan"]
    result = run(write_lab(tmp_path, lb, names), "up")
    assert result.exit_code == 0, result.output
    assert set(placements(tmp_path).values()) == {"m2"}


def test_a_member_the_cluster_calls_offline_gets_no_student_though_it_holds_none(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    fake_lxc.set_member_down("m3")  # before any lab: no instance of the class can show it
    names = ["ann", "bob", "cat", "dan"]
    path = without_hosts(write_lab(tmp_path, lb, names))
    result = run(path, "up")
    assert result.exit_code == 0, result.output
    assert sorted(placements(tmp_path).values()) == ["m1", "m1", "m2", "m2"]
    assert "m3" not in {
        call["argv"][call["argv"].index("--target") + 1] for call in fake_lxc.calls("launch")
    }

    doctor = run(path, "doctor", "--json")
    rows = {row["host"]: row for row in json.loads(doctor.stdout)["hosts"]}
    assert "m3" not in rows or not rows["m3"]["students"], rows


def test_a_single_lab_on_a_cluster_goes_whole_on_the_member_with_the_most_free_memory(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    """Left to LXD's scheduler its two instances would land on two members, and the LB could
    not reach the app. (Named cls-ann with ann's domain, the stand-in LB serves it.)"""
    fake_lxc.configure(member_resources={"m3": {"memory_total": 64 * 1024**3}})
    path = tmp_path / "lab.yaml"
    text = write_lab(tmp_path, lb, ["ann"]).read_text()
    body = text[text.index("app:") : text.index("hosts:\n")]
    path.write_text(
        f"name: cls-ann\nengine: lxd\nimage: labctl-test\ndomain: ann.class.lab\n{body}"
    )
    result = run(path, "up")
    assert result.exit_code == 0, result.output
    assert located(fake_lxc) == {"cls-ann-app": "m3", "cls-ann-lb": "m3"}
    assert "the lab goes on cluster member m3" in result.output


def test_with_class_json_lost_each_lab_is_found_on_its_own_member(
    tmp_path: Path, run, fake_lxc: FakeLxc, lb: ClassLb
) -> None:
    """One cluster lists every member's instances: a student is found on the member their
    instances are on, not on the first member whose listing names them."""
    names = ["ann", "bob", "cat"]
    path = without_hosts(write_lab(tmp_path, lb, names))
    assert run(path, "up").exit_code == 0
    placed = placements(tmp_path)
    assert len(set(placed.values())) == 3
    (tmp_path / "state" / "cls" / "class.json").unlink()
    status = run(path, "status", "--json")
    assert status.exit_code == 0, status.output
    hosts = {row["student"]: row["host"] for row in json.loads(status.stdout)["students"]}
    assert hosts == placed
