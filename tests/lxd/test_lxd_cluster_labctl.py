"""labctl end to end on a real 3-member LXD cluster: a class of three students, each student's
whole lab (one app container, one LB) in a restricted LXD project of their own (`project:
"lxt-{student}"`, created by `up`) and on one member, spread over the three members that labctl
finds in the cluster (lab.yaml has no `hosts:`), by the capacity LXD measures on each (`doctor`); `snapshot save`/`restore` and `reset` per student, each container kept on
its student's member; `labctl access` lets a student's own client (a separate LXD_CONF) into
their project only, until `--revoke`; every lab serves its domain from the host through its LB's address on
the cluster's LAN bridge; `status` and `check` for the class; one member's daemon stopped: its
student is reported unreachable with the reason, the other two still pass, and `up` of a new
student does not place it on that member; `down` leaves nothing.

labctl runs as a subprocess with the first member's LXD_DIR (its client talks to the cluster
through that member, as an instructor's `lxc` talks to one member's address), with the test's
hosts file bound over /etc/hosts (see test_lxd_labctl.py). Traffic goes only to the cluster's
LAN bridge (10.252.1.0/24). Lab and container names start with the session's prefix "lxt-".
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.host.probes import http_get
from tests.lxd.cluster import LAN_SUBNET, LxdCluster
from tests.lxd.instances import ipv4
from tests.lxd.labctl_run import explain, labctl_env, run_labctl

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

LAB = "lxt"  # containers are lxt-<student>-<vm>: the session's sweep knows the prefix
STUDENTS = ["ann", "bob", "cat"]
LATE = "dan"  # joins after a member went down
# One app per student keeps the tier fast; failover and load-balancing need two apps.
CHECKS = [
    arg
    for name in ("app-online", "domain-resolves", "lb-serves", "reverse-proxy")
    for arg in ("--check", name)
]
LAB_YAML = """\
name: {lab}
engine: {{name: lxd, project: "{lab}-{{student}}"}}
image: labctl-test
class:
  students: [{students}]
  domain: "{{student}}.lxt.lab"
