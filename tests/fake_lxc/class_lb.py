"""What the class tests on the fake `lxc` share: a stand-in for every student's load balancer,
the status a healthy instance reports, and the labctl CLI run against the fake.

The stand-in listens on the fake's loopback addresses (127.81.S.N: S a server's subnet, N =
1..48) and answers as each student's nginx would: only on the address of that student's LB
instance (else 404), round robin over that student's Running app instances on the same server
(`X-Lab-Backend`; 502 when none runs), with a page that is not the app's own.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from typer.testing import CliRunner, Result

from labctl.cli.main import app
from tests.fake_lxc.fixture import FakeLxc

# What labctl-vm-status prints in an instance whose app and nginx are healthy
STATUS: Final = {
    "cloud_init": {"status": "done"},
    "app": {
        "pm2_daemon": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 7}],
        "port_open": True,
    },
    "nginx": {"active": True, "config_ok": True, "config_error": ""},
}
LB_ADDRESSES: Final = 48  # per subnet


class ClassLb:
    """Every student's LB. `tables` gives each server's instances (name -> the fake's record),
    read at every request; `subnets` are the third octets of the servers' addresses."""

    def __init__(
        self,
        tables: Callable[[], list[dict[str, Any]]],
        *,
        subnets: Sequence[int] = (0,),
        lab: str = "cls",
    ) -> None:
        self.tables, self.lab = tables, lab
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                here = self.connection.getsockname()[0]
                student = (self.headers.get("Host") or "").split(".")[0]
                backends = outer.backends(here, student)
                with outer.lock:
                    outer.turns[here] = turn = outer.turns.get(here, 0) + 1
                if not backends:
                    self.send_response(404 if backends is None else 502)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", f"{backends[turn % len(backends)]}:3000")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args: object) -> None:
                pass

        probe = socket.socket()
        probe.bind((f"127.81.{subnets[0]}.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            ThreadingHTTPServer((f"127.81.{s}.{n}", self.port), Handler)
            for s in subnets
            for n in range(1, LB_ADDRESSES + 1)
        ]
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()

    def backends(self, here: str, student: str) -> list[str] | None:
        """The addresses of `student`'s Running apps beside the LB at `here`; None when no LB
        of theirs is there."""
        for table in self.tables():
            lb = table.get(f"{self.lab}-{student}-lb")
            if lb is None or lb.get("ipv4") != here:
                continue
            return sorted(
                inst["ipv4"]
                for name, inst in table.items()
                if name.startswith(f"{self.lab}-{student}-app") and inst["status"] == "Running"
            )
        return None

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def class_cli(fake: FakeLxc, tmp_path: Path) -> Callable[..., Result]:
    """`invoke(lab, command, *args)`: labctl's CLI in-process against the fake, with a hosts
    file and state dir of the test's own (`snapshot save` and the like: two words)."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    env = {
        **fake.env,
        "LABCTL_LXC": str(fake.executable),
        "LABCTL_HOSTS_FILE": str(hosts),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    runner = CliRunner()

    def invoke(lab: Path, *args: str) -> Result:
        at = 2 if args[0] == "snapshot" else 1
        return runner.invoke(app, [*args[:at], "-f", str(lab), *args[at:]], env=env)

    return invoke
