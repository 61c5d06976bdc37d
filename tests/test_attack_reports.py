"""The student as attacker: one VM's odd answer never breaks the report of the others.

Whoever has root in a VM chooses what labctl-vm-status (or the status agent, or the instance
marker) answers: a string where a number belongs, an object for a list, a 5000-digit number,
JSON nested a hundred thousand deep, megabytes of anything. Such a VM is reported as not
fitting, in one line naming the field; every other VM is read and judged as usual.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.engine.base import ExecResult, Instance, LaunchSpec, State
from labctl.host.agent import RESPONSE_CONTEXT, AgentError, AgentTarget, fetch_report, lab_key
from labctl.ops.check import check
from labctl.ops.context import classify_instances
from labctl.ops.status import status
from labctl.render.userdata import INSTANCE_MARKER_PATH, VM_STATUS_COMMAND
from tests.fake_multipass.fixture import FakeMultipass
from tests.lab_world import APP_IPS, healthy_vm_status
from tests.peers import within_guard

DEEP = '{"cloud_init": {"status": "done"}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
HUGE_NUMBER = "9" * 5000
NOT_JSON = (  # a huge number or deep nesting is no report labctl-vm-status wrote
    f"health check: {VM_STATUS_COMMAND[-1]} answered something that is not its JSON report "
    "(was this VM provisioned by labctl?)"
)


def app_report(process: str = '{"name": "hello", "status": "online", "restarts": 0}') -> str:
    return (
        '{"cloud_init": {"status": "done"}, '
        f'"app": {{"pm2_daemon": true, "port_open": true, "processes": [{process}]}}}}'
    )


MISFITS = {
    "a string for a number": (
        app_report('{"name": "hello", "status": "online", "restarts": "many"}'),
        "report from app1 does not fit: app.processes[0].restarts is not an integer",
    ),
    "true for a number": (
        app_report('{"name": "hello", "status": "online", "restarts": true}'),
        "report from app1 does not fit: app.processes[0].restarts is not an integer",
    ),
    "a negative pid": (
        app_report('{"name": "hello", "status": "online", "pid": -7}'),
        "report from app1 does not fit: app.processes[0].pid is negative",
    ),
    "a 4000-digit number": (
        app_report('{"name": "hello", "status": "online", "restarts": ' + "9" * 4000 + "}"),
        "report from app1 does not fit: app.processes[0].restarts is too large",
    ),
    "a string for a flag": (
        '{"cloud_init": {"status": "done"}, "app": {"pm2_daemon": "yes"}}',
        "report from app1 does not fit: app.pm2_daemon is not true or false",
    ),
    "an object for a list": (
        '{"cloud_init": {"status": "done"}, "app": {"pm2_daemon": true, "processes": {"a": 1}}}',
        "report from app1 does not fit: app.processes is not a list",
    ),
    "a string for an object": (
        '{"cloud_init": {"status": "done"}, "app": "all fine"}',
        "report from app1 does not fit: app is not an object",
    ),
    "a number for a text": (
        '{"cloud_init": {"status": 5}, "app": null}',
        "report from app1 does not fit: cloud_init.status is not a string",
    ),
    "a list for the report": (
        "[1, 2, 3]",
        "report from app1 does not fit: it is not a JSON object",
    ),
    "too many processes": (
        app_report(", ".join(['{"name": "x"}'] * 1001)),
        "report from app1 does not fit: app.processes has too many items",
    ),
    "a name too long": (
        app_report('{"name": "' + "n" * 2000 + '"}'),
        "report from app1 does not fit: app.processes[0].name is too long",
    ),
    "a 5000-digit number": (
        app_report('{"name": "hello", "restarts": ' + HUGE_NUMBER + "}"),
        NOT_JSON,
    ),
    "JSON nested 100000 deep": (
        DEEP,
        NOT_JSON,
    ),
}


@pytest.mark.parametrize("case", MISFITS)
def test_a_report_that_does_not_fit_is_that_vms_problem_and_the_others_are_read(
    make_world, case: str
) -> None:
    answer, problem = MISFITS[case]
    world = make_world()
    for name, ip in {**APP_IPS, "hello-lb": "127.0.0.1"}.items():
        world.mp.launch(LaunchSpec(name, "24.04", 1, "1G", "5G", "", timeout=60))
        world.mp.vms[name].ipv4 = [ip]
    healthy_vm_status(world.mp)

    def crafted(name: str, argv: list[str]) -> ExecResult | None:
        if name == "hello-app1" and argv == list(VM_STATUS_COMMAND):
            return ExecResult(0, answer, "")
        return None

    world.mp.exec_hook = crafted
    report = within_guard(lambda: status(world.ctx))
    vms = {vm.name: vm for vm in report.vms}
    assert len(vms["app1"].problems) == 1 and vms["app1"].problems[0].startswith(problem)
    assert vms["app1"].pm2 is None and vms["app1"].cloud_init is None
    assert all(vms[name].healthy for name in ("app2", "app3", "lb")), report.problems
    assert vms["app2"].pm2 and vms["app2"].pm2[0].name == "hello"
    json.loads(report.to_json())  # and the report stays one valid JSON document


def test_a_signed_agent_answer_that_does_not_fit_is_reported_not_read_again_by_exec(
    make_world,
) -> None:
    world = make_world()
    for name, ip in {**APP_IPS, "hello-lb": "127.0.0.1"}.items():
        world.mp.launch(LaunchSpec(name, "24.04", 1, "1G", "5G", "", timeout=60))
        world.mp.vms[name].ipv4 = [ip]
    healthy_vm_status(world.mp)
    lab_key(world.ctx.lab_state.directory, create=True)  # as `up` makes it
    by_ip = {ip: name for name, ip in APP_IPS.items()} | {"127.0.0.1": "hello-lb"}

    def agent(target: AgentTarget, timeout: float) -> dict[str, object]:
        name = by_ip[target.address]
        if name == "hello-app2":
            return {"cloud_init": {"status": ["done"]}, "app": {"pm2_daemon": 1}}
        return world.mp.vm_status[name]

    world.ctx.status_agent = agent
    execs = len(world.mp.calls_of("exec"))
    report = status(world.ctx)
    vms = {vm.name: vm for vm in report.vms}
    assert vms["app2"].checked_via == "agent"
    assert vms["app2"].problems == [
        "report from app2 does not fit: cloud_init.status is not a string (and 1 more)"
    ]
    assert all(vms[name].healthy for name in ("app1", "app3", "lb"))
    assert len(world.mp.calls_of("exec")) == execs  # nobody was read by exec


class _SigningAgent:
    """An agent on loopback that signs whatever body it is given with the VM's key."""

    def __init__(self, key: bytes, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                nonce = self.headers.get("X-Labctl-Nonce", "").encode()
                signature = hmac.new(
                    key, RESPONSE_CONTEXT + nonce + b"\n" + body, hashlib.sha256
                ).hexdigest()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Labctl-Auth", signature)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def signing_agent() -> Iterator:
    made: list[_SigningAgent] = []

    def make(key: bytes, body: bytes) -> _SigningAgent:
        made.append(_SigningAgent(key, body))
        return made[-1]

    yield make
    for agent in made:
        agent.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (DEEP.encode(), "recursion limit exceeded"),
        (b'{"n": ' + HUGE_NUMBER.encode() + b"}", "number out of range"),
    ],
    ids=["deep", "huge number"],
)
def test_a_signed_agent_answer_that_is_no_json_we_can_read_is_an_agent_error(
    signing_agent, body: bytes, error: str
) -> None:
    key = os.urandom(32)
    agent = signing_agent(key, body)
    with pytest.raises(AgentError, match=f"status agent answer is not JSON \\({error}") as caught:
        fetch_report(AgentTarget("127.0.0.1", agent.port, key), 5)
    assert not caught.value.hung  # labctl reads that VM by exec instead


