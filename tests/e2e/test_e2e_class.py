"""A 2-student class end to end on simulated VMs: each student's domain serves through that
student's own LB and only that student's backends, and the hosts file maps each domain to the
right LB. Traffic goes only to the simulated VMs' addresses; request loops are bounded."""

from __future__ import annotations

import json

import pytest

from tests.e2e.harness import SimLab

pytestmark = [pytest.mark.sim, pytest.mark.slow]

CLASS = """\
name: cls
class:
  students: [ann, ben]
  domain: "{student}.class.lab"
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
lb: {max_fails: 2, fail_timeout: 5s, read_timeout: 3s, connect_timeout: 1s}
waits: {launch: 300s, cloud_init: 300s, serve: 90s}
snapshots: {baseline: false}
"""
STUDENTS = ("ann", "ben")


def lb_evidence(sim_lab: SimLab, student: str) -> str:
    """The student's LB as nginx sees it: the site it serves, its error log, its processes, and
    the addresses of the class's VMs, for a domain that did not serve as `up` promised."""
    shell = (
        "cat /etc/nginx/sites-enabled/*; tail -n 20 /var/log/nginx/error.log; "
        "ps -eo pid,ppid,lstart,args | grep [n]ginx; ls -l --full-time /etc/nginx/sites-enabled/"
    )
    inside = sim_lab.multipass_cmd("exec", f"cls-{student}-lb", "--", "sh", "-c", shell)
    addresses = {name: inst.get("ipv4") for name, inst in sim_lab.instances().items()}
    return f"{inside.stdout}{inside.stderr}\naddresses: {addresses}"


def test_two_students_each_domain_serves_only_its_own_backends(sim_lab: SimLab) -> None:
    path = sim_lab.root / "lab.yaml"
    path.write_text(CLASS)
    original_hosts = sim_lab.hosts.read_text()
    up = sim_lab.labctl("up", "-f", str(path), "--max-parallel", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "2 of 2 student lab(s) up" in up.stdout
    assert len(sim_lab.fake.calls("launch")) == 6
    assert sim_lab.fake.max_concurrent("launch") <= 3

    hosts = sim_lab.hosts.read_text()
    for student in STUDENTS:
        lb_ip = sim_lab.ip(f"cls-{student}-lb")
        block = f"# BEGIN labctl cls-{student}\n{lb_ip}\t{student}.class.lab\n# END labctl cls-{student}\n"
        assert block in hosts

    for student in STUDENTS:
        own = {f"{sim_lab.ip(f'cls-{student}-{vm}')}:3000" for vm in ("app1", "app2")}
        tally = sim_lab.hammer(f"cls-{student}-lb", f"{student}.class.lab", requests=20)
        assert tally.ok == 20, (tally.by_status, lb_evidence(sim_lab, student), up.stdout)
        assert set(tally.by_backend) == own  # only this student's backends, both of them

    status = sim_lab.labctl("status", "-f", str(path), "--json")
    report = json.loads(status.stdout)
    assert status.returncode == 0, report["summary"]
    assert [row["student"] for row in report["students"]] == list(STUDENTS)
    for row in report["students"]:
        assert row["healthy"] and row["matrix"]["domain"] == "serving"
        assert row["status"]["domain"]["backends_seen"] == ["app1", "app2"]

    one = sim_lab.labctl("status", "-f", str(path), "--student", "ben", "--json")
    assert [row["student"] for row in json.loads(one.stdout)["students"]] == ["ben"]

    down = sim_lab.labctl("down", "-f", str(path))
    assert down.returncode == 0, down.stdout + down.stderr
    assert sim_lab.instances() == {}
    assert sim_lab.hosts.read_text() == original_hosts
