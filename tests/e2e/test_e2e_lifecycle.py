"""Lifecycle commands on simulated VMs, where the behaviour is about serving."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from labctl.host.probes import Tally
from tests.e2e.harness import SimLab

pytestmark = [pytest.mark.sim, pytest.mark.slow]

LAB = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
lb: {fail_timeout: 2s, read_timeout: 3s, connect_timeout: 1s}
waits: {launch: 300s, cloud_init: 300s, serve: 90s}
"""


def status(lab: SimLab, path: Path) -> dict:
    return json.loads(lab.labctl("status", "-f", str(path), "--json").stdout)


def test_student_breaks_the_lab_and_the_baseline_snapshot_brings_it_back(sim_lab: SimLab) -> None:
    path = sim_lab.root / "lab.yaml"
    path.write_text(LAB)
    result = sim_lab.labctl("up", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(sim_lab.labctl("snapshot", "list", "-f", str(path), "--json").stdout)
    assert "baseline" in json.dumps(listed)  # taken automatically after the first healthy up

    # the student's afternoon: an invalid nginx site, nginx restarted into failure, pm2 killed
    site = "/etc/nginx/sites-available/labctl-hello.conf"
    broken = sim_lab.multipass_cmd(
        "exec", "hello-lb", "--", "sudo", "tee", site, stdin="upstream {\n"
    )
    assert broken.returncode == 0
    sim_lab.multipass_cmd("exec", "hello-lb", "--", "sudo", "systemctl", "restart", "nginx")
    assert sim_lab.multipass_cmd("exec", "hello-app1", "--", "pm2", "kill").returncode == 0
    report = status(sim_lab, path)
    assert report["healthy"] is False
    assert any(p.startswith("lb: nginx") for p in report["problems"]), report["problems"]
    assert any(p.startswith("app1: pm2") for p in report["problems"]), report["problems"]

    restored = sim_lab.labctl("snapshot", "restore", "baseline", "-f", str(path))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    report = status(sim_lab, path)
    assert report["healthy"] is True, report["problems"]
    assert report["domain"]["backends_seen"] == ["app1", "app2"]
    site_now = sim_lab.multipass_cmd("exec", "hello-lb", "--", "sudo", "cat", site).stdout
    assert "upstream labctl_hello" in site_now  # the student's edit is gone


def test_reset_of_one_app_vm_keeps_the_domain_serving(sim_lab: SimLab) -> None:
    path = sim_lab.root / "lab.yaml"
    path.write_text(LAB)
    assert sim_lab.labctl("up", "-f", str(path)).returncode == 0
    assert sim_lab.multipass_cmd("exec", "hello-app2", "--", "pm2", "stop", "hello").returncode == 0
    tallies: list[Tally] = []
    done = threading.Event()

    def load() -> None:  # bounded: stops when the reset ends or after 400 requests / 120 s
        while not done.is_set() and sum(t.total for t in tallies) < 400:
            tallies.append(
                sim_lab.hammer("hello-lb", "hello.lab", requests=20, deadline=120, timeout=10)
            )

    worker = threading.Thread(target=load)
    worker.start()
    try:
        reset = sim_lab.labctl("reset", "app2", "-f", str(path))
    finally:
        done.set()
        worker.join(timeout=180)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    answered = {
        code: sum(t.by_status.get(code, 0) for t in tallies)
        for t in tallies
        for code in t.by_status
    }
    assert set(answered) == {"200"} and answered["200"] > 0, answered
    report = sim_lab.wait_healthy(path, within=15)  # app2 was away: fail_timeout (2 s) per worker
    assert report["healthy"] is True, report["problems"]


EARLY = """\
name: early
domain: early.lab
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: gateway, roles: [lb, app]}
lb: {fail_timeout: 2s, read_timeout: 3s, connect_timeout: 1s}
waits: {launch: 300s, cloud_init: 300s, serve: 90s}
"""


def test_a_baseline_taken_before_the_wiring_restores_to_a_serving_lab(sim_lab: SimLab) -> None:
    """The early baseline: with one launch slot the gateway (lb+app, heaviest, first) is done while app1
    still waits for the slot, so it takes its baseline before nginx has the lab's site; reset
    restores that and the wiring puts the site back."""
    path = sim_lab.root / "lab.yaml"
    path.write_text(EARLY)
    result = sim_lab.labctl("up", "-f", str(path), "--max-parallel", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway baseline snapshot of early-gateway while others launch" in result.stderr
    calls = sim_lab.fake.calls()
    snapshots = [c["argv"][-1] for c in calls if c["command"] == "snapshot"]
    assert snapshots == ["early-gateway", "early-app1"]  # app1, the last wave, after serving
    first_apply = next(
        i
        for i, c in enumerate(calls)
        if c["command"] == "exec" and "labctl-lb-apply" in c["argv"][-1]
    )
    gateway_snapshot = next(
        i
        for i, c in enumerate(calls)
        if c["command"] == "snapshot" and "early-gateway" in c["argv"]
    )
    assert gateway_snapshot < first_apply
    listed = json.loads(sim_lab.labctl("snapshot", "list", "-f", str(path), "--json").stdout)
    [baseline] = [e for e in listed["entries"] if e["name"] == "baseline"]
    assert sorted(baseline["present"]) == ["app1", "gateway"]

    site = "/etc/nginx/sites-available/labctl-early.conf"
    broken = sim_lab.multipass_cmd(
        "exec", "early-gateway", "--", "sudo", "tee", site, stdin="upstream {\n"
    )
    assert broken.returncode == 0
    reset = sim_lab.labctl("reset", "gateway", "-f", str(path))
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "gateway: restored" in reset.stdout
    report = sim_lab.wait_healthy(path, within=30)
    assert report["domain"]["backends_seen"] == ["app1", "gateway"]
    site_now = sim_lab.multipass_cmd("exec", "early-gateway", "--", "sudo", "cat", site).stdout
    assert "upstream labctl_early" in site_now
