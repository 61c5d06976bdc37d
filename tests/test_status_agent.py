"""The in-VM status agent (cloud-init/status_agent.py) and labctl's side of it.

The real agent script runs here as a process on 127.0.0.1 (loopback only) with its real
labctl-vm-status; labctl's client talks to it for real, signatures and all.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from labctl.config.load import parse_lab
from labctl.host.agent import AgentError, AgentTarget, fetch_report, lab_key, vm_key
from labctl.ops.status import status
from labctl.ops.up import up
from labctl.ops.vm_report import read_vm_report
from labctl.render.agent import KEY_PLACEHOLDER, STATUS_AGENT_KEY_PATH, status_port
from labctl.render.assets import read_assets
from labctl.render.userdata import render_user_data
from tests.lab_world import APP_IPS, healthy_vm_status

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "cloud-init" / "status_agent.py"
VM_STATUS = ROOT / "cloud-init" / "vm_status.py"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """The real agent on 127.0.0.1:<free port>, no app/lb role, with its own key."""
    key = os.urandom(32)
    port = free_port()
    (tmp_path / "agent.key").write_text(key.hex() + "\n")
    config = {
        "app": None,
        "lb": None,
        "status_agent": {
            "address": "127.0.0.1",
            "port": port,
            "key_file": str(tmp_path / "agent.key"),
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "LABCTL_CONFIG": str(tmp_path / "config.json"),
        "LABCTL_VM_STATUS": str(VM_STATUS),
    }
    proc = subprocess.Popen([SYSTEM_PYTHON, "-I", str(AGENT)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"agent did not start: {proc.stderr.read()!r}") from None
                time.sleep(0.05)
        yield port, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_real_agent_answers_a_signed_request_with_the_vm_status_report(agent) -> None:
    port, key = agent
    report = fetch_report(AgentTarget("127.0.0.1", port, key), 30)
    assert set(report) == {"cloud_init", "app", "nginx"}
    assert report["app"] is None and report["nginx"] is None
    assert isinstance(report["cloud_init"]["status"], str)


def test_the_agent_refuses_a_wrong_key_and_labctl_refuses_a_forged_answer(agent) -> None:
    port, _ = agent
    with pytest.raises(AgentError, match="HTTP 403") as refused:
        fetch_report(AgentTarget("127.0.0.1", port, os.urandom(32)), 30)
    assert not refused.value.hung
    # Unsigned requests get nothing computed and no body.
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /v1/status HTTP/1.0\r\nX-Labctl-Nonce: " + b"a" * 32 + b"\r\n\r\n")
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.0 403") and answer.endswith(b"\r\n\r\n")


class _Server:
    """A loopback HTTP server that answers like an agent would, but signs with another key or
    never answers at all."""

    def __init__(self, *, hang: bool) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if hang:
                    time.sleep(3)
                    return
                body = b'{"cloud_init": {"status": "done"}}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Labctl-Auth", "0" * 64)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_forged_answers_hangs_and_closed_ports_are_told_apart() -> None:
    forger = _Server(hang=False)
    hanger = _Server(hang=True)
    try:
        with pytest.raises(AgentError, match="wrong signature") as forged:
            fetch_report(AgentTarget("127.0.0.1", forger.port, os.urandom(32)), 5)
        assert not forged.value.hung
        with pytest.raises(AgentError, match="no answer within 1 s") as hung:
            fetch_report(AgentTarget("127.0.0.1", hanger.port, os.urandom(32)), 1)
        assert hung.value.hung
    finally:
        forger.close()
        hanger.close()
    with pytest.raises(AgentError, match="unreachable") as closed:
        fetch_report(AgentTarget("127.0.0.1", free_port(), os.urandom(32)), 5)
    assert not closed.value.hung


def _agent_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("status_agent_under_test", str(AGENT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_concurrent_requests_share_one_computation_and_a_final_cloud_init_is_kept() -> None:
    agent = _agent_module()
    calls = {"report": 0, "cloud_init": 0}
    gate = threading.Event()

    class FakeVmStatus:
        @staticmethod
        def cloud_init_status() -> dict[str, Any]:
            calls["cloud_init"] += 1
            return {"status": "running" if calls["cloud_init"] == 1 else "done", "errors": []}

        @staticmethod
        def build_report(cloud_init: Any) -> dict[str, Any]:
            calls["report"] += 1
            gate.wait(5)
            return {"cloud_init": cloud_init(), "n": calls["report"]}

    reports = agent.Reports(FakeVmStatus)
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(reports.fresh())) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    gate.set()
    for thread in threads:
        thread.join(10)
    # One computation was running when the others came: they waited for one more, not five.
    assert len(bodies) == 6 and calls["report"] <= 2
    for _ in range(3):
        reports.fresh()  # each one computes again: an answer never predates its request
    assert calls["report"] <= 5
    assert json.loads(reports.fresh())["cloud_init"]["status"] == "done"
    assert calls["cloud_init"] == 2  # "done" is final for this boot: asked once, then kept


def test_the_agent_refuses_everything_with_the_render_placeholder_key(tmp_path: Path) -> None:
    agent = _agent_module()
    (tmp_path / "k").write_text(KEY_PLACEHOLDER + "\n")
    assert agent.read_key(tmp_path / "k") is None
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    assert agent.read_key(tmp_path / "k") == bytes.fromhex("ab" * 32)


def test_up_makes_one_private_lab_key_and_each_vm_gets_its_own(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    directory = world.ctx.lab_state.directory
    key = lab_key(directory, create=False)
    assert key is not None
    assert stat.S_IMODE((directory / "status-agent.key").stat().st_mode) == 0o600
    seen = set()
    for name, vm in world.mp.vms.items():
        data = yaml.safe_load(vm.user_data)
        [entry] = [f for f in data["write_files"] if f["path"] == STATUS_AGENT_KEY_PATH]
        assert entry["permissions"] == "0600"
        assert entry["content"].strip() == vm_key(key, name).hex()
        seen.add(entry["content"])
    assert len(seen) == len(world.mp.vms)
    assert lab_key(directory, create=True) == key  # kept, not replaced


def test_render_without_a_key_shows_the_placeholder_and_the_agent_port_avoids_the_lab_ports() -> (
    None
):
    lab = parse_lab(
        "name: p\ndomain: p.lab\napp: {name: hello, source: {builtin: hello}, port: 7391}\n"
        "vms:\n  - {name: a, roles: [app, lb]}\n"
    )
    data = yaml.safe_load(render_user_data(lab, lab.vms[0], read_assets()))
    [entry] = [f for f in data["write_files"] if f["path"] == STATUS_AGENT_KEY_PATH]
    assert entry["content"].strip() == KEY_PLACEHOLDER
    assert status_port(lab) == 7392
    [config] = [f for f in data["write_files"] if f["path"] == "/etc/labctl/config.json"]
    assert json.loads(config["content"])["status_agent"]["port"] == 7392
    assert data["runcmd"][1:3] == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "labctl-status-agent.service"],
    ]


def test_status_reads_agents_falls_back_to_exec_and_never_execs_a_hung_vm(make_world) -> None:
    world = make_world()
    assert up(world.ctx).ok
    healthy_vm_status(world.mp)
    by_ip = {ip: name for name, ip in APP_IPS.items()} | {"127.0.0.1": "hello-lb"}
    key = lab_key(world.ctx.lab_state.directory, create=False)
    assert key is not None
    asked: list[str] = []

    def stand_in(target: AgentTarget, timeout: float) -> dict[str, Any]:
        # Answers for the VM whose address was asked, as its agent would, with its own key.
        name = by_ip[target.address]
        asked.append(name)
        assert target.key == vm_key(key, name) and target.port == status_port(world.ctx.lab)
        if name == "hello-app2":
            raise AgentError("status agent unreachable: [Errno 111] Connection refused")
        return world.mp.vm_status[name]

    world.ctx.status_agent = stand_in
    execs_before = len(world.mp.calls_of("exec"))
    report = status(world.ctx)
    assert report.healthy, report.problems
    via = {vm.name: vm.checked_via for vm in report.vms}
    assert via == {"app1": "agent", "app2": "exec", "app3": "agent", "lb": "agent"}
    assert sorted(asked) == ["hello-app1", "hello-app2", "hello-app3", "hello-lb"]
    execs = world.mp.calls_of("exec")[execs_before:]
    assert [c[1] for c in execs] == ["hello-app2"]  # only the VM without an agent
    # The same facts as by exec, VM by VM; only how they were read differs.
    world.ctx.status_agent = None
    by_exec = status(world.ctx).to_dict()["vms"]
    by_agent = report.to_dict()["vms"]
    assert [vm["checked_via"] for vm in by_exec] == ["exec"] * 4
    assert next(vm for vm in by_agent if vm["name"] == "app2")["agent_error"].startswith(
        "status agent unreachable"
    )
    for vm in (*by_exec, *by_agent):
        vm.pop("checked_via")
        vm.pop("agent_error")
    assert by_agent == by_exec
    assert by_agent[0]["pm2"] and by_agent[0]["app_port_open"] is True

    def hung(target: AgentTarget, timeout: float) -> dict[str, Any]:
        raise AgentError("no answer within 45 s", hung=True)

    world.ctx.status_agent = hung
    execs_before = len(world.mp.calls_of("exec"))
    read = read_vm_report(world.ctx, "hello-app1", APP_IPS["hello-app1"], key)
    assert read.report is None and read.via == "agent"
    assert read.problem.startswith("health check hung: no answer within 45 s (waits.check)")
    assert len(world.mp.calls_of("exec")) == execs_before  # a hung VM is not exec'ed as well


def test_idle_connections_are_bounded_and_do_not_outlive_the_bound(agent) -> None:
    port, key = agent
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(32)]
    try:
        time.sleep(0.3)  # the agent has taken them all
        with pytest.raises(AgentError):  # the 33rd is closed at once, not queued
            fetch_report(AgentTarget("127.0.0.1", port, key), 5)
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # closed by their clients: the slots come back
        try:
            assert "cloud_init" in fetch_report(AgentTarget("127.0.0.1", port, key), 30)
            break
        except AgentError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# --- the agent under attack: replays, stale requests, slow clients ----------------------------


class _CountingReports:
    def __init__(self) -> None:
        self.computed = 0

    def fresh(self) -> bytes:
        self.computed += 1
        return b'{"cloud_init": {"status": "done"}}'


@pytest.fixture
def in_process_agent() -> Iterator[Any]:
    """The agent's server in this process (its Reports counted), on 127.0.0.1."""
    module = _agent_module()
    servers: list[Any] = []

    def start(**options: Any) -> Any:
        server = module.Agent(("127.0.0.1", 0), os.urandom(32), _CountingReports(), **options)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _signed_request(key: bytes, *, issued: float | None = None) -> bytes:
    """The bytes of one signed GET, as labctl sends it (nonce: issue time + 128 random bits)."""
    nonce = f"{int(time.time() if issued is None else issued):016x}{os.urandom(16).hex()}"
    agent = _agent_module()
    auth = agent.sign(key, agent.REQUEST_CONTEXT, nonce.encode())
    return (
        f"GET /v1/status HTTP/1.0\r\nX-Labctl-Nonce: {nonce}\r\nX-Labctl-Auth: {auth}\r\n\r\n"
    ).encode()


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_replayed_signed_request_is_refused_without_computing_again(in_process_agent) -> None:
    server = in_process_agent()
    port = server.server_address[1]
    request = _signed_request(server.key)  # as a neighbour on the bridge would capture it
    first = _send(port, request)
    assert first.startswith(b"HTTP/1.0 200") and b'"done"' in first
    for _ in range(3):
        again = _send(port, request)
        assert again.startswith(b"HTTP/1.0 403") and b"X-Labctl-Refused: replay" in again
    assert server.reports.computed == 1


