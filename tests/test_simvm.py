"""End-to-end tests of tests/simvm: real namespaces, real nginx, Node and pm2.

Need root and `ip netns`; skipped otherwise, unless LABCTL_REQUIRE_SIM=1 (then they fail).
Traffic only goes to the VM addresses created here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.simvm import CloudInitTimeout, SimNetwork, SimVM, cleanup_all

pytestmark = pytest.mark.sim

NODE_APP = """\
const http = require('http');
const os = require('os');
http.createServer((req, res) => res.end('hello from ' + os.hostname() + '\\n'))
    .listen(3000, '0.0.0.0');
"""
HOST_FILES = ("/etc/hosts", "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hostname")


def _sim_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "simvm tests need root (network namespaces, bind mounts)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2/util-linux (ip, unshare) not installed"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"`ip netns` unavailable: {exc}"
    for tool in ("nginx", "node", "pm2", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@pytest.fixture(scope="module", autouse=True)
def _require_sim() -> None:
    reason = _sim_unavailable()
    if reason is None:
        return
    if os.environ.get("LABCTL_REQUIRE_SIM") == "1":
        pytest.fail(f"LABCTL_REQUIRE_SIM=1 but the simulation cannot run: {reason}")
    print(f"skipping simvm tests: {reason}")
    pytest.skip(reason)


def _host_fingerprint() -> dict[str, str]:
    digest = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in HOST_FILES}
    for root, dirs, files in os.walk("/etc/nginx"):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            digest[str(path)] = (
                os.readlink(path)
                if path.is_symlink()
                else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return digest


def _free_subnet() -> str:
    routes = subprocess.run(
        ["ip", "-4", "route"], capture_output=True, text=True, timeout=10
    ).stdout
    for _ in range(50):
        subnet = f"10.251.{secrets.randbelow(150) + 100}.0/24"
        if f"{subnet} " not in routes:
            return subnet
    raise RuntimeError("no free test subnet")


@dataclass
class Sim:
    prefix: str
    net: SimNetwork
    root: Path
    vms: list[SimVM] = field(default_factory=list)
    inodes: set[int] = field(default_factory=set)  # netns of every VM, to find stray processes

    def vm(self, name: str, user_data: str | None = "") -> SimVM:
        vm = SimVM(name, self.root / name, self.net, self.net.allocate_ip())
        vm.create()
        self.vms.append(vm)
        self.inodes.add(os.stat(f"/run/netns/{vm.netns}").st_ino)
        if user_data is not None:
            result = vm.run_cloud_init(user_data, timeout=60)
            assert result.status == "done", (result, result.output_log)
        return vm


def run_in(vm: SimVM, argv: list[str], *, user: str = "ubuntu", stdin: bytes | None = None):
    out, err = io.BytesIO(), io.BytesIO()
    rc = vm.exec(
        argv,
        stdin=io.BytesIO(stdin) if stdin is not None else None,
        stdout=out,
        stderr=err,
        user=user,
        timeout=60,
    )
    return rc, out.getvalue().decode(), err.getvalue().decode()


def http_get(url: str, *, attempts: int = 40, delay: float = 0.25, expect: str = "") -> str:
    """GET with a bounded number of retries (services start asynchronously)."""
    last = ""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read().decode()
            if expect in body:
                return body
            last = body
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(delay)
    raise AssertionError(f"{url} never answered with {expect!r}; last: {last}")


def port_dead(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1.5)
    except (urllib.error.URLError, OSError):
        return True
    return False


def _leftovers(prefix: str, inodes: set[int]) -> list[str]:
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    found += [f"netns {line}" for line in ns.splitlines() if line.startswith(prefix)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    found += [f"link {line.split(':')[1]}" for line in links.splitlines() if f": {prefix}" in line]
    tag = f"SIMVM_NETNS={prefix}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            netns = os.stat(f"/proc/{pid}/ns/net").st_ino
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if netns in inodes or any(e.startswith(tag) for e in env):
            found.append(f"process {pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
    return found


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    prefix = "st" + secrets.token_hex(3)
    before = _host_fingerprint()
    net = SimNetwork(prefix, _free_subnet(), tmp_path / "net")
    sim = Sim(prefix, net, tmp_path)
    try:
        net.ensure()
        yield sim
    finally:
        for vm in sim.vms:
            with contextlib.suppress(OSError):
                sim.inodes.add(os.stat(f"/run/netns/{vm.netns}").st_ino)
        cleanup_all(prefix)
        left = _leftovers(prefix, sim.inodes)
        assert not left, f"cleanup_all({prefix!r}) left: {left}"
        assert _host_fingerprint() == before, "host files changed"


# -- tests ------------------------------------------------------------------------------------
def test_two_vms_reach_each_other_over_tcp(sim: Sim) -> None:
    a, b = sim.vm("a"), sim.vm("b")
    rc, _, err = run_in(a, ["sh", "-c", "cat > ~/s.js"], stdin=NODE_APP.encode())
    assert rc == 0, err
    rc, _, err = run_in(a, ["sh", "-c", "nohup node ~/s.js >~/s.log 2>&1 &"])
    assert rc == 0, err
    assert http_get(f"http://{a.ip}:3000/") == "hello from a\n"
    rc, out, err = run_in(b, ["curl", "-sS", "--max-time", "5", f"http://{a.ip}:3000/"])
    assert (rc, out) == (0, "hello from a\n"), err
    rc, out, _ = run_in(b, ["hostname"])
    assert out.strip() == "b"


def test_exec_user_sudo_exit_codes_and_stdin(sim: Sim) -> None:
    vm = sim.vm("e")
    assert run_in(vm, ["id", "-un"])[1].strip() == "ubuntu"
    assert run_in(vm, ["sh", "-c", "echo $HOME $USER; pwd"])[1].split() == [
        "/home/ubuntu",
        "ubuntu",
        "/home/ubuntu",
    ]
    assert run_in(vm, ["sudo", "id", "-u"])[1].strip() == "0"
    assert run_in(vm, ["sh", "-c", "echo oops >&2; exit 7"])[0:3:2] == (7, "oops\n")
    assert run_in(vm, ["cat"], stdin=b"piped\n")[1] == "piped\n"
    assert run_in(vm, ["id", "-u"], user="root")[1].strip() == "0"
    assert run_in(vm, ["no-such-command"])[0] == 127
    rc, out, _ = run_in(vm, ["su", "-", "ubuntu", "-c", "id -un; echo $HOME"], user="root")
    assert (rc, out.split()) == (0, ["ubuntu", "/home/ubuntu"])


def test_cloud_init_nginx_lb_proxies_to_app_vm(sim: Sim) -> None:
    app = sim.vm("app")
    run_in(app, ["sh", "-c", "cat > ~/s.js && (nohup node ~/s.js >/dev/null 2>&1 &)"],
           stdin=NODE_APP.encode())  # fmt: skip
    http_get(f"http://{app.ip}:3000/", expect="hello")
    note = base64.b64encode(b"made by cloud-init\n").decode()
    user_data = f"""#cloud-config
