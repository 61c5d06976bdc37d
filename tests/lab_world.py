"""A small world for use-case tests: the in-memory Multipass plus a loopback stand-in for the LB."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.host.state import LabState
from labctl.ops.context import Event, LabContext, RunOptions
from tests.memory_engine import MemoryEngine

APP_IPS = {"hello-app1": "10.77.0.11", "hello-app2": "10.77.0.12", "hello-app3": "10.77.0.13"}


class StandInLb:
    """Answers like the rendered nginx site would: round robin over the `server` lines that
    labctl pushed to the LB VM, naming the backend in X-Lab-Backend. 503 before any push."""

    def __init__(self, mp: MemoryEngine, lb_instance: str) -> None:
        self.mp, self.lb_instance = mp, lb_instance
        self.counter = 0
        self.dead: set[str] = set()
        self.failover = True  # False: a dead backend's share of requests gets 502 (no retry)
        self.only: str | None = None  # route everything to one backend (a single-upstream site)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                vm = outer.mp.vms.get(outer.lb_instance)
                servers = re.findall(r"server (\S+:\d+)", vm.site if vm else "")
                if outer.only:
                    servers = [outer.only]
                alive = [s for s in servers if s not in outer.dead] if outer.failover else servers
                pick = alive[outer.counter % len(alive)] if alive else None
                outer.counter += 1
                if pick is None or pick in outer.dead:
                    self.send_response(503 if not servers else 502)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", pick)
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class World:
    ctx: LabContext
    mp: MemoryEngine
    lb: StandInLb
    hosts: Path
    events: list[Event]

    def hosts_text(self) -> str:
        return self.hosts.read_text()


def with_options(ctx: LabContext, **options: Any) -> LabContext:
    """The same lab as a new command would open it, with these command-line options."""
    return replace(ctx, options=RunOptions(**options))


def lab_text(port: int, *, serve: str = "5s", manage_hosts: bool = True) -> str:
    return f"""\
name: hello
domain: hello.lab
app: {{name: hello, source: {{builtin: hello}}, port: 3000}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: app3, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: {serve}}}
manage_hosts: {str(manage_hosts).lower()}
"""


def hosts_file_resolver(path: Path):  # the system resolver's files backend, on our temp hosts file
    def resolve(name: str) -> list[str]:
        found = []
        for line in path.read_text().splitlines() if path.exists() else []:
            fields = line.split("#")[0].split()
            if len(fields) > 1 and name in fields[1:]:
                found.append(fields[0])
        return found

    return resolve


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator:
    created: list[StandInLb] = []

    def make(*, serve: str = "5s", manage_hosts: bool = True) -> World:
        mp = MemoryEngine(ips={**APP_IPS, "hello-lb": "127.0.0.1"})
        stand_in = StandInLb(mp, "hello-lb")
        created.append(stand_in)
        lab = parse_lab(lab_text(stand_in.port, serve=serve, manage_hosts=manage_hosts))
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        events: list[Event] = []
        ctx = LabContext(
            lab_file=LabFile(lab, tmp_path / "lab.yaml", "0" * 64),
            engine=mp,
            on_event=events.append,
            hosts_file=hosts,
            resolver=hosts_file_resolver(hosts),
            sleep=lambda s: None,
            probe_interval=0.05,
            state=LabState(tmp_path / "state"),
            status_agent=None,  # 10.77.0.x is not ours to connect to: reports by exec only
        )
        return World(ctx, mp, stand_in, hosts, events)

    yield make
    for stand_in in created:
        stand_in.close()


def healthy_vm_status(mp: MemoryEngine) -> None:
    app = {
        "pm2_daemon": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 42}],
        "port_open": True,
    }
    for name in APP_IPS:
        mp.vm_status[name] = {"cloud_init": {"status": "done"}, "app": app, "nginx": None}
    mp.vm_status["hello-lb"] = {
        "cloud_init": {"status": "done"},
        "app": None,
        "nginx": {"active": True, "config_ok": True, "config_error": ""},
    }
