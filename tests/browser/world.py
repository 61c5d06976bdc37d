"""A class of six students whose load balancers are one private nginx on loopback, each student's
site on its own 127.0.0.x address and the same port, in the states a grader meets:

    ann  the app renders (a dumbflix-like single-page app: navbar, then the hero after 1.2 s)
    ben  the app's loading skeleton that never becomes the hero (its JavaScript never finishes)
    cat  nginx proxies to an app that is down: 502 Bad Gateway
    dan  nginx's welcome page (the default site; the proxy was never written)
    eve  nothing listens on the LB's address: connection refused
    fay  the app renders but throws an uncaught exception

The VMs are the in-memory engine's (nothing is launched); the browser is real.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.config.load import LabFile, parse_lab
from labctl.host.resources import HostResources
from labctl.ops.classroom.contexts import ClassContext
from tests.browser import png
from tests.lab_world import hosts_file_resolver
from tests.memory_engine import MemoryEngine, MemoryVm

STUDENTS = ["ann", "ben", "cat", "dan", "eve", "fay"]
LB_IPS = {student: f"127.0.0.{31 + i}" for i, student in enumerate(STUDENTS)}
HERO_RGB = (200, 16, 32)  # the hero's background image: one red, easy to find in a screenshot
SKELETON_RGB = (68, 68, 68)
PAGE_TIMEOUT = 4  # seconds a page gets to render (the lab's browser.timeout)

INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dumbflix-like</title>
<link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=PT+Sans">
<style>
body { margin: 0; background: #000; color: #fff; font-family: sans-serif; }
.navbar { height: 64px; display: flex; align-items: center; gap: 24px; padding: 0 32px;
  background: #111; }
.logo { color: #e50914; font-weight: bold; font-size: 28px; margin: 0 auto; }
.skeleton { height: 480px; background: rgb(68, 68, 68); }
.hero { height: 480px; background: url(/hero.png) center / cover; padding: 60px; }
.hero button { background: #e50914; color: #fff; border: 0; padding: 12px 24px; }
</style></head>
<body><div id="root"></div><script src="/app.js"></script></body></html>
"""
# MODE is replaced per student: "app", "skeleton" or "exception".
APP_JS = """
const root = document.getElementById('root');
root.innerHTML = '<nav class="navbar"><a>Home</a><a>TV Shows</a><a>Movies</a>' +
  '<span class="logo">DUMBFLIX</span><a>Register</a><a>Login</a></nav>' +
  '<div class="skeleton"></div><h2>TV Series</h2><h2>Movies</h2>';
fetch('http://localhost:5000/api/v1/auth').catch(() => {});  // the absent API, as in the lab
if ('MODE' !== 'skeleton') {
  setTimeout(() => {
    root.querySelector('.skeleton').outerHTML =
      '<div class="hero"><h1>THE WITCHER</h1><p>2019 | TV Series</p>' +
      '<button>WATCH NOW !</button></div>';
    if ('MODE' === 'exception') { throw new Error('boom'); }
  }, 1200);
}
"""


@dataclass
class ClassWorld:
    cctx: ClassContext
    port: int
    root: Path
    nginx: subprocess.Popen[bytes]

    def close(self) -> None:
        self.nginx.terminate()
        try:
            self.nginx.wait(10)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
            self.nginx.wait(10)


def _site(root: Path, mode: str) -> Path:
    site = root / mode
    site.mkdir()
    (site / "index.html").write_text(INDEX)
    (site / "app.js").write_text(APP_JS.replace("MODE", mode))
    (site / "hero.png").write_bytes(png.solid(320, 120, HERO_RGB))
    return site


def _free_port() -> int:
    """A port free on every student's LB address (and one more, for nothing listening)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((LB_IPS["ann"], 0))
            port = int(probe.getsockname()[1])
        try:
            for ip in LB_IPS.values():
                with socket.socket() as other:
                    other.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on 127.0.0.31-36")


def _welcome_root() -> Path:
    for candidate in (Path("/usr/share/nginx/html"), Path("/var/www/html")):
        if any(candidate.glob("index*.html")):
            return candidate
    raise RuntimeError("nginx's welcome page is not installed")


def _nginx_conf(root: Path, port: int) -> str:
    sites = {mode: _site(root, mode) for mode in ("app", "skeleton", "exception")}
    dead = _free_port()  # nothing listens there: the app that is down
    welcome = _welcome_root()
    static = "location / { try_files $uri /index.html; }"
    servers = {
        "ann": f"root {sites['app']}; {static}",
        "ben": f"root {sites['skeleton']}; {static}",
        "cat": f"location / {{ proxy_pass http://127.0.0.1:{dead}; }}",
        "dan": f"root {welcome}; index index.html index.nginx-debian.html;",
        "fay": f"root {sites['exception']}; {static}",
    }
    blocks = "\n".join(
        f"  server {{ listen {LB_IPS[student]}:{port}; server_name _; {body} }}"
        for student, body in servers.items()
    )
    temp = root / "nginx-temp"
    temp.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers read the test's private tmp
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {root}/nginx.pid;\n"
        f"error_log {root}/nginx-error.log;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fcgi; uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n{blocks}\n}}\n"
    )


def _wait_listening(ip: str, port: int, nginx: subprocess.Popen[bytes]) -> None:
    for _ in range(100):  # bounded: 10 s
        if nginx.poll() is not None:
            raise RuntimeError(f"nginx exited with {nginx.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((ip, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("nginx did not listen within 10 s")


def class_world(root: Path) -> ClassWorld:
    port = _free_port()
    conf = root / "nginx.conf"
    conf.write_text(_nginx_conf(root, port))
    nginx = subprocess.Popen(
        ["nginx", "-p", str(root), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(LB_IPS["ann"], port, nginx)
    except BaseException:
        nginx.kill()
        nginx.wait(10)
        raise
    text = f"""\
name: web
class:
  students: [{", ".join(STUDENTS)}]
  domain: "{{student}}.class.lab"
  aliases: ["www.{{student}}.class.lab"]
app: {{name: dumbflix, source: {{git: "https://example.com/dumbflix.git"}}, start: {{serve: build}}}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
browser: {{wait_for: {{selector: .hero}}, paths: [/, /movies], timeout: {PAGE_TIMEOUT}s}}
"""
    ips = {f"web-{s}-lb": ip for s, ip in LB_IPS.items()}
    ips |= {f"web-{s}-app1": "N/A" for s in STUDENTS}  # never contacted by the browser check
    daemon = MemoryEngine(ips=ips)
    for name, ip in ips.items():
        daemon.vms[name] = MemoryVm(name, ipv4=[] if ip == "N/A" else [ip])
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    cctx = ClassContext(
        lab_file=LabFile(parse_lab(text), root / "lab.yaml", "0" * 64),
        hosts_file=hosts,
        resolver=hosts_file_resolver(hosts),
        sleep=lambda s: None,
        probe_interval=0.05,
        host=lambda: HostResources(8, 64 * 1024**3, 500 * 1024**3, "/", 64 * 1024**3),
        can_sudo=lambda: False,
        engine_for=lambda address: daemon,
        state_root=root / "state",
        status_agent=None,
    )
    return ClassWorld(cctx, port, root, nginx)