users: [default]
package_update: true
packages: [nginx]
write_files:
  - path: /home/ubuntu/note.txt
    encoding: b64
    content: {note}
    owner: ubuntu:ubuntu
    permissions: '0600'
    defer: true
  - path: /etc/labctl/site.conf
    content: |
      upstream app {{ server {app.ip}:3000 max_fails=2 fail_timeout=2s; }}
      server {{ listen 80 default_server; location / {{ proxy_pass http://app; }} }}
runcmd:
  - rm -f /etc/nginx/sites-enabled/default
  - cp /etc/labctl/site.conf /etc/nginx/sites-available/lab
  - ln -s /etc/nginx/sites-available/lab /etc/nginx/sites-enabled/lab
  - nginx -t
  - systemctl reload nginx
"""
    lb = sim.vm("lb", user_data=None)
    result = lb.run_cloud_init(user_data, timeout=60)
    assert result.status == "done", result.output_log.read_text() if result.output_log else result
    assert http_get(f"http://{lb.ip}/", expect="hello from app") == "hello from app\n"
    rc, out, _ = run_in(lb, ["stat", "-c", "%U:%G %a", "/home/ubuntu/note.txt"])
    assert (rc, out.strip()) == (0, "ubuntu:ubuntu 600")
    assert run_in(lb, ["cat", "/home/ubuntu/note.txt"])[1] == "made by cloud-init\n"
    assert run_in(lb, ["systemctl", "is-enabled", "nginx"])[1].strip() == "enabled"
    rc, out, _ = run_in(lb, ["cloud-init", "status", "--wait", "--format", "json"])
    assert rc == 0 and '"extended_status": "done"' in out
    lb.stop()
    assert port_dead(f"http://{lb.ip}/")
    lb.boot()  # nginx is enabled, so it comes back with the lab site
    assert http_get(f"http://{lb.ip}/", expect="hello from app") == "hello from app\n"


def test_pm2_app_survives_stop_and_boot(sim: Sim) -> None:
    app_b64 = base64.b64encode(NODE_APP.encode()).decode()
    user_data = f"""#cloud-config
users: [default]
write_files:
  - path: /home/ubuntu/app/server.js
    encoding: b64
    content: {app_b64}
    owner: ubuntu:ubuntu
    defer: true
runcmd:
  - su - ubuntu -c 'cd ~/app && pm2 start server.js --name x && pm2 save'
  - env PATH=$PATH:/usr/bin pm2 startup systemd -u ubuntu --hp /home/ubuntu
  - su - ubuntu -c 'pm2 kill'
  - systemctl restart pm2-ubuntu
"""
    vm = sim.vm("p", user_data=user_data)
    url = f"http://{vm.ip}:3000/"
    assert http_get(url) == "hello from p\n"
    assert run_in(vm, ["systemctl", "is-enabled", "pm2-ubuntu"])[1].strip() == "enabled"
    vm.stop()
    assert not vm.running()
    assert port_dead(url)
    vm.boot()
    assert vm.running()
    assert http_get(url) == "hello from p\n"
    # Power-off ran the running unit's ExecStop (`pm2 kill`), as systemd does: a pm2 daemon
    # signalled instead dumps its list, and an app that exited before the dump comes back stopped.
    rc, log, _ = run_in(vm, ["cat", "/home/ubuntu/.pm2/pm2.log"])
    assert rc == 0 and "PM2 successfully stopped" in log, log
    assert "killed by signal" not in log, log
    rc, out, _ = run_in(vm, ["pm2", "jlist"])
    assert rc == 0 and '"name":"x"' in out
    assert run_in(vm, ["systemctl", "is-active", "pm2-ubuntu"])[0] == 0
    # cloud-init is not rerun on boot (no second runcmd in the log)
    assert (
        run_in(vm, ["grep", "-c", "Freeze a process list", "/var/log/cloud-init-output.log"])[
            1
        ].strip()
        == "1"
    )


def test_failing_last_runcmd_is_error_but_boot_finished(sim: Sim) -> None:
    vm = sim.vm("f", user_data=None)
    result = vm.run_cloud_init("#cloud-config\nruncmd:\n  - 'false'\n  - [sh, -c, 'exit 3']\n", 60)
    assert result.status == "error" and result.exit_code == 1
    assert "scripts_user" in result.errors[0]
    assert run_in(vm, ["test", "-f", "/var/lib/cloud/instance/boot-finished"])[0] == 0
    rc, out, _ = run_in(vm, ["cloud-init", "status", "--wait"])
    assert rc == 1 and "status: error" in out
    rc, out, _ = run_in(vm, ["cloud-init", "status", "--long"])
    assert "extended_status: error - done" in out
    script = run_in(vm, ["sudo", "cat", "/var/lib/cloud/instance/scripts/runcmd"])[1]
    assert script == "#!/bin/sh\nfalse\n'sh' '-c' 'exit 3'\n"


def test_failing_middle_runcmd_is_not_an_error(sim: Sim) -> None:
    vm = sim.vm("m", user_data="#cloud-config\nruncmd:\n  - 'false'\n  - 'true'\n")
    assert run_in(vm, ["cloud-init", "status"])[0] == 0


def test_missing_package_is_an_error(sim: Sim) -> None:
    vm = sim.vm("k", user_data=None)
    result = vm.run_cloud_init("#cloud-config\npackages: [no-such-package-simvm]\n", 60)
    assert result.status == "error"
    assert "package_update_upgrade_install" in result.errors[0]
    assert run_in(vm, ["cloud-init", "status"])[0] == 1
    assert "Unable to locate package" in run_in(vm, ["cat", "/var/log/cloud-init-output.log"])[1]


def test_unknown_key_is_degraded(sim: Sim) -> None:
    vm = sim.vm("u", user_data=None)
    result = vm.run_cloud_init("#cloud-config\npacakges: [nginx]\n", 60)
    assert (result.status, result.exit_code) == ("degraded", 2)
    rc, out, _ = run_in(vm, ["cloud-init", "status", "--format", "json"])
    assert rc == 2 and '"extended_status": "degraded done"' in out
    # nginx was never "installed": no unit, no config
    assert run_in(vm, ["systemctl", "start", "nginx"], user="root")[0] != 0
    assert run_in(vm, ["test", "-e", "/etc/nginx"])[0] == 1


def test_users_without_default_has_no_ubuntu(sim: Sim) -> None:
    vm = sim.vm("n", user_data="#cloud-config\nusers:\n  - name: alice\n    shell: /bin/bash\n")
    rc, _, err = run_in(vm, ["true"])
    assert rc == 255 and "ubuntu" in err
    assert run_in(vm, ["id", "-un"], user="alice")[1].strip() == "alice"


def test_cloud_init_timeout_leaves_vm_provisioning(sim: Sim) -> None:
    vm = sim.vm("t", user_data=None)
    with pytest.raises(CloudInitTimeout):
        vm.run_cloud_init("#cloud-config\nruncmd:\n  - sleep 2\n", timeout=0.3)
    assert vm.running()
    rc, out, _ = run_in(vm, ["cloud-init", "status", "--wait"], user="root")
    assert rc == 0 and out.rstrip().endswith("status: done")
