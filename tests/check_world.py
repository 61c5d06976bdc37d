"""A world for `labctl check` and course-stage tests: the in-memory Multipass, app stand-ins that
answer on loopback addresses (127.0.0.11-13, one per app VM) like the hello app (or a static
frontend served by pm2), and an LB stand-in whose behaviour the test sets like a student's nginx
site would: it really proxies to the app stand-ins, or it fakes their answers.

Only loopback is ever contacted. The guest side (pm2, nginx -T, systemctl, the files labctl writes
into the folder the app serves) is answered by an exec hook that keeps per-VM state, so stopping,
killing and resurrecting are observable, and so are the student's tricks:
- `guest.rogue`: what answers on the app's port is not pm2's process (it keeps answering after
  `pm2 stop`, and the VM report says another pid holds the port);
- `guest.impostor`: the port is held by some listener that answers every path with a page of its
  own (it does not serve the app's files);
- `world.mode = "fake"`: the LB answers itself with a static page and an `X-Labctl-Vm` /
  `X-Lab-Backend` header that alternates between the app VMs, proxying only `/nobody-asks/`.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.engine.base import ExecResult
from labctl.host.state import LabState
from labctl.ops.checks.disruptive import PM2_KILL_COMMAND
from labctl.ops.context import Event, LabContext
from labctl.render.userdata import VM_STATUS_COMMAND
from tests.lab_world import hosts_file_resolver
from tests.memory_engine import MemoryEngine, MemoryVm

APPS = ["app1", "app2", "app3"]
APP_IPS = {f"hello-{vm}": f"127.0.0.{11 + i}" for i, vm in enumerate(APPS)}
HELLO_SOURCE = "source: {builtin: hello}"
SCRIPT_SOURCE = 'source: {git: "https://git.example/app.git"}, start: {script: server.js}'
SERVE_SOURCE = 'source: {git: "https://git.example/app.git"}, start: {serve: build, spa: true}'
APP_FOLDER = "/home/ubuntu/app"
FRONTEND_PAGE = "<h1>frontend</h1>\n"  # a static frontend: the same page on every app VM
CHECK_FILE = re.compile(r"/(labctl-check-[0-9a-f]+\.txt)")
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
# The student's trick: the proxy sits in a location nobody requests, `/` answers by itself.
UNREQUESTED_PROXY_NGINX = """\
# configuration file /etc/nginx/sites-enabled/hello:
upstream app { server 10.0.0.11:3000; server 10.0.0.12:3000; server 10.0.0.13:3000; }
server {
    listen 80;
    server_name hello.lab;
    location /nobody-asks/ { proxy_pass http://app; }
    location / { add_header X-Labctl-Vm $fake_vm; return 200 "hello from $fake_vm"; }
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
    """What runs on the app VMs: which apps are online in pm2, which have their pm2 list saved,
    the files in each app VM's folders, and the student's tricks (see the module docstring)."""

    online: set[str] = field(default_factory=lambda: set(APPS))
    saved: set[str] = field(default_factory=lambda: set(APPS))
    startup: set[str] = field(default_factory=lambda: set(APPS))
    rogue: set[str] = field(default_factory=set)
    impostor: set[str] = field(default_factory=set)
    files: dict[str, dict[str, str]] = field(default_factory=lambda: {vm: {} for vm in APPS})
    report_listeners: bool = True  # False: a VM whose labctl-vm-status predates listener reports
    nginx_dump: str = GOOD_NGINX
    nginx_rc: int = 0
    nginx_error: str = ""
    commands: list[tuple[str, ...]] = field(default_factory=list)

    def serving(self, vm: str) -> bool:
        """Something answers on the app's port: pm2's app, or whatever outlived `pm2 stop`."""
        return vm in self.online or vm in self.rogue or vm in self.impostor


class CheckWorld:
    def __init__(
        self, tmp: Path, lab_extra: str = "", stage: str = "lb", source: str = HELLO_SOURCE
    ) -> None:
        self.guest = Guest()
        self.mode = "lb"  # lb | one (proxy to app1 only) | welcome (default site) | fake
        self.retry = True  # nginx's proxy_next_upstream: a stopped backend's request goes on
        self.counter = 0
        self.source = source
        self.served_folder = f"{APP_FOLDER}/build" if "serve:" in source else APP_FOLDER
        self.apps: dict[str, _Server] = {}
        port = self._free_port()
        for vm, ip in zip(APPS, APP_IPS.values(), strict=True):
            self.apps[vm] = _Server((ip, port), self._app_handler(vm))
        self.app_port = port
        self.lb = _Server(("127.0.0.1", 0), self._lb_handler())
        self.mp = MemoryEngine(ips={**APP_IPS, "hello-lb": "127.0.0.1"})
        self.mp.exec_hook = self._exec
        self.text = (
            f"name: hello\ndomain: hello.lab\nstage: {stage}\n"
            f"app: {{name: hello, {source}, port: {port}}}\n"
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
            engine=self.mp,
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

    def page(self, vm: str) -> str:
        """The app's own page on `vm`."""
        if self.source == HELLO_SOURCE:
            return f"hello from {vm} (hello-{vm}), pid 7\n"
        return FRONTEND_PAGE

    def _app_answer(self, vm: str, path: str) -> tuple[int, dict[str, str], str] | None:
        """What the app's port on `vm` answers for `path` (None: nothing listens)."""
        guest = self.guest
        if not guest.serving(vm):
            return None
        if vm in guest.impostor:
            return 200, {}, "a listener that is not the app\n"
        headers = {"X-Labctl-Vm": vm} if self.source == HELLO_SOURCE else {}
        wanted = CHECK_FILE.fullmatch(path)
        if wanted and self.source != SCRIPT_SOURCE:  # hello and pm2 serve answer with the file
            content = guest.files[vm].get(f"{self.served_folder}/{wanted.group(1)}")
            if content is not None:
                return 200, headers, content
            if "spa: true" not in self.source:
                return 404, headers, "not found\n"
        return 200, headers, self.page(vm)

    def _app_handler(self, vm: str) -> type[BaseHTTPRequestHandler]:
        world = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = world._app_answer(vm, self.path)
                if answer is None:  # stands in for "connection refused": no HTTP answer at all
                    self.close_connection = True
                    return
                status, headers, body = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _lb_handler(self) -> type[BaseHTTPRequestHandler]:
        world = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = world._lb_answer(self.headers.get("Host", ""), self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _lb_answer(self, host: str, path: str) -> tuple[int, dict[str, str], str]:
        # nginx matches server_name without the port a browser adds to Host ("hello.lab:8080")
        if self.mode == "welcome" or host.split(":")[0] != "hello.lab":
            return 200, {}, "<h1>Welcome to nginx!</h1>"
        servers = APPS[:1] if self.mode == "one" else APPS
        pick = servers[self.counter % len(servers)]
        self.counter += 1
        if self.mode == "fake" and not path.startswith("/nobody-asks/"):
            return 200, self._backend_headers(pick), self.page(pick)
        tried = [pick] + ([s for s in servers if s != pick] if self.retry else [])
        for vm in tried:
            answer = self._proxy(vm, path)
            if answer is not None:
                status, headers, body = answer
                return status, {**headers, **self._backend_headers(vm, labctl_site=True)}, body
        return 502, {}, "<h1>502 Bad Gateway</h1>"

    def _backend_headers(self, vm: str, *, labctl_site: bool = False) -> dict[str, str]:
        """The headers naming a backend: the fake adds them itself; labctl's own site adds
        X-Lab-Backend ($upstream_addr)."""
        address = f"{APP_IPS[f'hello-{vm}']}:{self.app_port}"
        if not labctl_site:
            return {"X-Labctl-Vm": vm, "X-Lab-Backend": address}
        lb_vm = self.mp.vms.get("hello-lb")
        return {"X-Lab-Backend": address} if lb_vm and "X-Lab-Backend" in lb_vm.site else {}

    def _proxy(self, vm: str, path: str) -> tuple[int, dict[str, str], str] | None:
        """One real request to the app stand-in on `vm`, as nginx's proxy_pass makes it."""
        conn = http.client.HTTPConnection(APP_IPS[f"hello-{vm}"], self.app_port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": "hello.lab"})
            response = conn.getresponse()
            body = response.read().decode()
            named = {k: v for k, v in response.getheaders() if k.lower() == "x-labctl-vm"}
            return response.status, named, body
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

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
        if argv[:2] == ["sh", "-c"] and argv[3:4] == ["labctl-check"] and len(argv) == 7:
            folder, file_name, content = argv[4:7]  # labctl writes its check file for this run
            guest.files[vm][f"{folder}/{file_name}"] = content + "\n"
            return ExecResult(0, "", "")
        if argv[:3] == ["rm", "-f", "--"]:
            for path in argv[3:]:
                guest.files[vm].pop(path, None)
            return ExecResult(0, "", "")
        if argv == PM2_KILL_COMMAND:
            guest.online.discard(vm)
            return ExecResult(0, "", "")
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
        guest = self.guest
        online = vm in guest.online
        app: dict[str, object] = {
            "pm2_daemon": True,
            "processes": [
                {
                    "name": "hello",
                    "status": "online" if online else "stopped",
                    "restarts": 0,
                    "pid": 7 if online else 0,
                }
            ],
            "port_open": guest.serving(vm),
        }
        if guest.report_listeners:
            if vm in guest.rogue or vm in guest.impostor:
                app["listeners"] = [{"pid": 4242, "command": "python3", "pm2": []}]
            else:
                app["listeners"] = (
                    [{"pid": 7, "command": "node", "pm2": ["hello"]}] if online else []
                )
        return {"cloud_init": {"status": "done"}, "app": app, "nginx": None}

    def close(self) -> None:
        for server in [*self.apps.values(), self.lb]:
            server.close()


@pytest.fixture
def check_world(tmp_path: Path) -> Iterator:
    made: list[CheckWorld] = []

    def make(
        lab_extra: str = "", *, stage: str = "lb", running: bool = True, source: str = HELLO_SOURCE
    ) -> CheckWorld:
        where = tmp_path / f"world{len(made)}"
        where.mkdir()
        world = CheckWorld(where, lab_extra, stage, source)
        made.append(world)
        if running:
            world.running()
        return world

    yield make
    for world in made:
        world.close()
