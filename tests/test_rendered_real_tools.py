"""Rendered output against the real tools: `cloud-init schema`, `nginx -t`, a running nginx with
two loopback backends, and labctl-lb-apply driving that nginx.

Skipped when a tool is missing, unless LABCTL_REQUIRE_SIM=1 (CI), which turns a skip into a
failure. Network use is loopback only (127.0.0.1-3); every process started here is killed in a
`finally`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.config.load import parse_lab
from labctl.model import Lab
from labctl.render.assets import Assets, read_assets
from labctl.render.userdata import (
    Backend,
    render_nginx_site,
    render_placeholder_site,
    render_user_data,
)

REPO = Path(__file__).resolve().parent.parent
ASSET_DIR = REPO / "cloud-init"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
MIME_TYPES = Path("/etc/nginx/mime.types")

SEED_LAB = {
    "name": "alvin",
    "domain": "alvin.xyz",
    "aliases": ["www.alvin.xyz"],
    "defaults": {"memory": "2G"},
    "app": {
        "name": "dumbflix",
        "source": {"git": "https://github.com/dumbwaysdev/dumbflix-frontend"},
        "install": "npm ci",
        "build": "npm run build",
        "env": {"NODE_OPTIONS": "--openssl-legacy-provider"},
        "start": {"serve": "build", "spa": True},
        "port": 3000,
        "node_version": 20,
    },
    "vms": [{"name": "app1", "roles": ["app"]}, {"name": "gateway", "roles": ["lb", "app"]}],
}
HELLO_LAB = {
    "name": "hello",
    "domain": "hello.lab",
    "app": {"name": "hello", "source": {"builtin": "hello"}},
    "vms": [{"name": f"app{i}", "roles": ["app"]} for i in (1, 2, 3)]
    + [{"name": "lb", "roles": ["lb"]}],
}


def lab_from(data: dict[str, Any]) -> Lab:
    return parse_lab(json.dumps(data))


def variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def need(tool: str) -> str:
    """Path of `tool`, or skip (fail under LABCTL_REQUIRE_SIM=1)."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if Path(p).exists()), None
    )
    if path is None:
        reason = f"{tool} is not installed (apt-get install -y {tool})"
        if os.environ.get("LABCTL_REQUIRE_SIM") == "1":
            pytest.fail(f"LABCTL_REQUIRE_SIM=1 but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def assets() -> Assets:
    return read_assets()


# --- cloud-init schema --------------------------------------------------------------------------

SCHEMA_LABS = {
    "seed": (SEED_LAB, None),
    "hello": (HELLO_LAB, None),
    "path-source": (
        variant(HELLO_LAB, app={"source": {"path": "site"}, "start": {"script": "index.js"}}),
        b"\x1f\x8b fake tarball bytes",
    ),
    "command-cluster-secrets": (
        variant(
            HELLO_LAB,
            app={
                "source": {"git": "https://example.com/app.git"},  # builtin takes no start:
                "start": {"command": "node server.js --flag 'x y'"},
                "env": {"TOKEN": "s3cr3t'\n$(x)", "EMPTY": ""},
                "secret_env": ["TOKEN"],
                "node_version": 22,
            },
            aliases=["www.hello.lab"],
        ),
        None,
    ),
}
SCHEMA_CASES = [
    pytest.param(data, archive, vm["name"], id=f"{name}-{vm['name']}")
    for name, (data, archive) in SCHEMA_LABS.items()
    for vm in data["vms"]
]


@pytest.mark.parametrize(("lab_data", "archive", "vm_name"), SCHEMA_CASES)
def test_user_data_passes_cloud_init_schema(
    lab_data: dict[str, Any], archive: bytes | None, vm_name: str, assets: Assets, tmp_path: Path
) -> None:
    cloud_init = need("cloud-init")
    lab = lab_from(lab_data)
    vm = lab.vm(vm_name)
    assert vm is not None
    wants = archive if "app" in vm.roles else None
    path = tmp_path / "user-data.yaml"
    path.write_text(render_user_data(lab, vm, assets, app_archive=wants))
    proc = subprocess.run(
        [cloud_init, "schema", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Valid" in proc.stdout
    assert "deprecat" not in (proc.stdout + proc.stderr).lower()


def test_cloud_init_schema_does_catch_errors(tmp_path: Path) -> None:
    """Guard against a vacuous pass: the same check fails on a known schema error."""
    cloud_init = need("cloud-init")
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\nwrite_files:\n- path: /x\n  permissions: 644\n")
    proc = subprocess.run(
        [cloud_init, "schema", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr


# --- nginx -t -----------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def loopback_only(site: str, port: int) -> str:
    """`nginx -t` binds the listen socket (docs/nginx-failover.md): keep it on 127.0.0.1."""
    line = f"listen {port} default_server;"
    assert line in site
    return site.replace(line, f"listen 127.0.0.1:{port} default_server;")


def write_wrapper(tmp_path: Path, site_path: Path) -> Path:
    """The non-root `nginx -t -c` wrapper of docs/nginx-failover.md, with the site included inside http {}."""
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / name).mkdir(exist_ok=True)
    mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
    wrapper = tmp_path / "wrapper.conf"
    wrapper.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "worker_processes 1;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"    client_body_temp_path {tmp_path}/body;\n"
        f"    proxy_temp_path {tmp_path}/proxy;\n"
        f"    fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"    uwsgi_temp_path {tmp_path}/uwsgi;\n"
        f"    scgi_temp_path {tmp_path}/scgi;\n"
        "    access_log off;\n"
        f"{mime}"
        f"    include {site_path};\n"
        "}\n"
    )
    return wrapper


def nginx_test(nginx: str, tmp_path: Path, site: str) -> subprocess.CompletedProcess[str]:
    site_path = tmp_path / "site.conf"
    site_path.write_text(site)
    wrapper = write_wrapper(tmp_path, site_path)
    return subprocess.run(
        [nginx, "-q", "-t", "-c", str(wrapper)], capture_output=True, text=True, check=False
    )


LB_VARIANTS = {
    "defaults": {},
    "least_conn": {"method": "least_conn"},
    "ip_hash": {"method": "ip_hash", "keepalive": 0},
    "non_idempotent": {"retry_non_idempotent": True, "connect_timeout": 1.5, "read_timeout": "1m"},
    "tight": {"max_fails": 0, "fail_timeout": 1, "keepalive": 1},  # durations >= 1 s
}


@pytest.mark.parametrize("lb", list(LB_VARIANTS.values()), ids=list(LB_VARIANTS))
def test_site_passes_nginx_t(lb: dict[str, Any], tmp_path: Path) -> None:
    nginx = need("nginx")
    port = free_port()
    data = variant(HELLO_LAB, name="my-lab", aliases=["www.hello.lab"], lb={**lb, "port": port})
    lab = lab_from(data)
    backends = [Backend("app1", "127.0.0.2:3000"), Backend("app2", "127.0.0.3:3000")]
    for site in (render_nginx_site(lab, backends), render_placeholder_site(lab)):
        proc = nginx_test(nginx, tmp_path, loopback_only(site, port))
        assert proc.returncode == 0, proc.stderr + "\n" + site


def test_nginx_t_does_catch_errors(tmp_path: Path) -> None:
    """Guard against a vacuous pass: the same wrapper rejects a broken site."""
    nginx = need("nginx")
    proc = nginx_test(nginx, tmp_path, "upstream x { leastconn; server 127.0.0.2:1; }\n")
    assert proc.returncode == 1 and "leastconn" in proc.stderr


# --- a running nginx, driven by labctl-lb-apply ------------------------------------------------


@contextlib.contextmanager
def started(
    argv: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        # SIGTERM first: nginx's master then stops its workers; SIGKILL would orphan them.
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


def backend_argv(
    host: str, port: int, name: str, tmp_path: Path
) -> tuple[list[str], dict[str, str]]:
    """The builtin hello app under Node if present, else a tiny Python stand-in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": str(port),
        "HOST": host,
        "LABCTL_VM": name,
    }
    node = shutil.which("node")
    if node:
        return [node, str(ASSET_DIR / "hello" / "server.js")], env
    script = tmp_path / "backend.py"
    script.write_text(
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = f\"hello from {os.environ['LABCTL_VM']}\\n\".encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H)"
        ".serve_forever()\n"
    )
    return [sys.executable, str(script)], env


def get(port: int, path: str = "/") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": "hello.lab"})
        response = conn.getresponse()
        return response.status, response.getheader("X-Lab-Backend") or "", response.read().decode()
    finally:
        conn.close()


def lb_apply(config: Path, site: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEM_PYTHON, str(ASSET_DIR / "lb_apply.py")],
        input=site,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LABCTL_CONFIG": str(config)},
        check=False,
        timeout=60,
    )


def workers_of(master: int) -> set[int]:
    """The PIDs of the processes whose parent is `master` (nginx's workers), from /proc."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == master:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_real_nginx_balances_fails_over_and_lb_apply_swaps_sites(tmp_path: Path) -> None:
    nginx = need("nginx")
    lb_port = free_port()
    ports = {"app1": free_port("127.0.0.2"), "app2": free_port("127.0.0.3")}
    hosts = {"app1": "127.0.0.2", "app2": "127.0.0.3"}
    lab = lab_from(variant(HELLO_LAB, lb={"port": lb_port, "fail_timeout": 2}))
    backends = [Backend(name, f"{hosts[name]}:{ports[name]}") for name in ("app1", "app2")]
    real_site = loopback_only(render_nginx_site(lab, backends), lb_port)
    placeholder = loopback_only(render_placeholder_site(lab), lb_port)

    site_path = tmp_path / "sites-available" / "labctl-hello.conf"
    site_path.parent.mkdir()
    site_path.write_text(placeholder)
    wrapper = write_wrapper(tmp_path, site_path)
    pid_file = tmp_path / "nginx.pid"
    config = tmp_path / "config.json"
    commands = {
        "test": [nginx, "-q", "-t", "-c", str(wrapper)],
        "is_active": ["test", "-s", str(pid_file)],
        "reload": [nginx, "-c", str(wrapper), "-s", "reload"],
        "start": ["false"],
    }
    config.write_text(
        json.dumps({"app": None, "lb": {"site": str(site_path), "commands": commands}})
    )

    argv1, env1 = backend_argv(hosts["app1"], ports["app1"], "app1", tmp_path)
    argv2, env2 = backend_argv(hosts["app2"], ports["app2"], "app2", tmp_path)
    with (
        started(argv1, env1) as app1,
        started(argv2, env2) as app2,
        started([nginx, "-c", str(wrapper), "-g", "daemon off;"]) as proxy,
    ):
        wait_for_port(hosts["app1"], ports["app1"], app1)
        wait_for_port(hosts["app2"], ports["app2"], app2)
        wait_for_port("127.0.0.1", lb_port, proxy)
        deadline = time.monotonic() + 5
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        # Before the backends are known: the placeholder answers 503.
        status, _, body = get(lb_port)
        assert (status, body) == (503, "labctl: waiting for backends\n")

        old_workers = workers_of(proxy.pid)
        applied = lb_apply(config, real_site)
        assert (applied.returncode, applied.stdout) == (0, "applied\n"), applied.stderr
        # A reload is asynchronous: until the old workers exit, they may still accept
        # connections with the placeholder site, so the reload is done when they are gone.
        deadline = time.monotonic() + 10
        while old_workers & workers_of(proxy.pid) or get(lb_port)[0] != 200:
            assert time.monotonic() < deadline, "nginx never picked up the applied site"
            time.sleep(0.1)

        seen = [get(lb_port) for _ in range(20)]
        assert {s for s, _, _ in seen} == {200}
        assert {b for _, b, _ in seen} == {b.address for b in backends}, seen
        if shutil.which("node"):
            assert {body.split()[2] for _, _, body in seen} == {"app1", "app2"}

        # One backend dies: nginx retries the other (proxy_next_upstream error), no client error.
        app2.kill()
        app2.wait(timeout=10)
        after = [get(lb_port) for _ in range(20)]
        assert [s for s, _, _ in after] == [200] * 20, after
        assert {b.split(", ")[-1] for _, b, _ in after} == {backends[0].address}

        same = lb_apply(config, real_site)
        assert (same.returncode, same.stdout) == (0, "unchanged\n")

        broken = lb_apply(
            config, real_site.replace("least_conn", "x").replace("keepalive 16;", "keepalive;")
        )
        assert broken.returncode == 1 and "keepalive" in broken.stderr, broken.stderr
        assert site_path.read_text() == real_site, "the old site must be restored"
        assert get(lb_port)[0] == 200, "nginx keeps serving after a rejected site"
