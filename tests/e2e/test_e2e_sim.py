"""labctl end to end on simulated VMs: real cloud-init user-data, real nginx, Node.js and pm2.

Traffic goes only to the simulated VMs' addresses (network namespaces these tests create) and
loopback; every request loop is bounded in count and time.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from labctl.config.load import parse_lab
from labctl.host.probes import http_get
from labctl.render.userdata import LB_APPLY_COMMAND, Backend, render_nginx_site
from tests.e2e.harness import SimLab, seed_lab_text, serve_git_app

pytestmark = [pytest.mark.sim, pytest.mark.slow]

FAIL_TIMEOUT = 5
HELLO = f"""\
name: hello
domain: hello.lab
app: {{name: hello, source: {{builtin: hello}}, port: 3000}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: app3, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{max_fails: 2, fail_timeout: {FAIL_TIMEOUT}s, read_timeout: 3s, connect_timeout: 1s}}
waits: {{launch: 300s, cloud_init: 300s, serve: 90s}}
"""
APPS = ["app1", "app2", "app3"]


def write_lab(lab: SimLab, text: str = HELLO) -> Path:
    path = lab.root / "lab.yaml"
    path.write_text(text)
    return path


def up(lab: SimLab, path: Path) -> None:
    result = lab.labctl("up", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def status_json(lab: SimLab, path: Path) -> tuple[int, dict]:
    result = lab.labctl("status", "-f", str(path), "--json")
    return result.returncode, json.loads(result.stdout)


def pm2(lab: SimLab, vm: str, *args: str) -> None:
    result = lab.multipass_cmd("exec", f"hello-{vm}", "--", "pm2", *args)
    assert result.returncode == 0, result.stderr


def backend_of(lab: SimLab, vm: str) -> str:
    return f"{lab.ip(f'hello-{vm}')}:3000"


def test_hello_lab_up_is_serving_healthy_idempotent_and_down_leaves_nothing(
    sim_lab: SimLab,
) -> None:
    path = write_lab(sim_lab)
    original_hosts = sim_lab.hosts.read_text()
    up(sim_lab, path)
    lb_ip = sim_lab.ip("hello-lb")
    assert (
        f"# BEGIN labctl hello\n{lb_ip}\thello.lab\n# END labctl hello\n"
        in sim_lab.hosts.read_text()
    )

    code, report = status_json(sim_lab, path)
    assert code == 0 and report["healthy"] is True, report["problems"]
    assert report["domain"]["resolves"] and report["domain"]["serving"]
    assert report["domain"]["backends_seen"] == APPS
    for vm in report["vms"]:
        assert vm["state"] == "Running" and vm["ipv4"] == [sim_lab.ip(f"hello-{vm['name']}")]
        # Read from the VM's status agent over the bridge, not by `multipass exec`.
        assert (vm["checked_via"], vm["agent_error"]) == ("agent", ""), vm
        if vm["name"] in APPS:
            assert [(p["name"], p["status"]) for p in vm["pm2"]] == [("hello", "online")]
    tally = sim_lab.hammer("hello-lb", "hello.lab", requests=30)
    assert tally.ok == 30 and set(tally.by_backend) == {backend_of(sim_lab, vm) for vm in APPS}

    again = sim_lab.labctl("up", "-f", str(path))
    assert again.returncode == 0
    assert len(sim_lab.fake.calls("launch")) == 4  # nothing launched the second time
    assert "nginx config unchanged" in again.stderr

    down = sim_lab.labctl("down", "-f", str(path))
    assert down.returncode == 0, down.stderr
    assert sim_lab.instances() == {}
    assert sim_lab.hosts.read_text() == original_hosts


def test_app_down_on_one_vm_then_all_then_recovery(sim_lab: SimLab) -> None:
    path = write_lab(sim_lab)
    up(sim_lab, path)

    pm2(sim_lab, "app2", "stop", "hello")
    tally = sim_lab.hammer("hello-lb", "hello.lab", requests=1000, deadline=120)
    assert tally.total == 1000 and tally.ok == 1000, tally.by_status
    assert backend_of(sim_lab, "app2") not in tally.by_backend
    code, report = status_json(sim_lab, path)
    assert code == 1 and report["healthy"] is False
    assert "app2: pm2 process 'hello' is stopped" in report["problems"]
    assert not any(p.startswith(("app1:", "app3:", "lb:")) for p in report["problems"]), report[
        "problems"
    ]

    for vm in ("app1", "app3"):
        pm2(sim_lab, vm, "stop", "hello")
    tally = sim_lab.hammer("hello-lb", "hello.lab", requests=20, deadline=60)
    assert tally.by_status == {"502": 20}  # nginx itself answers: LB alive, upstreams dead
    code, report = status_json(sim_lab, path)
    assert code == 1
    assert {f"{vm}: pm2 process 'hello' is stopped" for vm in APPS} <= set(report["problems"])
    assert any(p.startswith("domain: http://hello.lab/ is not serving") for p in report["problems"])

    for vm in APPS:
        pm2(sim_lab, vm, "start", "hello")
    started = time.monotonic()
    first_ok = None
    while time.monotonic() - started < 30:  # bounded: 30 s at most, 10 requests a second
        if http_get(sim_lab.ip("hello-lb"), 80, "hello.lab", timeout=5).status == 200:
            first_ok = time.monotonic() - started
            break
        time.sleep(0.1)
    assert first_ok is not None and first_ok <= FAIL_TIMEOUT + 2, first_ok
    # every backend is back once each nginx worker's fail_timeout window for it has passed
    report = sim_lab.wait_healthy(path, within=FAIL_TIMEOUT + 10)
    assert report["healthy"], report["problems"]


def test_frozen_app_and_stopped_vm_cost_no_failed_requests(sim_lab: SimLab) -> None:
    path = write_lab(sim_lab)
    up(sim_lab, path)

    pm2(sim_lab, "app1", "sendSignal", "SIGSTOP", "hello")  # accepts connections, never answers
    try:
        tally = sim_lab.hammer("hello-lb", "hello.lab", requests=150, deadline=120, timeout=10)
    finally:
        pm2(sim_lab, "app1", "sendSignal", "SIGCONT", "hello")
    assert tally.total == 150 and tally.ok == 150, tally.by_status
    assert backend_of(sim_lab, "app1") not in tally.by_backend

    stop = sim_lab.multipass_cmd("stop", "hello-app3")
    assert stop.returncode == 0, stop.stderr
    tally = sim_lab.hammer("hello-lb", "hello.lab", requests=150, deadline=120, timeout=10)
    assert tally.total == 150 and tally.ok == 150, tally.by_status
    code, report = status_json(sim_lab, path)
    assert code == 1 and "app3: VM is Stopped" in report["problems"]

    # `up` starts the stopped VM; pm2's startup unit brings the app back as after a reboot
    up(sim_lab, path)
    report = sim_lab.wait_healthy(
        path, within=FAIL_TIMEOUT + 10
    )  # per-worker fail state, see harness
    assert report["healthy"], report["problems"]


def test_drill_passes_on_a_healthy_lab_and_names_the_step_on_a_single_upstream(
    sim_lab: SimLab,
) -> None:
    path = write_lab(sim_lab)
    up(sim_lab, path)
    result = sim_lab.labctl("drill", "-f", str(path), "--requests", "60", "--json")
    drill = json.loads(result.stdout)
    assert result.returncode == 0 and drill["passed"], [
        s for s in drill["steps"] if not s["passed"]
    ]
    assert [s["name"] for s in drill["steps"]][-2:] == ["all backends down", "all back"]
    report = sim_lab.wait_healthy(path, within=FAIL_TIMEOUT + 10)  # the drill restored everything
    assert report["healthy"], report["problems"]

    lab = parse_lab(HELLO)
    single = render_nginx_site(lab, [Backend("app1", backend_of(sim_lab, "app1"))])
    pushed = sim_lab.multipass_cmd("exec", "hello-lb", "--", *LB_APPLY_COMMAND, stdin=single)
    assert pushed.returncode == 0 and "applied" in pushed.stdout
    result = sim_lab.labctl("drill", "-f", str(path), "--requests", "20")
    assert result.returncode == 1
    assert "drill failed at: precheck" in result.stdout
    assert "did not answer through the load balancer" in result.stdout


@pytest.fixture
def git_app(sim_lab: SimLab, tmp_path: Path):
    """A local git repository served by `git daemon` to the simulated VMs (no internet needed)."""
    port = 19418 + int(sim_lab.prefix[1:], 16) % 1000
    with serve_git_app(tmp_path, port):
        yield port


def test_seed_lab_shape_from_a_local_git_repository(sim_lab: SimLab, git_app: int) -> None:
    subnet = sim_lab.fake.settings()["sim_subnet"]
    host = subnet.rsplit(".", 1)[0] + ".1"  # the bridge address: the Multipass host, seen from VMs
    path = write_lab(
        sim_lab,
        seed_lab_text(
            f"git://{host}:{git_app}/frontend.git",
            app_extra="  install: npm install --no-audit --no-fund --no-update-notifier\n",
            after="waits: {launch: 300s, cloud_init: 300s, serve: 90s}\n",
        ),
    )
    result = sim_lab.labctl("up", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    gateway = sim_lab.ip("alvin-gateway")
    answers = [http_get(gateway, 80, "alvin.xyz", path="/movies/1", timeout=5) for _ in range(6)]
    assert all(a.status == 200 for a in answers)
    assert {a.backend for a in answers} == {f"{sim_lab.ip('alvin-app1')}:3000", f"{gateway}:3000"}
    code, report = status_json(sim_lab, path)
    assert code == 0, report["problems"]
    www = http_get(gateway, 80, "www.alvin.xyz", timeout=5)
    assert www.status == 200
    body = subprocess.run(
        ["curl", "-s", "-H", "Host: alvin.xyz", f"http://{gateway}/"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    assert "dumbflix-like frontend seed" in body  # built with the app's env, served by pm2 serve
    # The real-VM test's check on this shape: pm2 serve --spa serves labctl's check file from
    # build/, the gateway (lb + app) holds its port through pm2; the file is gone afterwards.
    names = ["app-online", "lb-serves", "reverse-proxy", "load-balancing"]
    checked = sim_lab.labctl(
        "check", "-f", str(path), "--json", *(a for n in names for a in ("--check", n))
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [lab] = json.loads(checked.stdout)["labs"]
    reasons = {c["name"]: c["reason"] for c in lab["checks"]}
    assert "serves labctl's check file" in reasons["app-online"], reasons
    assert reasons["load-balancing"].startswith("every backend answered with its own check file")
    for vm in ("app1", "gateway"):
        listing = sim_lab.multipass_cmd("exec", f"alvin-{vm}", "--", "ls", "/home/ubuntu/app/build")
        assert listing.returncode == 0 and "labctl-check-" not in listing.stdout, listing.stdout
