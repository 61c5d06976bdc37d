"""labctl on real Linux VMs (qemu), driven through multipass's CLI (the fake's `vm` backend).

The seed lab (app1 + gateway with lb+app, a local git repository as the source) and a lab whose
install exits 1 come up once per session, in parallel; the tests run in file order on them.
Traffic goes only to the session's private bridge subnet; every wait and request loop is bounded.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from labctl.host.probes import http_get
from tests.realvm.conftest import VmSession

pytestmark = [pytest.mark.vm, pytest.mark.slow]

APPS = ["app1", "gateway"]


def labctl(
    session: VmSession, *args: str, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    return session.lab.labctl(*args, "-f", str(session.seed_file), timeout=timeout)


def status(session: VmSession) -> tuple[int, dict]:
    result = labctl(session, "status", "--json", timeout=300)
    return result.returncode, json.loads(result.stdout)


def guest(session: VmSession, vm: str, *argv: str, timeout: float = 120) -> str:
    result = session.lab.multipass_cmd("exec", f"alvin-{vm}", "--", *argv, timeout=timeout)
    assert result.returncode == 0, f"{vm}: {argv}: {result.stderr}"
    return result.stdout.strip()


def serves_through_both(session: VmSession, *, within: float = 15.0) -> None:
    """Every request answers 200, and both app VMs answer within `within` seconds: an nginx
    worker that saw a backend refuse skips it until fail_timeout (5 s) has passed, so right after
    the apps came back one round may reach only the other. Rounds of 6, one a second, bounded."""
    gateway = session.lab.ip("alvin-gateway")
    expected = {f"{session.lab.ip(f'alvin-{vm}')}:3000" for vm in APPS}
    deadline = time.monotonic() + within
    while True:
        answers = [
            http_get(gateway, 80, "alvin.xyz", path="/movies/1", timeout=10) for _ in range(6)
        ]
        assert [a.status for a in answers] == [200] * 6, answers
        if {a.backend for a in answers} == expected:
            return
        assert time.monotonic() < deadline, (answers, expected)
        time.sleep(1)


def wait_healthy(session: VmSession, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        code, report = status(session)
        if code == 0 or time.monotonic() > deadline:
            assert code == 0, report["problems"]
            return report
        time.sleep(5)


def test_seed_lab_comes_up_and_serves_through_both_backends(seed: VmSession) -> None:
    result = seed.up_results["alvin"]
    assert result.returncode == 0, seed.explain(result)
    gateway = seed.lab.ip("alvin-gateway")
    assert f"{gateway}\talvin.xyz www.alvin.xyz" in seed.lab.hosts.read_text()
    code, report = status(seed)
    assert code == 0 and report["healthy"], report["problems"]
    # labctl resolved the domain through the hosts file bound over /etc/hosts (the real resolver)
    assert report["domain"]["resolves"] and set(report["domain"]["resolved"]) == {gateway}
    assert report["domain"]["backends_seen"] == APPS
    for vm in report["vms"]:  # real facts from labctl-vm-status inside each VM
        assert vm["cloud_init"] == "done"
        assert [(p["name"], p["status"]) for p in vm["pm2"]] == [("dumbflix", "online")]
        assert isinstance(vm["pm2"][0]["pid"], int) and vm["app_port_open"]
    lb = next(vm for vm in report["vms"] if vm["name"] == "gateway")
    assert lb["nginx_active"] and lb["nginx_config_ok"]
    serves_through_both(seed)
    body = subprocess.run(
        ["curl", "-s", "--max-time", "10", "-H", "Host: www.alvin.xyz", f"http://{gateway}/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    assert "dumbflix-like frontend seed" in body  # built from the git repo with the app's env


def test_they_are_real_vms_with_systemd_and_units_enabled(seed: VmSession) -> None:
    host_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    for vm in APPS:
        assert guest(seed, vm, "cat", "/proc/1/comm") == "systemd"
        assert guest(seed, vm, "hostname") == f"alvin-{vm}"
        assert guest(seed, vm, "systemctl", "is-enabled", "pm2-ubuntu") == "enabled"
        assert guest(seed, vm, "cat", "/proc/sys/kernel/random/boot_id") != host_boot  # own kernel
    assert guest(seed, "gateway", "systemctl", "is-active", "nginx") == "active"
    assert (
        "syntax is ok"
        in seed.lab.multipass_cmd("exec", "alvin-gateway", "--", "sudo", "nginx", "-t").stderr
    )


def test_the_vms_got_labctls_user_data_byte_for_byte(seed: VmSession) -> None:
    """No offline substitutions were needed (tests/qemuvm/README.md): apt-get update fails
    softly without a route out, and every package labctl asks for is already in the image."""
    launches = {c["argv"][c["argv"].index("--name") + 1]: c for c in seed.lab.fake.calls("launch")}
    for vm in APPS:
        name = f"alvin-{vm}"
        sent = launches[name]["cloud_init"]  # what labctl wrote to `launch --cloud-init -`
        assert "deb.nodesource.com" in sent and "package_update: true" in sent
        assert (seed.lab.root / "sim" / name / "seed" / "user-data").read_text() == sent
        # and the real apt really ran offline with it: the NodeSource source was configured
        log = guest(seed, vm, "sudo", "cat", "/var/log/cloud-init-output.log")
        assert "Failed to fetch https://deb.nodesource.com/node_20.x" in log


def test_drill_app_and_vm_modes_pass_on_real_vms(seed: VmSession) -> None:
    """`--mode vm` powers an app VM off and on: a real boot, after which pm2's startup unit
    (not labctl) brings the app back."""
    before = {vm: guest(seed, vm, "cat", "/proc/sys/kernel/random/boot_id") for vm in APPS}
    for mode in ("app", "vm"):
        result = labctl(seed, "drill", "--mode", mode, "--requests", "40", "--json")
        drill = json.loads(result.stdout)
        failed = [s for s in drill["steps"] if not s["passed"]]
        assert result.returncode == 0 and drill["passed"], (failed, seed.explain(result))
        wait_healthy(seed, within=120)
    rebooted = [
        vm for vm in APPS if guest(seed, vm, "cat", "/proc/sys/kernel/random/boot_id") != before[vm]
    ]
    assert rebooted, "drill --mode vm powered no app VM off"
    for vm in rebooted:
        assert guest(seed, vm, "systemctl", "is-active", "pm2-ubuntu") == "active"
    report = wait_healthy(seed, within=180)
    pm2 = {vm["name"]: [(p["name"], p["status"]) for p in vm["pm2"]] for vm in report["vms"]}
    assert all(pm2[vm] == [("dumbflix", "online")] for vm in APPS), pm2
    serves_through_both(seed)


def test_labctl_check_grades_the_finished_lab_on_real_vms(seed: VmSession, tmp_path: Path) -> None:
    """Course checks on real VMs: the built-in checks pass on the finished (stage lb) lab, with a real
    `pm2 kill` + `pm2 resurrect` and a real `nginx -T` read; the lab is left serving."""
    junit = tmp_path / "check.xml"
    names = ["app-online", "domain-resolves", "lb-serves", "reverse-proxy", "load-balancing"]
    argv = [arg for name in [*names, "pm2-resurrect"] for arg in ("--check", name)]
    result = labctl(seed, "check", *argv, "--json", "--junit", str(junit))
    report = json.loads(result.stdout)
    [lab] = report["labs"]
    verdicts = {c["name"]: (c["status"], c["reason"]) for c in lab["checks"]}
    assert result.returncode == 0 and report["passed"], (verdicts, seed.explain(result))
    assert set(verdicts) == {*names, "pm2-resurrect"}
    assert 'failures="0"' in junit.read_text()
    wait_healthy(seed, within=120)
    serves_through_both(seed)


def test_reset_one_vm_and_restore_the_lab_from_the_baseline_up_took(seed: VmSession) -> None:
    """`up` took the `baseline` snapshot itself (the save path: stop, snapshot, start on this
    driver); `reset app1` restores it on app1 only, `snapshot restore baseline` on every VM. A
    separate `snapshot save` would cost two more boots under TCG and proves nothing more here:
    the save command is the same engine call, run on LXD and the simulated VMs."""
    assert "baseline" in seed.lab.fake.instance("alvin-app1")["snapshots"]
    for vm in APPS:
        guest(seed, vm, "touch", "/home/ubuntu/after-baseline")
    reset = labctl(seed, "reset", "app1")  # the baseline exists: stop, restore, start
    assert reset.returncode == 0, seed.explain(reset)
    assert "app1: restored" in reset.stdout
    assert "after-baseline" not in guest(seed, "app1", "ls", "/home/ubuntu")
    assert "after-baseline" in guest(seed, "gateway", "ls", "/home/ubuntu")  # left alone
    restored = labctl(seed, "snapshot", "restore", "baseline")
    assert restored.returncode == 0, seed.explain(restored)
    assert "after-baseline" not in guest(seed, "gateway", "ls", "/home/ubuntu")
    wait_healthy(seed, within=120)
    serves_through_both(seed)


def test_down_deletes_every_vm_and_its_files(seed: VmSession) -> None:
    result = labctl(seed, "down", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert seed.lab.instances() == {}
    leftovers = [p.name for p in (seed.lab.root / "sim").iterdir() if p.name.startswith("alvin-")]
    assert leftovers == []
    assert "alvin.xyz" not in seed.lab.hosts.read_text()
