"""labctl end to end on a real LXD (the package's private server): a lab with `engine: {name:
lxd}` comes up in system containers with the lab's own cloud-init, serves its domain through
every backend via the LB's nginx, is reported healthy by `status` and `doctor`, passes `check`, passes
`drill` (an app stopped, a container powered off: pm2's startup unit brings the app back), is
broken by hand and brought back by `snapshot restore` and `reset`, and `down` leaves nothing; a
lab whose install fails is reported with the real cloud-init log's tail.

labctl runs as a subprocess, as a user runs it, with the daemon's LXD_DIR/LXD_CONF (the
client talks to the private daemon only) and the test's hosts file bound over /etc/hosts in a
private mount namespace (tests/e2e/with_hosts.py), so the real resolver sees what labctl
writes. Traffic goes only to the server's bridge (10.252.0.0/24). Lab and container names start
with the session's container prefix, so the session's sweep recognises anything left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.host.probes import http_get
from tests.lxd.instances import ipv4
from tests.lxd.labctl_run import explain, labctl_env, run_labctl
from tests.lxd.server import SERVER_SUBNET, LxdServer

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

LAB = "lxt"  # the session's container prefix is "lxt-": containers are lxt-app1, ...
DOMAIN = "lxt.lab"
APPS = ["app1", "app2"]
LAB_YAML = f"""\
name: {LAB}
domain: {DOMAIN}
engine: {{name: lxd}}
image: labctl-test
defaults: {{cpus: 1, memory: 512M, disk: 3G}}
app:
  name: hello
  source: {{builtin: hello}}
  port: 3000
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{max_fails: 2, fail_timeout: 5s, read_timeout: 3s, connect_timeout: 1s}}
waits: {{launch: 600s, cloud_init: 600s, serve: 120s}}
"""


@dataclass
class LxdLab:
    server: LxdServer
    root: Path
    file: Path
    hosts: Path
    up: subprocess.CompletedProcess[str] | None = None

    def env(self) -> dict[str, str]:
        return labctl_env(self.server.daemon.env, self.root)

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_labctl(args, file=self.file, hosts=self.hosts, env=self.env(), timeout=timeout)

    def instances(self) -> dict[str, dict[str, Any]]:
        listed = self.server.daemon.lxc("list", "--format", "json", timeout=60).stdout
        return {i["name"]: i for i in json.loads(listed) if i["name"].startswith(f"{LAB}-")}

    def ip(self, vm: str) -> str:
        address = ipv4(self.instances()[f"{LAB}-{vm}"])
        assert address is not None, f"{vm} has no IPv4 address"
        return address

    def guest(self, vm: str, *argv: str) -> str:
        return self.server.daemon.lxc("exec", f"{LAB}-{vm}", "--", *argv, timeout=120).stdout

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.labctl("status", "--json", timeout=300)
        return result.returncode, json.loads(result.stdout)


def serves_through_every_backend(lab: LxdLab, *, within: float = 15.0) -> None:
    """Every request answers 200, and every app backend answers within `within` seconds.

    Each nginx worker keeps its own failure state: a worker that saw a backend refuse skips it
    until the lab's fail_timeout (5 s) has passed, so right after the apps came back (drill, a
    restore) a round of requests may reach only the others. Rounds of 6, one a second, bounded.
    """
    lb = lab.ip("lb")
    expected = {f"{lab.ip(vm)}:3000" for vm in APPS}
    deadline = time.monotonic() + within
    while True:
        answers = [http_get(lb, 80, DOMAIN, path="/", timeout=10) for _ in range(6)]
        assert [a.status for a in answers] == [200] * 6, (answers, why_backends_were_skipped(lab))
        seen = {a.backend for a in answers}
        if seen == expected:
            return
        assert time.monotonic() < deadline, (answers, expected, why_backends_were_skipped(lab))
        time.sleep(1)


def why_backends_were_skipped(lab: LxdLab) -> str:
    """What the LB's nginx logged about its upstreams and what pm2 says in each app container:
    the evidence for a backend that did not answer."""
    parts = [
        "nginx error.log: "
        + lab.guest("lb", "sh", "-c", "tail -n 20 /var/log/nginx/error.log || true"),
        "site: " + lab.guest("lb", "sh", "-c", "grep -h server /etc/nginx/sites-enabled/*"),
    ]
    for vm in APPS:
        parts.append(f"{vm} pm2: " + lab.guest(vm, "su", "-l", "ubuntu", "-c", "pm2 list -m"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def lab(lxd_server: LxdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LxdLab]:
    """The lab brought up once for the module; `down` at the end whatever happened (the
    package's teardown deletes anything `down` left, and the last test proves it left nothing)."""
    root = tmp_path_factory.mktemp("lxd-lab")
    file = root / "lab.yaml"
    file.write_text(LAB_YAML)
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    lab = LxdLab(lxd_server, root, file, hosts)
    lab.up = lab.labctl("up", timeout=1200)
    try:
        yield lab
    finally:
        if lab.instances():
            lab.labctl("down", timeout=600)


def test_up_launches_containers_with_the_labs_cloud_init_and_serves_the_domain(
    lab: LxdLab,
) -> None:
    assert lab.up is not None and lab.up.returncode == 0, explain(lab.up)
    instances = lab.instances()
    assert sorted(instances) == [f"{LAB}-{vm}" for vm in ("app1", "app2", "lb")]
    for name, instance in instances.items():
        assert instance["type"] == "container" and instance["status"] == "Running"
        assert instance["config"]["user.labctl.lab"] == LAB  # ownership labels
        assert "#cloud-config" in instance["config"]["cloud-init.user-data"]
        assert instance["config"]["limits.memory"] == "512MiB"
        assert lab.guest(name.removeprefix(f"{LAB}-"), "cloud-init", "status").strip() == (
            "status: done"
        )
    lb = lab.ip("lb")
    assert lb in [str(host) for host in SERVER_SUBNET.hosts()]
    assert f"{lb}\t{DOMAIN}" in lab.hosts.read_text()  # the hosts entry, in the test's file
    # the LB's nginx is wired to the app containers' real addresses
    site = lab.guest("lb", "sh", "-c", "cat /etc/nginx/sites-enabled/*")
    for vm in APPS:
        assert f"{lab.ip(vm)}:3000" in site
    serves_through_every_backend(lab)


def test_status_reports_the_lab_healthy_from_inside_each_container(lab: LxdLab) -> None:
    code, report = lab.status()
    assert code == 0 and report["healthy"], report["problems"]
    assert report["domain"]["resolves"] and report["domain"]["resolved"] == [lab.ip("lb")]
    assert report["domain"]["backends_seen"] == APPS
    for vm in report["vms"]:
        assert vm["cloud_init"] == "done"
        if vm["name"] in APPS:
            assert [(p["name"], p["status"]) for p in vm["pm2"]] == [("hello", "online")]
    assert next(vm for vm in report["vms"] if vm["name"] == "lb")["nginx_active"]


def test_doctor_lists_the_engines_and_the_lab_engines_health(lab: LxdLab) -> None:
    result = lab.labctl("doctor", "--json", timeout=300)
    assert result.returncode == 0, explain(result)
    checks = {
        (c["name"], c["detail"].split(":")[0]): c for c in json.loads(result.stdout)["checks"]
    }
    assert checks[("engines", "multipass")]["status"] == "skip"  # not installed here
    assert checks[("engines", "lxd")]["status"] == "ok"
    for name in ("lxd", "project", "storage", "network", "image"):
        [line] = [c for (n, _), c in checks.items() if n == name]
        assert line["status"] == "ok", line
    assert "labctl-test" in next(c["detail"] for (n, _), c in checks.items() if n == "image")


def test_check_passes_the_built_in_checks_on_the_provisioned_lab(lab: LxdLab) -> None:
    result = lab.labctl("check", "--json", timeout=600)
    [report] = json.loads(result.stdout)["labs"]
    failed = [c for c in report["checks"] if c["status"] != "pass"]
    assert result.returncode == 0 and report["passed"] and not failed, (failed, explain(result))
    assert len(report["checks"]) >= 5


def boot_ids(lab: LxdLab) -> dict[str, str]:
    return {vm: lab.guest(vm, "cat", "/proc/sys/kernel/random/boot_id").strip() for vm in APPS}


def test_drill_app_and_vm_modes_pass_and_the_app_comes_back_through_pm2s_unit(
    lab: LxdLab,
) -> None:
    before = boot_ids(lab)
    for mode in ("app", "vm"):
        result = lab.labctl("drill", "--mode", mode, "--requests", "40", "--json", timeout=900)
        drill = json.loads(result.stdout)
        failed = [s for s in drill["steps"] if not s["passed"]]
        assert result.returncode == 0 and drill["passed"], (failed, explain(result))
    # `--mode vm` stopped an app container and started it: a new boot, and pm2's startup unit
    # (not labctl) brought the app back in it
    rebooted = [vm for vm, boot in boot_ids(lab).items() if boot != before[vm]]
    assert rebooted, "drill --mode vm restarted no app container"
    for vm in rebooted:
        assert lab.guest(vm, "systemctl", "is-active", "pm2-ubuntu").strip() == "active"
    code, report = lab.status()
    assert code == 0 and report["healthy"], report["problems"]
    serves_through_every_backend(lab)


def test_a_broken_lab_comes_back_from_its_baseline_snapshot_and_reset(lab: LxdLab) -> None:
    listed = lab.labctl("snapshot", "list", "--json")
    assert listed.returncode == 0 and "baseline" in listed.stdout, explain(listed)
    # the student's afternoon: the LB's site overwritten, nginx restarted into failure
    broken = "for site in /etc/nginx/sites-enabled/*; do echo 'upstream {' > $site; done"
    lab.guest("lb", "sh", "-c", broken)
    lab.guest("lb", "sh", "-c", "systemctl restart nginx || true")
    code, report = lab.status()
    assert code != 0 and not report["healthy"]
    assert any(p.startswith("lb: nginx") for p in report["problems"]), report["problems"]

    restored = lab.labctl("snapshot", "restore", "baseline", timeout=600)
    assert restored.returncode == 0, explain(restored)
    code, report = lab.status()
    assert code == 0 and report["healthy"], report["problems"]
    assert "upstream labctl_" in lab.guest("lb", "sh", "-c", "cat /etc/nginx/sites-enabled/*")

    # then one app container's pm2 killed, and `reset` of that container alone
    lab.guest("app2", "sh", "-c", "sudo -u ubuntu -H pm2 kill")
    assert any(p.startswith("app2: pm2") for p in lab.status()[1]["problems"])
    reset = lab.labctl("reset", "app2", timeout=600)
    assert reset.returncode == 0 and "app2: restored" in reset.stdout, explain(reset)
    code, report = lab.status()
    assert code == 0 and report["healthy"], report["problems"]
    serves_through_every_backend(lab)


def test_down_removes_every_container_its_snapshots_and_the_hosts_entry(lab: LxdLab) -> None:
    result = lab.labctl("down", timeout=600)
    assert result.returncode == 0, explain(result)
    assert lab.instances() == {}
    assert DOMAIN not in lab.hosts.read_text()
    assert os.path.exists(lab.hosts)


FAILING_LAB = """\
name: lxt-broken
domain: broken.lxt.lab
engine: {name: lxd}
image: labctl-test
defaults: {cpus: 1, memory: 512M, disk: 3G}
app:
  name: hello
  source: {builtin: hello}
  install: echo "about to fail on purpose"; exit 1
  port: 3000
vms:
  - {name: app1, roles: [lb, app]}
waits: {launch: 600s, cloud_init: 600s, serve: 60s}
"""


def test_a_failing_install_is_reported_with_the_real_cloud_init_log_tail(
    lxd_server: LxdServer, tmp_path: Path
) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(FAILING_LAB)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    env = labctl_env(lxd_server.daemon.env, tmp_path)
    try:
        result = run_labctl(("up",), file=file, hosts=hosts, env=env, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode != 0, explain(result)
        assert "about to fail on purpose" in output  # the install's own output, from the guest
        assert "Cloud-init v. 22.4.2" in output  # cloud-init's own lines of its output log
    finally:
        down = run_labctl(("down",), file=file, hosts=hosts, env=env, timeout=600)
    assert down.returncode == 0, explain(down)
    listed = lxd_server.daemon.lxc("list", "--format", "json", timeout=60).stdout
    assert [i["name"] for i in json.loads(listed) if i["name"].startswith("lxt-broken")] == []