def test_a_signed_request_outside_its_time_window_is_refused(in_process_agent) -> None:
    server = in_process_agent()
    port = server.server_address[1]
    for off_by in (-3600, 3600):  # kept for an hour, or made for later
        answer = _send(port, _signed_request(server.key, issued=time.time() + off_by))
        assert answer.startswith(b"HTTP/1.0 403") and b"X-Labctl-Refused: time" in answer
    assert server.reports.computed == 0
    # labctl's client says what that means
    with pytest.raises(AgentError, match=r"HTTP 403 \(wrong signature"):
        fetch_report(AgentTarget("127.0.0.1", port, os.urandom(32)), 5)


def test_remembered_nonces_are_bounded_and_forgotten_after_their_window() -> None:
    nonces = _agent_module().Nonces(window=300, capacity=2)
    now = 1_000_000.0
    assert nonces.admit("a", now, now) == "" and nonces.admit("b", now, now) == ""
    assert nonces.admit("a", now, now + 1) == "replay"
    assert nonces.admit("c", now, now + 1) == "busy"  # full of nonces still in their window
    assert nonces.admit("c", now + 400, now + 400) == ""  # a and b are out of it: forgotten
    assert nonces.admit("a", now, now + 400) == "time"  # and a replay of a would be stale


def test_slow_clients_sending_a_byte_now_and_then_cannot_hold_the_connection_slots(
    in_process_agent,
) -> None:
    server = in_process_agent(request_timeout=1.0)
    port = server.server_address[1]
    stop = threading.Event()

    def slow_client() -> None:  # a byte every 0.3 s: never idle long enough for a read timeout
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for byte in b"GET /v1/status HTTP/1.0\r\nX-Slow: " + b"a" * 60:
                if stop.wait(0.3):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return  # cut off by the agent

    clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(32)]
    for client in clients:
        client.start()
    try:
        answered = None
        for _ in range(40):  # up to 8 s while the slow clients keep trickling (bounded: 60 bytes)
            try:
                answered = fetch_report(AgentTarget("127.0.0.1", port, server.key), 5)
                break
            except AgentError:
                time.sleep(0.2)
        assert answered == {"cloud_init": {"status": "done"}}
    finally:
        stop.set()
        for client in clients:
            client.join(5)
