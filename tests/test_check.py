"""`labctl check` with the fakes: every built-in check passing and failing, custom checks,
restoring what the disruptive checks stop, and the report formats (table, JSON, JUnit)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from labctl.cli import jsonout
from labctl.cli.commands.check import print_matrix
from labctl.cli.printers import grades
from labctl.config.load import parse_lab
from labctl.engine.base import ExecResult
from labctl.errors import ConfigError
from labctl.model import BUILTIN_CHECKS
from labctl.ops.check import check, choose_checks
from labctl.ops.checks.base import CheckResult, LabChecks
from labctl.ops.checks.nginxconf import for_domain, server_blocks
from labctl.ops.classroom.fanout import StudentRun
from tests.check_world import APPS, GOOD_NGINX, CheckWorld


def reasons(world: CheckWorld, *only: str) -> dict[str, tuple[bool, str]]:
    result = check(world.ctx, list(only) or None)
    return {r.name: (r.passed, r.reason) for r in result.results}


def test_a_finished_lab_passes_every_builtin_check_in_order(check_world) -> None:
    world = check_world()
    result = check(world.ctx)
    assert [r.name for r in result.results] == list(BUILTIN_CHECKS)
    assert result.passed, [(r.name, r.reason) for r in result.results if not r.passed]
    assert world.guest.online == set(APPS)  # the disruptive checks left it as it was
    assert result.stage == "lb"


def test_app_online_fails_naming_the_vm_whose_app_is_stopped(check_world) -> None:
    world = check_world()
    world.guest.online.discard("app2")
    passed, reason = reasons(world, "app-online")["app-online"]
    assert not passed and reason == "app2: hello is stopped"


def test_app_online_fails_for_a_stopped_vm(check_world) -> None:
    world = check_world()
    world.mp.vms["hello-app3"].state = "Stopped"
    passed, reason = reasons(world, "app-online")["app-online"]
    assert not passed and reason == "app3: VM is Stopped"


def test_domain_resolves_fails_without_the_hosts_entry(check_world) -> None:
    world = check_world()
    world.hosts.write_text("127.0.0.1 localhost\n")
    passed, reason = reasons(world, "domain-resolves")["domain-resolves"]
    assert not passed and reason == "hello.lab resolves to nothing, not the LB 127.0.0.1"


def test_lb_serves_fails_on_nginx_s_welcome_page_and_on_a_502(check_world) -> None:
    world = check_world()
    world.mode = "welcome"
    passed, reason = reasons(world, "lb-serves")["lb-serves"]
    assert not passed and "nginx's welcome page, not the app" in reason
    world.mode, world.retry = "lb", False
    world.guest.online.clear()
    passed, reason = reasons(world, "lb-serves")["lb-serves"]
    assert not passed and reason == "http://hello.lab/ via the LB: HTTP 502"


def test_reverse_proxy_fails_when_nginx_t_fails_or_no_server_names_the_domain(check_world) -> None:
    world = check_world()
    world.guest.nginx_rc = 1
    world.guest.nginx_error = (
        'nginx: [emerg] unknown directive "proxy_pas" in /etc/nginx/sites-enabled/hello:5\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )
    passed, reason = reasons(world, "reverse-proxy")["reverse-proxy"]
    assert not passed
    assert (
        reason
        == 'nginx -t fails: [emerg] unknown directive "proxy_pas" in /etc/nginx/sites-enabled/hello:5'
    )
    world.guest.nginx_rc, world.guest.nginx_error = 0, ""
    world.guest.nginx_dump = GOOD_NGINX.replace("server_name hello.lab;", "server_name _;")
    passed, reason = reasons(world, "reverse-proxy")["reverse-proxy"]
    assert not passed and reason == "no server block has server_name hello.lab (found: _)"
    world.guest.nginx_dump = GOOD_NGINX.replace("proxy_pass http://app;", "root /var/www/html;")
    passed, reason = reasons(world, "reverse-proxy")["reverse-proxy"]
    assert not passed and reason == "the server for hello.lab has no proxy_pass"


def test_load_balancing_fails_naming_the_backends_never_reached(check_world) -> None:
    world = check_world()
    world.mode = "one"
    passed, reason = reasons(world, "load-balancing")["load-balancing"]
    assert not passed
    assert reason.startswith("app2, app3 never answered in 16 requests (seen: app1 x 16)")


def test_failover_fails_without_retry_to_the_next_backend_and_restores(check_world) -> None:
    world = check_world()
    world.retry = False  # a stopped backend's share of requests gets 502
    passed, reason = reasons(world, "failover")["failover"]
    assert not passed
    assert reason.startswith("app1 stopped: ") and "x 502" in reason
    assert world.guest.online == set(APPS)


def test_failover_fails_when_one_backend_carries_everything(check_world) -> None:
    world = check_world()
    world.mode = "one"
    passed, reason = reasons(world, "failover")["failover"]
    assert not passed and reason == "app1 stopped: 10 x 502"
    assert world.guest.online == set(APPS)


def test_failover_restores_every_backend_on_ctrl_c(check_world) -> None:
    world = check_world()
    hook = world.mp.exec_hook
    stops = []

    def interrupting(name: str, argv: list[str]):
        if argv[:2] == ["pm2", "stop"]:
            stops.append(name)
            if len(stops) == 5:  # during "all down": app1 and app2 already stopped
                raise KeyboardInterrupt
        return hook(name, argv)

    world.mp.exec_hook = interrupting
    with pytest.raises(KeyboardInterrupt):
        check(world.ctx, ["failover"])
    assert world.guest.online == set(APPS)
    assert [c for c in world.guest.commands if c[1:3] == ("pm2", "start")]


def test_pm2_resurrect_fails_without_a_saved_list_and_the_app_is_brought_back(
    check_world,
) -> None:
    world = check_world()
    world.guest.saved.discard("app2")
    world.guest.startup.discard("app3")
    passed, reason = reasons(world, "pm2-resurrect")["pm2-resurrect"]
    assert not passed
    assert reason == (
        "app2: hello did not come back (was pm2 save run?); "
        "app3: pm2 startup is not enabled (run pm2 startup, then pm2 save)"
    )
    assert world.guest.online == set(APPS)
    restarts = [
        c[0] for c in world.guest.commands if c[1:3] == ("sh", "-c") and "startOrReload" in c[3]
    ]
    assert restarts == ["app2"]  # only the app resurrect did not bring back


CUSTOM = """\
checks:
  - {name: healthz, http: {path: /healthz, status: 200, text: hello, header: {X-Labctl-Vm: app}}}
  - {name: teapot, http: {path: /, status: 418}, retry: 2, retry_interval: 1s}
  - {name: site-file, command: {vm: lb, run: "test -f /etc/nginx/sites-enabled/hello", exit_code: 0, output: "yes"}}
  - {name: direct, http: {vm: app2, text: app2}}
