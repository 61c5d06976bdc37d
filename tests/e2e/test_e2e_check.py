"""Course stages and `labctl check` end to end on simulated VMs (real nginx, Node, pm2, cloud-init).

One class of two students is brought up once at stage `app` (the slow part) and shared by every
assertion: the bare lab fails the proxy and LB checks; then, through `labctl exec` as a student
would, ann writes a correct load-balancing site and ben one that proxies to app1 only; `check`
then gives the right matrix, JSON and JUnit. Then both try to fake their grades with root in their
VMs: ben's nginx answers by itself with a backend header alternating between his app VMs (the
proxy_pass in a location nobody requests), ann runs app2's app outside pm2 so that it keeps
answering when `pm2 stop` stops the dummy pm2 shows. Both fakes fail. Traffic goes only to the
simulated VMs' addresses; every request loop is bounded.
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
# ben's fake: nginx makes up the hello app's reply and a backend header that names one app VM or
# the other at random (its random $request_id); the only proxy_pass sits in a location nobody
# requests.
FAKE_SITE = """\
map $request_id $fake_vm {{ ~[0-7]$ app1; default app2; }}
map $fake_vm $fake_backend {{ app1 {app1}:3000; default {app2}:3000; }}
upstream ben_app {{ server {app1}:3000; server {app2}:3000; }}
server {{
    listen 80 default_server;
    server_name ben.class.lab;
    location /nobody-asks/ {{ proxy_pass http://ben_app; }}
    location / {{
        default_type text/plain;
        add_header X-Labctl-Vm $fake_vm always;
        add_header X-Lab-Backend $fake_backend always;
        return 200 "hello from $fake_vm (cls-ben-$fake_vm), pid 7\\n";
    }}
}}
"""
# ann's fake on app2: the hello app started by hand outside pm2 (it keeps its env, so the VM's
# processes stay tagged), and a dummy named hello that pm2 shows online.
ROGUE_APP = """\
pm2 delete hello >/dev/null 2>&1
pm2 start /bin/sleep --name hello --interpreter none -- 86400 >/dev/null || exit 1
(PORT=3000 LABCTL_VM=app2 setsid nohup node /home/ubuntu/app/server.js </dev/null >/dev/null 2>&1 &)
for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && exit 0; sleep 0.2; done
exit 1
"""
WRITE_SITE = (
    'printf "%s" "$1" > /etc/nginx/sites-available/student.conf'
    " && ln -sf /etc/nginx/sites-available/student.conf /etc/nginx/sites-enabled/student.conf"
    " && rm -f /etc/nginx/sites-enabled/default && nginx -t && systemctl reload nginx"
)


def _write_site(lab: SimLab, path: Path, student: str, backends: list[str]) -> None:
    servers = "\n".join(f"    server {lab.ip(f'cls-{student}-{vm}')}:3000;" for vm in backends)
    _write_text_site(lab, path, student, SITE.format(student=student, servers=servers))


def _write_text_site(lab: SimLab, path: Path, student: str, site: str) -> None:
    result = lab.labctl(
        "exec", "lb", "-f", str(path), "--student", student,
        "--", "sudo", "sh", "-c", WRITE_SITE, "sh", site,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _why_not_served(lab: SimLab, path: Path, student: str) -> str:
    """What each app answers directly, what pm2 shows, and the LB's last errors."""
    lines = []
    for vm in ("app1", "app2"):
        page = fetch(lab.ip(f"cls-{student}-{vm}"), 3000, f"{student}.class.lab")
        pm2 = lab.labctl("exec", vm, "-f", str(path), "--student", student, "--", "pm2", "ls")
        lines.append(f"{vm}: HTTP {page.status} {page.error}\n{pm2.stdout}{pm2.stderr}")
    log = lab.labctl(
        "exec", "lb", "-f", str(path), "--student", student,
        "--", "sudo", "tail", "-n", "15", "/var/log/nginx/error.log",
    )  # fmt: skip
    return "\n".join([*lines, log.stdout, log.stderr])


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
    sim_lab.browser = True  # the browser check too: one real headless browser for the class
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
        assert got["browser"] == ("fail", "nginx's welcome page, not the app")
        assert all(got[name][0] == "fail" for name in PROXY_AND_LB), got

    # The students' work: ann balances over both apps, ben proxies to app1 only.
    _write_site(sim_lab, path, "ann", ["app1", "app2"])
    _write_site(sim_lab, path, "ben", ["app1"])
    junit = sim_lab.root / "results.xml"
    code, report = _check(sim_lab, path, "--junit", str(junit))
    assert code == 1
    got = _verdicts(report)
    assert all(status == "pass" for status, _ in got["ann"].values()), got["ann"]
    for student in ("ann", "ben"):  # each student's page, as their browser shows it
        assert got[student]["browser"][1].startswith("the text 'hello from ' rendered in ")
    shots = [
        c["screenshots"] for lab in report["labs"] for c in lab["checks"] if c["name"] == "browser"
    ]
    assert [[s["path"] for s in shot] for shot in shots] == [["/"], ["/"]]
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
            assert page.status == 200, (student, page, _why_not_served(sim_lab, path, student))
            seen.add(page.headers.get("x-labctl-vm"))
        assert seen == backends
    table = sim_lab.labctl("check", "-f", str(path), "--student", "ann")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "all checks pass" in table.stdout

    _fakes_fail(sim_lab, path)
    down = sim_lab.labctl("down", "-f", str(path))
    assert down.returncode == 0, down.stdout + down.stderr


def _fakes_fail(lab: SimLab, path: Path) -> None:
    """ben fakes the LB's answers in nginx, ann serves app2 outside pm2: each fake fails."""
    ips = {vm: lab.ip(f"cls-ben-{vm}") for vm in ("app1", "app2")}
    _write_text_site(lab, path, "ben", FAKE_SITE.format(**ips))
    claimed = set()
    for _ in range(40):  # the fake looks like the real thing to a header-reading client
        page = fetch(lab.ip("cls-ben-lb"), 80, "ben.class.lab")
        assert page.status == 200 and page.body.startswith("hello from app"), page
        claimed.add(page.headers.get("x-labctl-vm"))
        if len(claimed) == 2:
            break
    assert claimed == {"app1", "app2"}
    rogue = lab.labctl(
        "exec", "app2", "-f", str(path), "--student", "ann", "--", "bash", "-c", ROGUE_APP
    )
    assert rogue.returncode == 0, rogue.stdout + rogue.stderr

    code, report = _check(
        lab, path, *(arg for name in ("app-online", *PROXY_AND_LB) for arg in ("--check", name))
    )
    assert code == 1
    got = _verdicts(report)
    ben = got["ben"]
    for name in ("lb-serves", "reverse-proxy", "load-balancing"):
        assert ben[name][0] == "fail", (name, ben[name])
    assert "check file never came through" in ben["load-balancing"][1], ben["load-balancing"]
    assert "is not proxied to the app" in ben["reverse-proxy"][1], ben["reverse-proxy"]
    ann = got["ann"]
    assert ann["app-online"][0] == "fail", ann["app-online"]
    assert ann["app-online"][1].startswith("app2: port 3000 is held by pid "), ann["app-online"]
    assert ann["app-online"][1].endswith("(node), not by pm2's hello"), ann["app-online"]
    assert ann["failover"][0] == "fail", ann["failover"]
    assert ann["failover"][1].startswith(
        "app2 stopped (pm2 stop hello), but port 3000 still answers (HTTP 200)"
    ), ann["failover"]
    # The honest parts of ann's lab still pass: the rogue app is the real app, only not pm2's.
    assert ann["lb-serves"][0] == "pass" and ann["load-balancing"][0] == "pass", ann