defaults: {{cpus: 1, memory: 512M, disk: 3G}}
app: {{name: hello, source: {{builtin: hello}}, port: 3000}}
vms:
  - {{name: app, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{max_fails: 2, fail_timeout: 5s, read_timeout: 3s, connect_timeout: 1s}}
waits: {{launch: 600s, cloud_init: 600s, serve: 120s}}
snapshots: {{baseline: false}}
"""


def lab_yaml(students: list[str]) -> str:
    return LAB_YAML.format(lab=LAB, students=", ".join(students))


@dataclass
class ClusterClass:
    cluster: LxdCluster
    root: Path
    file: Path
    hosts: Path
    up: subprocess.CompletedProcess[str] | None = None

    def env(self) -> dict[str, str]:
        daemon = self.cluster.members[0]  # never the member the tests stop
        return labctl_env(daemon.env, self.root)

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_labctl(args, file=self.file, hosts=self.hosts, env=self.env(), timeout=timeout)

    def instances(self, avoid: str | None = None) -> dict[str, dict[str, Any]]:
        client = self.cluster.client(avoid)
        listed = client.lxc("list", "--all-projects", "--format", "json", timeout=60).stdout
        # this class's only: other modules on the shared cluster leave their own containers
        ours = tuple(f"{LAB}-{student}-" for student in (*STUDENTS, LATE))
        return {i["name"]: i for i in json.loads(listed) if i["name"].startswith(ours)}

    def json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.labctl(*args, "--json", timeout=600)
        try:
            return result.returncode, json.loads(result.stdout)
        except json.JSONDecodeError:
            raise AssertionError(explain(result)) from None


def serves(lb: str, domain: str) -> bool:
    answers = [http_get(lb, 80, domain, path="/", timeout=10) for _ in range(2)]
    return all(a.status == 200 for a in answers)


@pytest.fixture(scope="module")
def klass(
    lxd_cluster: LxdCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterClass]:
    """The class brought up once for the module; `down` at the end whatever happened (the
    package's teardown deletes anything left, and the last test proves `down` left nothing)."""
    root = tmp_path_factory.mktemp("lxd-class")
    file = root / "lab.yaml"
    file.write_text(lab_yaml(STUDENTS))
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    klass = ClusterClass(lxd_cluster, root, file, hosts)
    lxd_cluster.wait_settled()  # the smoke module restarted members just before
    klass.up = klass.labctl("up", timeout=1200)
    try:
        yield klass
    finally:
        for member in lxd_cluster.members:
            if not member.running():
                lxd_cluster.start_member(member.name)
        if klass.instances():
            klass.labctl("down", timeout=600)


def test_each_students_lab_is_on_one_member_and_the_students_on_different_members(
    klass: ClusterClass,
) -> None:
    assert klass.up is not None and klass.up.returncode == 0, explain(klass.up)
    instances = klass.instances()
    assert sorted(instances) == sorted(f"{LAB}-{s}-{vm}" for s in STUDENTS for vm in ("app", "lb"))
    where = {
        s: {instances[f"{LAB}-{s}-{vm}"]["location"] for vm in ("app", "lb")} for s in STUDENTS
    }
    assert all(len(members) == 1 for members in where.values()), where
    assert sorted(m for members in where.values() for m in members) == klass.cluster.names
    placement = json.loads((klass.root / "state" / LAB / "class.json").read_text())
    assert json.dumps(placement).count('"m') >= len(STUDENTS), placement  # kept for later runs


def test_every_lab_serves_from_the_host_through_its_lbs_lan_address(klass: ClusterClass) -> None:
    instances = klass.instances()
    lan = [str(host) for host in LAN_SUBNET.hosts()]
    for student in STUDENTS:
        lb = ipv4(instances[f"{LAB}-{student}-lb"])
        app = ipv4(instances[f"{LAB}-{student}-app"])
        assert lb in lan and app in lan
        domain = f"{student}.lxt.lab"
        assert f"{lb}\t{domain}" in klass.hosts.read_text()
        answer = http_get(lb, 80, domain, path="/", timeout=10)
        assert answer.status == 200 and answer.backend == f"{app}:3000", answer
        line = klass.labctl("hosts", "--student", student)
        assert line.returncode == 0 and line.stdout.strip() == f"{lb} {domain}", explain(line)


def test_status_and_check_pass_for_the_whole_class(klass: ClusterClass) -> None:
    code, report = klass.json("status")
    unhealthy = [s for s in report["students"] if not s["healthy"]]
    assert code == 0 and not unhealthy, unhealthy
    assert {s["host"] for s in report["students"]} == set(klass.cluster.names)
    code, graded = klass.json("check", *CHECKS)
    failed = {
        lab["student"]: [c for c in lab["checks"] if c["status"] != "pass"] or lab["error"]
        for lab in graded["labs"]
        if not lab["passed"]
    }
    assert code == 0 and graded["passed"] and not failed, failed


def test_doctor_measures_each_member_through_the_cluster(klass: ClusterClass) -> None:
    """No `hosts:`: the members come from the cluster, their figures from LXD on each member
    (all three share this machine: its CPUs, and a root pool whose free space is known)."""
    code, report = klass.json("doctor")
    rows = {row["host"]: row for row in report["hosts"]}
    assert code == 0 and sorted(rows) == klass.cluster.names, report
    for member, row in rows.items():
        assert row["source"] == f"measured by the cluster on member {member}", row
        checks = {check["name"]: check for check in row["checks"]}
        assert f"on {os.cpu_count()} host CPUs" in checks["cpu"]["detail"], checks
        assert checks["memory"]["status"] == "ok" and "available" in checks["memory"]["detail"]
        assert checks["disk"]["status"] == "ok" and "free" in checks["disk"]["detail"], checks


def student_lxc(klass: ClusterClass, conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lxc` on the student's laptop: its own LXD_CONF (no admin socket, no admin certificate)."""
    env = {k: v for k, v in klass.cluster.members[0].env.items() if k != "LXD_DIR"}
    env["LXD_CONF"] = str(conf)
    return subprocess.run(
        ["lxc", *args], capture_output=True, text=True, timeout=120, env=env, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_access_lets_a_students_own_client_into_their_project_only_until_revoked(
    klass: ClusterClass, tmp_path: Path
) -> None:
    first = klass.labctl("access", "--student", "ann", timeout=120)
    assert first.returncode == 0, explain(first)
    granted = klass.labctl("access", "--student", "ann", timeout=120)  # revokes the unused first
    assert granted.returncode == 0, explain(granted)
    add, _, shell = granted.stdout.strip().partition(" && ")
    add_argv = shlex.split(add)
    assert add_argv[:3] == ["lxc", "remote", "add"], granted.stdout
    assert shlex.split(shell) == ["lxc", "exec", f"{LAB}-ann:{LAB}-ann-app", "--", "su", "-l",
                                  "ubuntu"]  # fmt: skip
    remote = add_argv[3]
    assert add_argv[4] not in granted.stderr  # the token only on stdout
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    stale_argv = shlex.split(first.stdout.strip().partition(" && ")[0])
    stale = student_lxc(klass, laptop, "remote", "add", "stale", stale_argv[4])
    assert stale.returncode != 0, explain(stale)
    joined = student_lxc(klass, laptop, *add_argv[1:])
    assert joined.returncode == 0, explain(joined)

    listed = student_lxc(klass, laptop, "list", f"{remote}:", "--format", "json")
    assert listed.returncode == 0, explain(listed)
    assert sorted(i["name"] for i in json.loads(listed.stdout)) == [
        f"{LAB}-ann-app",
        f"{LAB}-ann-lb",
    ]
    inside = student_lxc(klass, laptop, "exec", f"{remote}:{LAB}-ann-app", "--", "hostname")
    assert inside.returncode == 0 and inside.stdout.strip() == f"{LAB}-ann-app", explain(inside)
    other = student_lxc(klass, laptop, "list", f"{remote}:", "--project", f"{LAB}-bob")
    assert other.returncode != 0 and "not authorized" in other.stderr, explain(other)
    bobs = student_lxc(klass, laptop, "exec", f"{remote}:{LAB}-bob-app", "--", "true")
    assert bobs.returncode != 0 and "not found" in bobs.stderr.lower(), explain(bobs)

    revoked = klass.labctl("access", "--student", "ann", "--revoke", timeout=120)
    assert revoked.returncode == 0, explain(revoked)
    after = student_lxc(klass, laptop, "list", f"{remote}:", "--format", "json")
    assert after.returncode != 0 and "not authorized" in after.stderr.lower(), explain(after)


def guest(klass: ClusterClass, student: str, *argv: str) -> str:
    """Run argv as root in the student's app container, through the cluster, in their project."""
    name = f"{LAB}-{student}-app"
    client = klass.cluster.client(None)
    shown = client.lxc("exec", "--project", f"{LAB}-{student}", name, "--", *argv, timeout=120)
    return shown.stdout


def test_the_class_is_snapshotted_a_student_restored_and_another_reset_on_their_member(
    klass: ClusterClass,
) -> None:
    saved = klass.labctl("snapshot", "save", "checkpoint", timeout=900)
    assert saved.returncode == 0, explain(saved)
    for student in STUDENTS:
        listed = klass.labctl("snapshot", "list", "--student", student, timeout=120)
        assert listed.returncode == 0 and "checkpoint" in listed.stdout, explain(listed)
    before = {name: i["location"] for name, i in klass.instances().items()}

    # ann's afternoon undone: her app as it was at the checkpoint; bob's app left as it is
    for student in ("ann", "bob"):
        guest(klass, student, "touch", "/home/ubuntu/after-checkpoint")
    restored = klass.labctl("snapshot", "restore", "checkpoint", "--student", "ann", timeout=900)
    assert restored.returncode == 0, explain(restored)
    assert "after-checkpoint" not in guest(klass, "ann", "ls", "/home/ubuntu")
    assert "after-checkpoint" in guest(klass, "bob", "ls", "/home/ubuntu")

    # bob's app reset: no baseline in this class, so it is launched again, on bob's member
    reset = klass.labctl("reset", "app", "--student", "bob", timeout=900)
    assert reset.returncode == 0, explain(reset)
    assert "after-checkpoint" not in guest(klass, "bob", "ls", "/home/ubuntu")
    after = {name: i["location"] for name, i in klass.instances().items()}
    assert after == before  # every container still on its student's member
    for student in STUDENTS:
        lb = ipv4(klass.instances()[f"{LAB}-{student}-lb"])
        assert lb is not None and serves(lb, f"{student}.lxt.lab"), student


def test_a_stopped_member_makes_only_its_student_unreachable(klass: ClusterClass) -> None:
    cluster = klass.cluster
    located = {i["name"]: i["location"] for i in klass.instances().values()}
    victim = next(s for s in STUDENTS if located[f"{LAB}-{s}-lb"] == cluster.names[-1])
    others = [s for s in STUDENTS if s != victim]
    cluster.stop_member(cluster.names[-1])
    try:
        code, report = klass.json("status", "--student", victim, "--student", others[0])
        by_student = {s["student"]: s for s in report["students"]}
        assert code != 0 and not by_student[victim]["healthy"]
        problems = by_student[victim]["problems"]
        reason = f"unreachable: cluster member {cluster.names[-1]} does not answer"
        assert any(reason in p for p in problems), problems
        assert by_student[others[0]]["healthy"], by_student[others[0]]["problems"]
        code, graded = klass.json("check", *CHECKS)
        passed = {lab["student"]: lab["passed"] for lab in graded["labs"]}
        assert code != 0 and passed == {s: s != victim for s in STUDENTS}, graded
        for student in others:
            lb = ipv4(klass.instances(avoid=cluster.names[-1])[f"{LAB}-{student}-lb"])
            assert lb is not None and serves(lb, f"{student}.lxt.lab")
        # a student who joins now is placed on a member that answers
        klass.file.write_text(lab_yaml([*STUDENTS, LATE]))
        plan = klass.labctl("up", "--student", LATE, timeout=900)
        assert plan.returncode == 0, explain(plan)
        late = {
            klass.instances(avoid=cluster.names[-1])[f"{LAB}-{LATE}-{vm}"]["location"]
            for vm in ("app", "lb")
        }
        assert len(late) == 1 and cluster.names[-1] not in late, late
    finally:
        cluster.start_member(cluster.names[-1])


def test_down_removes_every_students_containers_and_hosts_entries(klass: ClusterClass) -> None:
    result = klass.labctl("down", timeout=600)
    assert result.returncode == 0, explain(result)
    assert klass.instances() == {}
    assert ".lxt.lab" not in klass.hosts.read_text()
    # the students' projects stay, empty, for the next `up` (and their access with them)
    projects = klass.cluster.client().lxc("project", "list", "--format", "json", timeout=60)
    used = {p["name"]: p["used_by"] for p in json.loads(projects.stdout)}
    for student in (*STUDENTS, LATE):
        left = used[f"{LAB}-{student}"]
        assert all(u.startswith("/1.0/profiles/") for u in left), left  # no instance, no image
