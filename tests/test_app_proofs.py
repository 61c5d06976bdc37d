"""The two things `labctl check` builds its app verdicts on, inside the VM: the hello app serving
labctl's check file (and nothing else from its folder), and labctl-vm-status naming who holds the
app's port (pm2's app, its child, the pm2 daemon of a cluster app, or a stranger). Real processes
on loopback only; every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from labctl.host.probes import fetch
from labctl.ops.status import PortListener, _listeners
from labctl.ops.vm_schema import AnswerMisfitError, report_of
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
HOLD_PORT = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('ready', flush=True); time.sleep(60)\n"
)


def vm_status() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vm_status", ROOT / "cloud-init" / "vm_status.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def holder() -> Iterator[tuple[int, int]]:
    """A shell (standing in for pm2's process) whose child python holds a port: (shell pid, port)."""
    port = free_port()
    parent = subprocess.Popen(
        ["bash", "-c", f'{sys.executable} -c "$1" {port}; true', "bash", HOLD_PORT],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed whole below
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        yield parent.pid, port
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)


def test_the_listener_belongs_to_the_pm2_process_it_descends_from(holder) -> None:
    status = vm_status()
    shell, port = holder
    entries = [{"name": "hello", "pid": shell, "pm2_env": {"exec_mode": "fork_mode"}}]
    [listener] = status.port_listeners(port, entries, None)
    assert listener["pm2"] == ["hello"] and listener["pid"] != shell
    assert listener["command"].startswith("python")


def test_a_listener_outside_pm2_belongs_to_no_pm2_process(holder) -> None:
    status = vm_status()
    _, port = holder
    entries = [{"name": "hello", "pid": 999_999_999, "pm2_env": {"exec_mode": "fork_mode"}}]
    [listener] = status.port_listeners(port, entries, None)
    assert listener["pm2"] == []
    assert status.port_listeners(free_port(), entries, None) == []  # nothing listens there


def test_the_pm2_daemon_holds_the_port_for_a_cluster_app(holder) -> None:
    status = vm_status()
    _, port = holder
    [stranger] = status.port_listeners(port, [], None)
    entries = [
        {"name": "api", "pid": 12, "pm2_env": {"exec_mode": "cluster_mode"}},
        {"name": "other", "pid": 13, "pm2_env": {"exec_mode": "fork_mode"}},
    ]
    [listener] = status.port_listeners(port, entries, stranger["pid"])
    assert listener["pm2"] == ["api"]


def test_the_report_s_listeners_are_read_through_the_schema() -> None:
    assert _listeners(None) is None and _listeners([]) == []  # None: an older report has none
    doc = report_of({"app": {"listeners": [{"pid": 7, "command": "node", "pm2": ["hello"]}]}})
    assert doc.app is not None
    assert _listeners(doc.app.listeners) == [PortListener(7, "node", ["hello"])]
    odd = ["x", [1], [{"pid": "7"}], [{"command": 5}], [{"pm2": ["hello", 3]}], [{"pid": True}]]
    for listeners in odd:  # the VM's answer does not fit: reported as such, never guessed at
        with pytest.raises(AnswerMisfitError, match=r"^app\.listeners"):
            report_of({"app": {"listeners": listeners}})


@pytest.fixture
def hello(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    node = shutil.which("node")
    skip_or_fail(None if node else "needs node (make test installs it)", "hello app")
    assert node is not None
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(ROOT / "cloud-init" / "hello" / "server.js", folder / "server.js")
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "LABCTL_VM": "app1", "PATH": "/usr/bin:/bin"}
    app = subprocess.Popen([node, str(folder / "server.js")], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):  # bounded: about 10 s
            if fetch("127.0.0.1", port, "x", path="/healthz", timeout=1).status == 200:
                break
            time.sleep(0.1)
        yield folder, port
    finally:
        app.kill()
        app.wait(timeout=10)


def test_the_hello_app_serves_labctl_s_check_file_from_its_folder_and_nothing_else(hello) -> None:
    folder, port = hello
    name = "labctl-check-" + "ab" * 16 + ".txt"
    assert fetch("127.0.0.1", port, "x", path=f"/{name}").status == 404
    (folder / name).write_text("f00d\n")
    page = fetch("127.0.0.1", port, "x", path=f"/{name}")
    assert page.status == 200 and page.body == "f00d\n"
    assert page.headers["cache-control"] == "no-store"
    for other in ("/server.js", "/labctl-check-xyz.txt", f"/sub/{name}", f"/{name}.bak"):
        answer = fetch("127.0.0.1", port, "x", path=other)
        assert answer.status == 200 and answer.body.startswith("hello from app1"), other
