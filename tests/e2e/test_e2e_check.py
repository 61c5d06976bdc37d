"""Course stages and `labctl check` end to end on simulated VMs (real nginx, Node, pm2, cloud-init).

One class of two students is brought up once at stage `app` (the slow part) and shared by every
assertion: the bare lab fails the proxy and LB checks; then, through `labctl exec` as a student
would, ann writes a correct load-balancing site and ben one that proxies to app1 only; `check`
then gives the right matrix, JSON and JUnit. Traffic goes only to the simulated VMs' addresses;
every request loop is bounded.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.host.probes import fetch
from tests.e2e.harness import SimLab

pytestmark = [pytest.mark.sim, pytest.mark.slow]

CLASS = """\
name: cls
stage: app
manage_hosts: true
class:
  students: [ann, ben]
  domain: "{student}.class.lab"
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 300s, cloud_init: 300s, serve: 90s}
snapshots: {baseline: false}
checks:
  - {name: healthz, http: {path: /healthz, text: ok}}
  - {name: default-site-gone, command: {vm: lb, run: "test ! -e /etc/nginx/sites-enabled/default"}}
"""
PROXY_AND_LB = ["reverse-proxy", "lb-serves", "load-balancing", "failover", "healthz"]
# The student's site: plain nginx, no labctl extras (no X-Lab-Backend header, default timeouts).
SITE = """\
upstream {student}_app {{
{servers}
}}
server {{
    listen 80 default_server;
    server_name {student}.class.lab;
    location / {{
        proxy_pass http://{student}_app;
        proxy_set_header Host $host;
    }}
}}
"""
WRITE_SITE = (
    'printf "%s" "$1" > /etc/nginx/sites-available/student.conf'
    " && ln -sf /etc/nginx/sites-available/student.conf /etc/nginx/sites-enabled/student.conf"
    " && rm -f /etc/nginx/sites-enabled/default && nginx -t && systemctl reload nginx"
)


def _write_site(lab: SimLab, path: Path, student: str, backends: list[str]) -> None:
    servers = "\n".join(f"    server {lab.ip(f'cls-{student}-{vm}')}:3000;" for vm in backends)
    site = SITE.format(student=student, servers=servers)
    result = lab.labctl(
        "exec", "lb", "-f", str(path), "--student", student,
        "--", "sudo", "sh", "-c", WRITE_SITE, "sh", site,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _check(lab: SimLab, path: Path, *args: str) -> tuple[int, dict]:
    result = lab.labctl("check", "-f", str(path), "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _verdicts(report: dict) -> dict[str, dict[str, tuple[str, str]]]:
    return {
        lab["student"]: {c["name"]: (c["status"], c["reason"]) for c in lab["checks"]}
        for lab in report["labs"]
    }


def test_a_class_at_stage_app_then_graded_after_the_students_wrote_their_sites(
    sim_lab: SimLab,
) -> None:
    path = sim_lab.root / "lab.yaml"
    path.write_text(CLASS)
    up = sim_lab.labctl("up", "-f", str(path), "--max-parallel", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "2 of 2 student lab(s) up" in up.stdout
    # Stage app: nginx answers with its own default site, the apps answer directly.
    for student in ("ann", "ben"):
        lb_ip = sim_lab.ip(f"cls-{student}-lb")
        page = fetch(lb_ip, 80, f"{student}.class.lab")
        assert page.status == 200 and "Welcome to nginx" in page.body
        app = fetch(sim_lab.ip(f"cls-{student}-app2"), 3000, f"{student}.class.lab")
        assert app.status == 200 and app.body.startswith("hello from app2")
    status = sim_lab.labctl("status", "-f", str(path), "--json")
    assert status.returncode == 0, status.stdout  # what the stage leaves undone is no problem

    # The bare lab: the app checks pass, the proxy and LB checks fail with their reasons.
    code, report = _check(sim_lab, path)
    assert code == 1 and report["passed"] is False
    for student, got in _verdicts(report).items():
        assert got["app-online"][0] == "pass", got["app-online"]
        assert got["domain-resolves"][0] == "pass", got["domain-resolves"]
        assert got["pm2-resurrect"] == (
            "pass",
            "hello comes back after pm2 kill + resurrect; startup enabled",
        )
        assert got["reverse-proxy"] == (
            "fail",
            f"no server block has server_name {student}.class.lab (found: _)",
        )
        assert got["lb-serves"] == (
            "fail",
            f"http://{student}.class.lab/ gives nginx's welcome page, not the app",
        )
        assert got["load-balancing"][0] == "fail" and got["failover"][0] == "fail"
        assert got["default-site-gone"] == ("fail", "lb: exit 1, expected 0")
        assert all(got[name][0] == "fail" for name in PROXY_AND_LB), got

    # The students' work: ann balances over both apps, ben proxies to app1 only.
    _write_site(sim_lab, path, "ann", ["app1", "app2"])
    _write_site(sim_lab, path, "ben", ["app1"])
    junit = sim_lab.root / "results.xml"
    code, report = _check(sim_lab, path, "--junit", str(junit))
    assert code == 1
    got = _verdicts(report)
    assert all(status == "pass" for status, _ in got["ann"].values()), got["ann"]
    assert [lab["passed"] for lab in report["labs"]] == [True, False]
    ben = got["ben"]
    assert ben["reverse-proxy"][0] == "pass" and ben["lb-serves"][0] == "pass", ben
    assert ben["healthz"][0] == "pass" and ben["default-site-gone"][0] == "pass", ben
    assert ben["load-balancing"][0] == "fail"
    assert ben["load-balancing"][1].startswith("app2 never answered"), ben["load-balancing"]
    assert ben["failover"][0] == "fail" and ben["failover"][1].startswith("app1 stopped: ")
    failed = {name for name, (status, _) in ben.items() if status == "fail"}
    assert failed == {"load-balancing", "failover"}

    suites = {s.get("name"): s for s in ET.parse(junit).getroot().findall("testsuite")}
    assert list(suites) == ["ann", "ben"]
    assert suites["ann"].get("failures") == "0" and suites["ben"].get("failures") == "2"
    lb_case = suites["ben"].find("testcase[@name='load-balancing']/failure")
    assert lb_case is not None and lb_case.get("message") == ben["load-balancing"][1]

    # The checks left both labs as they were: every app online, each site still serving.
    for student, backends in (("ann", {"app1", "app2"}), ("ben", {"app1"})):
        seen = set()
        for _ in range(8):
            page = fetch(sim_lab.ip(f"cls-{student}-lb"), 80, f"{student}.class.lab")
            assert page.status == 200, (student, page)
            seen.add(page.headers.get("x-labctl-vm"))
        assert seen == backends
    table = sim_lab.labctl("check", "-f", str(path), "--student", "ann")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "all checks pass" in table.stdout

    down = sim_lab.labctl("down", "-f", str(path))
    assert down.returncode == 0, down.stdout + down.stderr
