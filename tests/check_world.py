"""A world for `labctl check` and course-stage tests: the in-memory Multipass, app stand-ins that
answer on loopback addresses (127.0.0.11-13, one per app VM) like the hello app, and an LB
stand-in whose behaviour the test sets like a student's nginx site would.

Only loopback is ever contacted. The guest side (pm2, nginx -T, systemctl) is answered by an
exec hook that keeps per-VM app state, so stopping, killing and resurrecting are observable.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.host.state import LabState
from labctl.multipass.adapter import ExecResult
from labctl.ops.context import Event, LabContext
from labctl.render.userdata import VM_STATUS_COMMAND
from tests.lab_world import hosts_file_resolver
from tests.memory_multipass import MemoryMultipass, MemoryVm

APPS = ["app1", "app2", "app3"]
APP_IPS = {f"hello-{vm}": f"127.0.0.{11 + i}" for i, vm in enumerate(APPS)}
GOOD_NGINX = """\
# configuration file /etc/nginx/nginx.conf:
http { include /etc/nginx/sites-enabled/*; }
# configuration file /etc/nginx/sites-enabled/hello:
upstream app { server 10.0.0.11:3000; server 10.0.0.12:3000; server 10.0.0.13:3000; }
server {
    listen 80;
    server_name hello.lab;
    location / { proxy_pass http://app; }
}
"""


class _Server:
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(address, handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Guest:
    """What runs on the app VMs: which apps are online, which have their pm2 list saved."""

    online: set[str] = field(default_factory=lambda: set(APPS))
    saved: set[str] = field(default_factory=lambda: set(APPS))
    startup: set[str] = field(default_factory=lambda: set(APPS))
    nginx_dump: str = GOOD_NGINX
    nginx_rc: int = 0
    nginx_error: str = ""
    commands: list[tuple[str, ...]] = field(default_factory=list)


class CheckWorld:
    def __init__(self, tmp: Path, lab_extra: str = "", stage: str = "lb") -> None:
        self.guest = Guest()
        self.mode = "lb"  # lb | one (proxy to app1 only) | welcome (default site) | closed
        self.retry = True  # nginx's proxy_next_upstream: a stopped backend's request goes on
        self.counter = 0
        self.apps: dict[str, _Server] = {}
        port = self._free_port()
        for vm, ip in zip(APPS, APP_IPS.values(), strict=True):
            self.apps[vm] = _Server((ip, port), self._app_handler(vm))
        self.app_port = port
        self.lb = _Server(("127.0.0.1", 0), self._lb_handler())
        self.mp = MemoryMultipass(ips={**APP_IPS, "hello-lb": "127.0.0.1"})
        self.mp.exec_hook = self._exec
        self.text = (
            f"name: hello\ndomain: hello.lab\nstage: {stage}\n"
            f"app: {{name: hello, source: {{builtin: hello}}, port: {port}}}\n"
            "vms:\n  - {name: app1, roles: [app]}\n  - {name: app2, roles: [app]}\n"
            "  - {name: app3, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
            f"lb: {{port: {self.lb.port}}}\n"
            "waits: {launch: 60s, cloud_init: 60s, serve: 3s, check: 5s}\n" + lab_extra
        )
        self.hosts = tmp / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n")
        self.events: list[Event] = []
        self.ctx = LabContext(
            lab_file=LabFile(parse_lab(self.text), tmp / "lab.yaml", "0" * 64),
            multipass=self.mp,  # type: ignore[arg-type]
            on_event=self.events.append,
            hosts_file=self.hosts,
            resolver=hosts_file_resolver(self.hosts),
            sleep=lambda s: None,
            probe_interval=0.05,
            state=LabState(tmp / "state"),
        )

    @staticmethod
    def _free_port() -> int:
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind((APP_IPS["hello-app1"], 0))
                port = int(probe.getsockname()[1])
            try:
                for ip in APP_IPS.values():
                    with socket.socket() as other:
                        other.bind((ip, port))
                return port
            except OSError:
                continue
        raise RuntimeError("no free port on 127.0.0.11-13")

    def running(self) -> None:
        """The VMs exist and run (as after `up`), and the hosts entry points at the LB."""
        for name, ip in {**APP_IPS, "hello-lb": "127.0.0.1"}.items():
            self.mp.vms[name] = MemoryVm(name, ipv4=[ip])
        self.hosts.write_text("127.0.0.1 localhost\n127.0.0.1 hello.lab\n")

    def _app_handler(self, vm: str) -> type[BaseHTTPRequestHandler]:
        world = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if vm not in world.guest.online:
                    self.send_response(503)  # stands in for "connection refused"
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Labctl-Vm", vm)
                self.end_headers()
                self.wfile.write(f"hello from {vm} (hello-{vm}), pid 7\n".encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _lb_handler(self) -> type[BaseHTTPRequestHandler]:
        world = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, vm = world._route(self.headers.get("Host", ""))
                self.send_response(status)
                if vm:
                    self.send_header("X-Labctl-Vm", vm)
                    lb_vm = world.mp.vms.get("hello-lb")
                    if lb_vm is not None and "X-Lab-Backend" in lb_vm.site:  # labctl's own site
                        address = f"{APP_IPS[f'hello-{vm}']}:{world.app_port}"
                        self.send_header("X-Lab-Backend", address)
                self.end_headers()
                if status == 200 and vm:
                    self.wfile.write(f"hello from {vm} (hello-{vm}), pid 7\n".encode())
                elif status == 200:
                    self.wfile.write(b"<h1>Welcome to nginx!</h1>")

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _route(self, host: str) -> tuple[int, str | None]:
        if self.mode == "welcome" or host != "hello.lab":
            return 200, None
        servers = APPS[:1] if self.mode == "one" else APPS
        pick = servers[self.counter % len(servers)]
        self.counter += 1
        if pick in self.guest.online:
            return 200, pick
        alive = [s for s in servers if s in self.guest.online]
        if self.retry and alive:
            return 200, alive[0]
        return 502, None

    def _exec(self, name: str, argv: list[str]) -> ExecResult | None:
        vm = name.removeprefix("hello-")
        guest = self.guest
        guest.commands.append((vm, *argv))
        if argv == list(VM_STATUS_COMMAND):
            return ExecResult(0, json.dumps(self._vm_status(vm)), "")
        if argv == ["sudo", "nginx", "-T"]:
            return ExecResult(guest.nginx_rc, guest.nginx_dump, guest.nginx_error)
        if argv == ["systemctl", "is-enabled", "pm2-ubuntu"]:
            return ExecResult(0 if vm in guest.startup else 1, "", "")
        if argv[:1] == ["pm2"]:
            verb = argv[1]
            if verb == "stop":
                guest.online.discard(vm)
            elif verb == "start":
                guest.online.add(vm)
            elif verb == "kill":
                guest.online.discard(vm)
            elif verb == "resurrect" and vm in guest.saved:
                guest.online.add(vm)
            return ExecResult(0, "", "")
        if argv[:2] == ["sh", "-c"] and "startOrReload" in argv[2]:
            guest.online.add(vm)
            return ExecResult(0, "", "")
        return None

    def _vm_status(self, vm: str) -> dict[str, object]:
        if vm == "lb":
            return {
                "cloud_init": {"status": "done"},
                "app": None,
                "nginx": {"active": True, "config_ok": self.guest.nginx_rc == 0},
            }
        status = "online" if vm in self.guest.online else "stopped"
        return {
            "cloud_init": {"status": "done"},
            "app": {
                "pm2_daemon": True,
                "processes": [{"name": "hello", "status": status, "restarts": 0, "pid": 7}],
                "port_open": vm in self.guest.online,
            },
            "nginx": None,
        }

    def close(self) -> None:
        for server in [*self.apps.values(), self.lb]:
            server.close()


@pytest.fixture
def check_world(tmp_path: Path) -> Iterator:
    made: list[CheckWorld] = []

    def make(lab_extra: str = "", *, stage: str = "lb", running: bool = True) -> CheckWorld:
        where = tmp_path / f"world{len(made)}"
        where.mkdir()
        world = CheckWorld(where, lab_extra, stage)
        made.append(world)
        if running:
            world.running()
        return world

    yield make
    for world in made:
        world.close()
