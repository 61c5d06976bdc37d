"""The student as attacker: a VM that answers slowly, endlessly or hugely never holds labctl.

A student has root in their VMs and so controls every byte their LB, app and status agent send.
Each test is the attack on loopback (tests/peers.py): a server that trickles a byte now and
then, sends endless or huge headers, or a body that never ends. The requests must end within
their own limit (small limits are passed in to keep the tests fast); the guard around each call
only catches a hang, it measures no speed.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.engine.base import ExecResult, LaunchSpec
from labctl.engine.multipass.adapter import MultipassEngine
from labctl.engine.process import CAPTURE_LIMIT, HeadTail, dropped_marker
from labctl.errors import CommandTimeoutError
from labctl.host.agent import AgentError, AgentTarget, fetch_report, lab_key
from labctl.host.bounded_http import MAX_HEADER_BYTES
from labctl.host.probes import check_domain, fetch, hammer, http_get
from labctl.ops import vm_report
from labctl.ops.check import check
from labctl.ops.classroom.contexts import ClassContext
from labctl.ops.classroom.fanout import class_run
from labctl.ops.classroom.status import class_status
from labctl.render.agent import status_port
from labctl.render.userdata import VM_STATUS_COMMAND
from tests.fake_multipass.fixture import FakeMultipass
from tests.lab_world import hosts_file_resolver
from tests.memory_engine import MemoryEngine, MemoryVm
from tests.peers import Peer, answer, flood, read_request, trickle, within_guard

OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@pytest.fixture
def make_peer():
    made: list[Peer] = []

    def make(script, address: str = "127.0.0.1", port: int = 0) -> Peer:
        made.append(Peer(script, address, port))
        return made[-1]

    yield make
    for peer in made:
        peer.close()


TRICKLES = {
    "the status line": trickle(b"", byte=b"H"),
    "a header": trickle(OK_HEAD + b"X-Slow: "),
    "the body": trickle(OK_HEAD + b"Content-Length: 100000\r\n\r\n"),
    "a chunked body": trickle(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1000\r\n"),
}


@pytest.mark.parametrize("where", TRICKLES)
def test_a_peer_trickling_one_byte_at_a_time_ends_the_request_at_its_timeout(
    make_peer, where: str
) -> None:
    peer = make_peer(TRICKLES[where])
    answer = within_guard(lambda: http_get(peer.address, peer.port, "x.lab", timeout=1.0))
    assert (answer.status, answer.error) == (None, "timed out")
    page = within_guard(lambda: fetch(peer.address, peer.port, "x.lab", timeout=1.0))
    assert (page.status, page.error) == (None, "timed out")


def test_headers_past_their_byte_bound_are_refused(make_peer) -> None:
    # 90 headers of 1 KiB: each line and their count pass http.client's own limits.
    many = OK_HEAD + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(90))
    peer = make_peer(flood(many + b"Content-Length: 2\r\n\r\nok", b"\0", max_bytes=0))
    page = within_guard(lambda: fetch(peer.address, peer.port, "x.lab", timeout=5.0))
    assert page.status is None
    assert page.error == f"answer headers larger than {MAX_HEADER_BYTES} bytes"


@pytest.mark.parametrize(
    ("head", "unit"),
    [(OK_HEAD, b"X-Again: and again\r\n"), (OK_HEAD + b"X-Long: ", b"L")],
    ids=["endless headers", "an endless header line"],
)
def test_endless_headers_end_the_request_at_once(make_peer, head: bytes, unit: bytes) -> None:
    peer = make_peer(flood(head, unit))
    page = within_guard(lambda: fetch(peer.address, peer.port, "x.lab", timeout=30.0))
    # http.client's own bounds (100 headers, 64 KiB a line) or the headers' byte bound
    assert page.status is None and "header" in page.error, page.error


def test_what_a_peer_sends_instead_of_http_is_never_quoted_as_the_error(make_peer) -> None:
    status_line = b"\x1b]52;c;" + b"A" * 60000 + b"\x07 pwned\r\n\r\n"  # no "HTTP/" in front
    peer = make_peer(flood(status_line, b"\0", max_bytes=0))
    page = within_guard(lambda: fetch(peer.address, peer.port, "x.lab", timeout=5.0))
    assert (page.status, page.error) == (None, "not an HTTP answer")
    target = AgentTarget(peer.address, peer.port, os.urandom(32))
    with pytest.raises(AgentError) as caught:
        fetch_report(target, 5.0)
    assert caught.value.message == "status agent failed: not an HTTP answer"


def test_a_body_that_never_ends_is_read_up_to_the_limit_only(make_peer) -> None:
    peer = make_peer(flood(OK_HEAD + b"Content-Type: text/plain\r\n\r\n", b"z"))
    page = within_guard(lambda: fetch(peer.address, peer.port, "x.lab", timeout=30, limit=1000))
    assert page.status == 200 and page.body == "z" * 1000


def test_the_status_agent_client_gives_up_on_a_trickling_agent_as_hung(make_peer) -> None:
    for where in ("a header", "the body"):
        peer = make_peer(TRICKLES[where])
        target = AgentTarget(peer.address, peer.port, os.urandom(32))
        with pytest.raises(AgentError, match="no answer within 1 s") as caught:
            within_guard(lambda target=target: fetch_report(target, 1.0))
        assert caught.value.hung


def _first_fast_then_trickle() -> object:
    served = [0]
    slow = trickle(OK_HEAD + b"X-Slow: ")

    def script(conn: socket.socket, stop: threading.Event) -> None:
        served[0] += 1
        if served[0] > 1:
            slow(conn, stop)
            return
        read_request(conn)
        conn.sendall(OK_HEAD + b"X-Lab-Backend: 10.0.0.1:3000\r\nContent-Length: 2\r\n\r\nok")

    return script


def test_check_domain_keeps_to_its_deadline_when_the_lb_starts_to_trickle(make_peer) -> None:
    peer = make_peer(_first_fast_then_trickle())
    check = within_guard(
        lambda: check_domain(
            "x.lab",
            port=peer.port,
            expected_ip=peer.address,
            expected_backends=frozenset({"10.0.0.1:3000", "10.0.0.2:3000"}),
            requests=20,
            timeout=1.0,
            deadline=2.5,
            resolver=lambda name: [peer.address],
        )
    )
    assert check.statuses[0] == 200 and None in check.statuses
    assert len(check.statuses) <= 4  # 20 requests of 1 s each did not fit in 2.5 s
    assert check.missing_backends == {"10.0.0.2:3000"}


def test_hammer_keeps_to_its_deadline_whatever_each_request_may_take(make_peer) -> None:
    peer = make_peer(TRICKLES["a header"])
    tally = within_guard(
        lambda: hammer(peer.address, peer.port, "x.lab", requests=50, deadline=1.5, timeout=10.0)
    )
    assert tally.total >= 1 and tally.by_status.get("error: timed out") == tally.total


# --- a class: one student's VM stalls, the others are reported as usual ----------------------

CLASS_LAB = """\
name: cls
class: {{students: [alice, bob], domain: "{{student}}.cls.lab"}}
app: {{name: hello, source: {{builtin: hello}}, port: 3000}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {lb_port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 5s, check: 2s}}
manage_hosts: false
"""
# Loopback addresses of the students' VMs: alice's answer at once, bob's LB trickles.
IPS = {
    "cls-alice-app1": "127.0.3.1",
    "cls-alice-lb": "127.0.3.2",
    "cls-bob-app1": "127.0.3.11",
    "cls-bob-lb": "127.0.3.12",
}
HELLO = OK_HEAD + b"X-Labctl-Vm: app1\r\nContent-Length: 16\r\n\r\nhello from app1\n"
HEALTHY_APP = (
    '{"cloud_init": {"status": "done"}, "app": {"pm2_daemon": true, "port_open": true, '
    '"processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 7}]}}'
)
HEALTHY_LB = '{"cloud_init": {"status": "done"}, "nginx": {"active": true, "config_ok": true}}'


@pytest.fixture
def stalled_class(make_peer, tmp_path: Path) -> tuple[ClassContext, MemoryEngine]:
    """A class of two on loopback: alice's lab answers as it should; bob's LB trickles, both
    its nginx (the lab's LB port) and its status agent."""
    lb_http = make_peer(trickle(OK_HEAD + b"X-Slow: "), IPS["cls-bob-lb"])
    lab = parse_lab(CLASS_LAB.format(lb_port=lb_http.port))
    make_peer(trickle(OK_HEAD + b"X-Slow: "), IPS["cls-bob-lb"], status_port(lab))
    proxied = HELLO.replace(
        b"\r\n", b"\r\nX-Lab-Backend: %s:3000\r\n" % IPS["cls-alice-app1"].encode(), 1
    )
    make_peer(answer(proxied), IPS["cls-alice-lb"], lb_http.port)
    for app_vm in ("cls-alice-app1", "cls-bob-app1"):
        make_peer(answer(HELLO), IPS[app_vm], lab.app.port)
    mp = MemoryEngine(ips=IPS)
    for name, ip in IPS.items():
        mp.vms[name] = MemoryVm(name, ipv4=[ip])

    def vm_status(name: str, argv: list[str]) -> ExecResult | None:
        if argv != list(VM_STATUS_COMMAND):
            return None
        return ExecResult(0, HEALTHY_LB if name.endswith("-lb") else HEALTHY_APP, "")

    mp.exec_hook = vm_status
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    for student in ("alice", "bob"):  # as after `up`: each lab has its status-agent key
        lab_key(tmp_path / "state" / f"cls-{student}", create=True)
    cctx = ClassContext(
        lab_file=LabFile(lab, tmp_path / "lab.yaml", "0" * 64),
        hosts_file=hosts,
        resolver=hosts_file_resolver(hosts),
        sleep=lambda s: None,
        probe_interval=0.05,
        can_sudo=lambda: False,
        engine_for=lambda address: mp,
        state_root=tmp_path / "state",
    )
    return cctx, mp


def test_class_status_reports_the_student_whose_vm_trickles_as_hung_and_the_others_as_usual(
    stalled_class: tuple[ClassContext, MemoryEngine],
) -> None:
    cctx, mp = stalled_class
    report = within_guard(lambda: class_status(cctx))
    runs = {run.student: run.result for run in report.students}
    alice, bob = runs["alice"], runs["bob"]
    assert alice is not None and bob is not None
    # alice: no agent listens (refused), so her VMs are read by exec; her lab is healthy
    assert alice.healthy and {vm.checked_via for vm in alice.vms} == {"exec"}
    # bob: the LB's agent took the request and trickled: hung, and not read by exec as well
    bob_vms = {vm.name: vm for vm in bob.vms}
    assert bob_vms["lb"].checked_via == "agent"
    assert bob_vms["lb"].problems == [
        "health check hung: no answer within 2 s (waits.check); the VM may be frozen or "
        "overloaded (restart it, or `labctl reset lb` puts it back to its baseline)"
    ]
    assert bob_vms["app1"].healthy
    assert ("exec", "cls-bob-lb", *VM_STATUS_COMMAND) not in mp.calls
    assert not bob.domain.serving and bob.domain.error == "timed out"


def test_class_check_grades_everyone_and_fails_the_student_whose_lb_trickles(
    stalled_class: tuple[ClassContext, MemoryEngine],
) -> None:
    cctx, _ = stalled_class
    runs = within_guard(
        lambda: class_run(cctx, None, lambda ctx: check(ctx, ["app-online", "lb-serves"]))
    )
    results = {run.student: run.result for run in runs}
    alice, bob = results["alice"], results["bob"]
    assert alice is not None and bob is not None
    # alice is graded on her own lab's answers (her LB answered 200 with the app's page; the
    # stand-ins here cannot serve labctl's check file, which the grade goes on to ask for)
    alice_graded = {r.name: r.reason for r in alice.results}
    assert list(alice_graded) == ["app-online", "lb-serves"]
    assert alice_graded["lb-serves"].startswith("http://alice.cls.lab/ answers 200, but")
    graded = {r.name: r for r in bob.results}
    assert graded["lb-serves"].reason == "http://bob.cls.lab/ via the LB: timed out"


# --- exec: a VM that prints megabytes, a command that outlives its timeout --------------------


def test_a_vm_printing_megabytes_on_both_streams_is_captured_head_and_tail_only(
    fake_multipass: FakeMultipass,
) -> None:
    fake_multipass.add_instance("vm1")
    line = "0123456789abcdef" * 63 + "end of line\n"  # 1 KiB
    fake_multipass.on_exec("vm1", ["chatty"], stdout=line, stderr=line.upper(), repeat=3072)
    mp = MultipassEngine(str(fake_multipass.executable), env=fake_multipass.env)
    result = within_guard(lambda: mp.exec("vm1", ["chatty"], timeout=60))
    assert result.returncode == 0
    dropped = 3072 * len(line) - CAPTURE_LIMIT
    for text, unit in ((result.stdout, line), (result.stderr, line.upper())):
        assert len(text) == CAPTURE_LIMIT + len(dropped_marker(dropped))
        assert text.startswith(unit) and text.endswith(unit)
        assert text.count(f"[labctl: {dropped} bytes of output dropped here]") == 1


def test_the_capture_keeps_the_head_and_the_tail_and_says_what_it_dropped() -> None:
    capture = HeadTail(limit=100)
    for piece in (b"HEAD", b"x" * 500, "é".encode() * 100, b"TAIL"):
        capture.feed(piece)
    text = capture.text()
    assert text.startswith("HEAD" + "x" * 46) and text.endswith("é" * 23 + "TAIL")
    assert f"[labctl: {4 + 500 + 200 + 4 - 100} bytes of output dropped here]" in text
    whole = HeadTail(limit=100)
    whole.feed("é".encode() * 50)  # fits: decoded whole, no character split at the middle
    assert whole.text() == "é" * 50


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_an_exec_past_its_timeout_is_killed_with_every_process_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    stand_in = tmp_path / "multipass"  # a client that starts a helper, then wedges
    stand_in.write_text(
        "#!/bin/sh\n"
        "(i=0; while [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done) &\n"
        f'echo $! > "{pid_file}"\n'
        "exec sleep 60\n"
    )
    stand_in.chmod(0o755)
    try:
        with pytest.raises(CommandTimeoutError):
            within_guard(lambda: MultipassEngine(str(stand_in)).exec("vm1", ["true"], timeout=1))
        helper = int(pid_file.read_text())
        for _ in range(50):  # the kill is sent; the reaping may take a moment (bounded: 5 s)
            if not _alive(helper):
                break
            time.sleep(0.1)
        assert not _alive(helper), "the exec's helper process outlived the timeout"
    finally:
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_an_agent_that_fails_late_leaves_exec_only_the_rest_of_the_vms_time(
    make_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world()  # waits.check: 45 s
    world.mp.launch(LaunchSpec("hello-app1", "24.04", 1, "1G", "5G", "", timeout=60))
    clock = [1000.0]
    monkeypatch.setattr(vm_report, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    took = [30.0]

    def late(target: AgentTarget, timeout: float) -> dict[str, object]:
        clock[0] += took[0]  # a student's agent answers late, and wrongly
        raise AgentError("status agent answer has a wrong signature (not from this VM?)")

    world.ctx.status_agent = late
    timeouts: list[float] = []
    real_exec = world.mp.exec

    def spy(name: str, argv: list[str], **options: Any) -> ExecResult:
        timeouts.append(options["timeout"])
        return real_exec(name, argv, **options)

    monkeypatch.setattr(world.mp, "exec", spy)
    read = vm_report.read_vm_report(world.ctx, "hello-app1", "10.77.0.11", b"k" * 32, "app1")
    assert read.via == "exec" and read.agent_error.startswith("status agent answer has a wrong")
    assert timeouts == [15.0]  # the VM's 45 s, less the 30 the agent took
    took[0] = 44.9
    vm_report.read_vm_report(world.ctx, "hello-app1", "10.77.0.11", b"k" * 32, "app1")
    assert timeouts[-1] == vm_report.MIN_EXEC_TIME  # never less than a short exec needs