"""


def test_custom_checks_pass_fail_and_retry(check_world) -> None:
    world = check_world(CUSTOM)
    hook = world.mp.exec_hook
    runs = []

    def command(name: str, argv: list[str]):
        if argv[:2] == ["sh", "-c"] and argv[2].startswith("test -f"):
            runs.append(name)
            return ExecResult(0, "yes\n", "") if len(runs) > 1 else ExecResult(1, "", "")
        return hook(name, argv)

    world.mp.exec_hook = command
    got = reasons(world, "healthz", "teapot", "site-file", "direct")
    assert got["healthz"] == (True, "http://hello.lab/healthz: HTTP 200")
    assert got["teapot"] == (False, "http://hello.lab/: HTTP 200, expected 418")
    assert got["site-file"] == (False, "lb: exit 1, expected 0")  # retry: 0 = one attempt
    assert got["direct"] == (True, "http://hello.lab/ on app2: HTTP 200")
    assert runs == ["hello-lb"]


def test_a_custom_command_check_retries_until_it_passes(check_world) -> None:
    world = check_world(
        'checks: [{name: eventually, command: {vm: app1, run: "x"}, retry: 3, retry_interval: 1s}]\n'
    )
    hook = world.mp.exec_hook
    attempts = []

    def flaky(name: str, argv: list[str]):
        if argv == ["sh", "-c", "x"]:
            attempts.append(name)
            return ExecResult(0 if len(attempts) == 3 else 1, "", "not yet\n")
        return hook(name, argv)

    world.mp.exec_hook = flaky
    assert reasons(world, "eventually")["eventually"] == (True, "app1: exit 0")
    assert len(attempts) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("checks: [{name: failover, command: {vm: lb, run: x}}]", "is a built-in check's name"),
        (
            "checks: [{name: a, command: {vm: lb, run: x}}, {name: a, command: {vm: lb, run: y}}]",
            "duplicate check 'a' (also checks[0])",
        ),
        ("checks: [{name: a}]", "give exactly one of http or command"),
        ("checks: [{name: a, command: {vm: db, run: x}}]", "no VM named 'db'"),
        ("checks: [{name: a, http: {path: nope}}]", "checks[0].http.path"),
        ("checks: [{name: a, http: {}, retry: 99}]", "checks[0].retry"),
        ("stage: done", "stage"),
    ],
)
def test_bad_checks_and_stages_are_refused_with_their_line(extra: str, message: str) -> None:
    text = (
        "name: hello\ndomain: hello.lab\nvms: [{name: app1, roles: [app]}, {name: lb, roles: [lb]}]\n"
        + extra
        + "\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_lab(text)
    assert any(message in line and line.startswith("lab.yaml:") for line in err.value.problems), (
        err.value.problems
    )


def test_an_unknown_check_name_is_bad_input() -> None:
    lab = parse_lab(
        "name: h\ndomain: h.lab\nvms: [{name: a, roles: [app, lb]}]\napp: {port: 3000}\n"
    )
    with pytest.raises(ConfigError) as err:
        choose_checks(lab, ["failovr"])
    assert "--check failovr: no such check" in err.value.problems[0]
    assert choose_checks(lab, ["failover", "app-online"]) == ["app-online", "failover"]


def test_nginx_dump_parsing_finds_servers_names_and_upstreams() -> None:
    blocks = server_blocks(
        GOOD_NGINX + 'server { listen 8080; server_name "other.lab" ; return 200; } # x { }\n'
    )
    assert [b.names for b in blocks] == [["hello.lab"], ["other.lab"]]
    mine = for_domain(blocks, "HELLO.lab")
    assert mine[0].proxy_passes == ["http://app"]
    assert mine[0].upstreams == {"app": ["10.0.0.11:3000", "10.0.0.12:3000", "10.0.0.13:3000"]}


def _runs() -> list[StudentRun[LabChecks]]:
    good = LabChecks("c-alice", "alice.lab", "app", [CheckResult("lb-serves", True, "ok", 0.25)])
    bad = LabChecks(
        "c-bob",
        "bob.lab",
        "app",
        [CheckResult("lb-serves", False, "http://bob.lab/ via the LB: HTTP 502", 1.5)],
    )
    return [
        StudentRun("alice", "local", None, "c-alice", "alice.lab", result=good),
        StudentRun("bob", "local", None, "c-bob", "bob.lab", result=bad),
        StudentRun(
            "carol", "local", None, "c-carol", "carol.lab", error="lab is busy", exit_code=1
        ),
    ]


def test_json_is_one_document_per_student_per_check() -> None:
    data = json.loads(jsonout.document(grades.checks_document(grades.from_runs(_runs()))))
    assert data["passed"] is False
    assert [(lab["student"], lab["passed"]) for lab in data["labs"]] == [
        ("alice", True),
        ("bob", False),
        ("carol", False),
    ]
    assert data["labs"][1]["checks"] == [
        {
            "name": "lb-serves",
            "passed": False,
            "reason": "http://bob.lab/ via the LB: HTTP 502",
            "seconds": 1.5,
            "screenshots": [],
            "status": "fail",
        }
    ]
    assert data["labs"][2]["error"] == "lab is busy" and data["labs"][2]["checks"] == []


def test_junit_has_a_testsuite_per_student_and_a_failure_with_the_reason() -> None:
    root = ET.fromstring(grades.checks_junit(grades.from_runs(_runs())))
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["alice", "bob", "carol"]
    bob_case = suites["bob"].find("testcase")
    assert bob_case is not None and bob_case.get("name") == "lb-serves"
    failure = bob_case.find("failure")
    assert failure is not None and failure.get("message") == "http://bob.lab/ via the LB: HTTP 502"
    assert suites["alice"].find("testcase/failure") is None
    error = suites["carol"].find("testcase/error")
    assert error is not None and error.get("message") == "lab is busy"


def test_the_matrix_shows_each_student_and_why_each_fail_failed() -> None:
    console = Console(record=True, width=120, color_system=None)
    print_matrix(console, grades.from_runs(_runs()), ["lb-serves"])
    text = console.export_text()
    assert "alice" in text and "PASS" in text and "FAIL" in text
    assert "bob lb-serves: http://bob.lab/ via the LB: HTTP 502" in text
    assert "carol: not checked: lab is busy" in text
    assert "1/3 labs pass every check" in text