def test_an_instance_marker_that_is_no_json_we_can_read_makes_the_instance_foreign(
    make_world,
) -> None:
    world = make_world()
    world.mp.launch(LaunchSpec("hello-app1", "24.04", 1, "1G", "5G", "", timeout=60))
    markers = iter([DEEP, '{"lab": "hello", "vm": ' + HUGE_NUMBER + "}", '{"lab": 1, "vm": 2}'])

    def marker(name: str, argv: list[str]) -> ExecResult | None:
        return ExecResult(0, next(markers), "") if argv == ["cat", INSTANCE_MARKER_PATH] else None

    world.mp.exec_hook = marker
    running = [Instance("hello-app1", State.RUNNING, "Running", ("10.77.0.11",))]
    for _ in range(3):
        owned = classify_instances(world.ctx, running)
        assert "app1" in owned.foreign and "app1" not in owned.ours


# --- end to end: the real CLI, the fake multipass answering crafted bytes ---------------------

LAB = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: app3, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {check: 5s}
"""


def test_status_of_a_lab_whose_vms_answer_crafted_bytes_reports_each_and_exits_1(
    fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    for vm in ("app1", "app2", "app3", "lb"):
        fake_multipass.add_instance(f"hello-{vm}")
    helper = [VM_STATUS_COMMAND[-1]]  # the fake strips sudo
    fake_multipass.on_exec("*", helper, stdout=app_report())
    fake_multipass.on_exec(
        "hello-app1", helper, stdout=app_report('{"restarts": ' + HUGE_NUMBER + "}")
    )
    fake_multipass.on_exec("hello-app2", helper, stdout=DEEP)
    fake_multipass.on_exec("hello-lb", helper, stdout="{" * 1024, repeat=3072)
    (tmp_path / "lab.yaml").write_text(LAB)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(tmp_path / "hosts"),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    result = within_guard(
        lambda: CliRunner().invoke(
            app, ["status", "--json", "-f", str(tmp_path / "lab.yaml")], env=env
        )
    )
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    vms = {vm["name"]: vm for vm in json.loads(result.stdout)["vms"]}
    # a 5000-digit number, JSON nested 100000 deep, 3 MiB of "{" (cut to its head and tail)
    assert [vms[name]["problems"] for name in ("app1", "app2", "lb")] == [[NOT_JSON]] * 3
    assert vms["app3"]["cloud_init"] == "done" and vms["app3"]["pm2"][0]["name"] == "hello"


def test_a_hostile_nginx_dump_is_read_in_linear_time_and_fails_the_reverse_proxy_check(
    check_world,
) -> None:
    world = check_world()
    # the VM's root can make `nginx -T` print anything: here 1 MiB of nested server blocks
    world.guest.nginx_dump = "server {" * (1024 * 1024 // 8)
    checks = within_guard(lambda: check(world.ctx, ["reverse-proxy"]))
    [result] = checks.results
    assert not result.passed
    assert result.reason.startswith("no server block has server_name hello.lab")
