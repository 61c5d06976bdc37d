#!/usr/bin/python3
"""labctl-status-agent: serves this VM's labctl-vm-status report over HTTP, for `labctl status`.

Installed as /usr/local/sbin/labctl-status-agent and run by systemd
(labctl-status-agent.service). `labctl status` reads every VM's report here with one HTTP
request instead of one `multipass exec` per VM (at class scale the client processes and the
daemon's SSH session per exec were the cost); when the agent does not answer, labctl
falls back to `multipass exec VM -- sudo labctl-vm-status`, the same document.

    GET /v1/status
    X-Labctl-Nonce: 48 hex digits chosen by labctl for this request: 16 of its issue time (Unix
                    seconds), then 32 random ones
    X-Labctl-Auth:  hex HMAC-SHA256(key, "labctl-status-request\\n" + nonce)
 -> 200, body = the JSON report (schema in vm_status.py),
    X-Labctl-Auth:  hex HMAC-SHA256(key, "labctl-status-response\\n" + nonce + "\\n" + body)
 -> 403 (empty) for a missing or wrong signature, a time more than NONCE_WINDOW seconds off this
    VM's clock, or a nonce already used (remembered for NONCE_WINDOW after its time, so a
    replayed request is refused without computing anything); X-Labctl-Refused says which
 -> 503 when MAX_CLIENTS requests are already being served; 404 for any other path.
    Beyond MAX_CONNECTIONS open connections, a new one is closed at once. A connection has
    REQUEST_TIMEOUT seconds in all to deliver its request (a client that sends a byte now and
    then is cut off like a silent one), and the answer WRITE_TIMEOUT seconds to leave.

The key (hex, in the file named by config.json's status_agent.key_file, root-only) is this
VM's own, derived by labctl from a per-lab secret; the signed response lets labctl tell a forged
answer (another machine on the bridge) from this VM's. The report holds no secrets (pm2's env
is never copied). Every answer is computed after the request arrived (concurrent requests share
one computation, so at most one runs at a time); only a finished cloud-init status is reused,
since it cannot change before the next boot, when this process restarts.
Python 3 standard library only.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

CONFIG = Path(os.environ.get("LABCTL_CONFIG", "/etc/labctl/config.json"))
VM_STATUS = os.environ.get("LABCTL_VM_STATUS", "/usr/local/sbin/labctl-vm-status")
REQUEST_CONTEXT = b"labctl-status-request\n"
RESPONSE_CONTEXT = b"labctl-status-response\n"
NONCE_RE = re.compile(r"^([0-9a-f]{16})[0-9a-f]{32}$")
KEY_RE = SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_CLIENTS = 8  # signed requests being answered at once
MAX_CONNECTIONS = 32  # open connections (each holds a thread until it is done or cut off)
REQUEST_TIMEOUT = 5.0  # from accept to the whole request, however the client trickles it
WRITE_TIMEOUT = 10.0  # for the answer to leave, however slowly the client reads
NONCE_WINDOW = 300  # seconds a request's time may be off this VM's clock (either way)
MAX_NONCES = 4096  # nonces remembered at once; labctl sends a few per VM per status
FINAL_CLOUD_INIT = {"done", "error", "degraded done", "disabled"}


def load_vm_status(path: str) -> ModuleType:
    """labctl-vm-status has no .py suffix: load it by path."""
    loader = importlib.machinery.SourceFileLoader("labctl_vm_status", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    if spec is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def sign(key: bytes, context: bytes, *parts: bytes) -> str:
    return hmac.new(key, context + b"\n".join(parts), hashlib.sha256).hexdigest()


class Reports:
    """One computation at a time; a request gets a report whose computation began after it came."""

    def __init__(self, vm_status: ModuleType) -> None:
        self.vm_status = vm_status
        self.cond = threading.Condition()
        self.computing = False
        self.last: tuple[float, bytes] | None = None  # (monotonic start, JSON body)
        self.cloud_init: dict[str, Any] | None = None  # once final, for the life of this boot

    def _cloud_init(self) -> dict[str, Any]:
        if self.cloud_init is not None:
            return copy.deepcopy(self.cloud_init)
        status: dict[str, Any] = self.vm_status.cloud_init_status()
        if status.get("status") in FINAL_CLOUD_INIT:
            self.cloud_init = copy.deepcopy(status)
        return status

    def fresh(self) -> bytes:
        arrived = time.monotonic()
        with self.cond:
            while True:
                if self.last is not None and self.last[0] >= arrived:
                    return self.last[1]
                if not self.computing:
                    self.computing = True
                    break
                self.cond.wait(timeout=60)
        started = time.monotonic()
        body = b""
        try:
            body = json.dumps(self.vm_status.build_report(self._cloud_init)).encode()
            return body
        finally:
            with self.cond:
                self.computing = False
                if body:
                    self.last = (started, body)
                self.cond.notify_all()


class Nonces:
    """The nonces of accepted requests, each kept until its time is out of the window: a request
    is accepted once, and memory stays bounded (only signed requests are recorded)."""

    def __init__(self, window: float = NONCE_WINDOW, capacity: int = MAX_NONCES) -> None:
        self.window = window
        self.capacity = capacity
        self.lock = threading.Lock()
        self.expiry: dict[str, float] = {}  # nonce -> wall-clock time it may be forgotten

    def admit(self, nonce: str, issued: float, now: float) -> str:
        """ "" if the request may be answered, else why not ("time", "replay", "busy")."""
        if abs(now - issued) > self.window:
            return "time"
        with self.lock:
            if nonce in self.expiry:
                return "replay"
            if len(self.expiry) >= self.capacity:
                self.expiry = {n: t for n, t in self.expiry.items() if t >= now}
                if len(self.expiry) >= self.capacity:
                    return "busy"  # refuse rather than forget a nonce still in its window
            self.expiry[nonce] = issued + self.window
        return ""


class Agent(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # listen backlog: a burst of connections waits, is not dropped

    def __init__(
        self,
        address: tuple[str, int],
        key: bytes | None,
        reports: Reports,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        nonces: Nonces | None = None,
    ) -> None:
        self.key = key
        self.reports = reports
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.nonces = nonces or Nonces()
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A thread per connection, but not without bound: beyond MAX_CONNECTIONS, close at once.
        if not self.connections.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


class DeadlineReader(io.RawIOBase):
    """The request's bytes; every recv gets only the time left until `deadline`, so the whole
    request must arrive in time (a socket timeout alone bounds only each recv)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            # socket.timeout: what http.server catches before Python 3.10 (Ubuntu 20.04's 3.8)
            raise socket.timeout("request not complete in time")  # noqa: UP041
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class DeadlineWriter(io.RawIOBase):
    """The answer's bytes: all writes together end by `deadline` (set once the answer is ready),
    however slowly the client reads."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("answer not sent in time")  # noqa: UP041 (as above)
        self.sock.settimeout(left)
        self.sock.sendall(data)
        return len(data)


class Handler(BaseHTTPRequestHandler):
    server: Agent
    server_version = "labctl-status-agent"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain one, replaced: the socket itself stays open
        deadline = time.monotonic() + self.server.request_timeout
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline))
        # An error answer while the request is read (400, 414) is bounded as well.
        self.writer = DeadlineWriter(self.connection, deadline + self.server.write_timeout)
        self.wfile = self.writer

    def do_GET(self) -> None:
        if self.path != "/v1/status":
            self._empty(404)
            return
        key = self.server.key
        nonce = self.headers.get("X-Labctl-Nonce", "")
        auth = self.headers.get("X-Labctl-Auth", "")
        issued = NONCE_RE.fullmatch(nonce)
        if key is None or issued is None:
            self._empty(403, "signature")
            return
        wanted = sign(key, REQUEST_CONTEXT, nonce.encode())
        if not SIGNATURE_RE.fullmatch(auth) or not hmac.compare_digest(auth, wanted):
            self._empty(403, "signature")
            return
        refused = self.server.nonces.admit(nonce, int(issued[1], 16), time.time())
        if refused:
            self._empty(503 if refused == "busy" else 403, refused)
            return
        if not self.server.slots.acquire(blocking=False):
            self._empty(503, "busy")
            return
        try:
            body = self.server.reports.fresh()
        finally:
            self.server.slots.release()
        self.writer.deadline = time.monotonic() + self.server.write_timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Labctl-Auth", sign(key, RESPONSE_CONTEXT, nonce.encode(), body))
        self.end_headers()
        self.wfile.write(body)

    def _empty(self, code: int, refused: str = "") -> None:
        self.writer.deadline = time.monotonic() + self.server.write_timeout
        self.send_response(code)
        self.send_header("Content-Length", "0")
        if refused:
            self.send_header("X-Labctl-Refused", refused)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would fill the log at every `labctl status --watch` refresh


def read_key(path: Path) -> bytes | None:
    """The VM's key, or None (every request refused) if missing or not 64 hex digits."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return bytes.fromhex(text) if KEY_RE.fullmatch(text) else None


def main() -> int:
    conf = json.loads(CONFIG.read_text(encoding="utf-8")).get("status_agent") or {}
    key = read_key(Path(conf.get("key_file", "/etc/labctl/status-agent.key")))
    if key is None:
        sys.stderr.write("labctl-status-agent: no valid key; every request will get 403\n")
    agent = Agent(
        (str(conf.get("address", "0.0.0.0")), int(conf["port"])),  # noqa: S104 (the lab bridge)
        key,
        Reports(load_vm_status(VM_STATUS)),
    )
    agent.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
