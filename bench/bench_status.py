"""`labctl status --json` on a 60-VM lab against the fake multipass (plain backend).

Every `multipass exec` waits `exec_latency` (0.5 s) and answers the canned labctl-vm-status JSON
(`on_exec`), so each VM's check costs 0.5 s plus the fake's own process start. labctl runs one
`list`, then the per-VM checks in parallel: the figure to look at is status / one single check
(≈ 1 if the checks overlap fully), beside the sum a one-after-another status would take.

    .venv/bin/python bench/bench_status.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from _common import labctl_env, print_table, run_labctl, timed

from tests.fake_multipass.fixture import FakeMultipass

VMS = 60
EXEC_LATENCY = 0.5
SAMPLES = 3
REPORT = {
    "cloud_init": {"status": "done"},
    "app": {
        "pm2_daemon": True,
        "port_open": True,
        "processes": [{"name": "hello", "status": "online", "restarts": 0, "pid": 4242}],
    },
    "nginx": {"active": True, "config_ok": True, "config_error": ""},
}


def lab_text(apps: int) -> str:
    vms = "\n".join(f"  - {{name: app{i}, roles: [app]}}" for i in range(1, apps + 1))
    return (
        "name: wide\ndomain: wide.lab\n"
        "app: {name: hello, source: {builtin: hello}, port: 3000}\n"
        f"vms:\n{vms}\n  - {{name: lb, roles: [lb]}}\n"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        root = Path(tmp)
        lab = root / "lab.yaml"
        lab.write_text(lab_text(VMS - 1))
        fake = FakeMultipass(root / "fmp")
        # Addresses nobody listens on (the domain check gets `connection refused` at once).
        fake.configure(ip_pool="127.87.0.0/16", exec_latency=EXEC_LATENCY)
        for i in range(1, VMS):
            fake.add_instance(f"wide-app{i}", foreign=False)
        fake.add_instance("wide-lb", foreign=False)
        fake.on_exec("*", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(REPORT))
        env = labctl_env(fake.env, fake.executable, root)

        def one_call(*args: str) -> float:
            return statistics.median(timed(lambda: fake.run(*args)) for _ in range(SAMPLES))

        list_call = one_call("list", "--format", "json")
        check_call = one_call("exec", "wide-app1", "--", "sudo", "/usr/local/sbin/labctl-vm-status")
        floor = statistics.median(
            run_labctl(["validate", "-f", str(lab)], env).wall for _ in range(SAMPLES)
        )
        runs = [run_labctl(["status", "-f", str(lab), "--json"], env) for _ in range(SAMPLES)]
        status = statistics.median(run.wall for run in runs)
        report = json.loads(runs[0].stdout)
        checked = sum(1 for vm in report["vms"] if vm["cloud_init"] == "done")
        # The same with no exec latency: what the 60 fake processes and labctl cost by themselves.
        fake.configure(exec_latency=0)
        bare = statistics.median(
            run_labctl(["status", "-f", str(lab), "--json"], env).wall for _ in range(SAMPLES)
        )
    sequential = list_call + VMS * check_call
    waves = (status - bare) / EXEC_LATENCY  # how many exec latencies status waited in a row
    print(
        f"labctl status --json, {VMS} VMs, fake exec latency {EXEC_LATENCY:g} s "
        f"(median of {SAMPLES}; {checked}/{VMS} VMs checked)"
    )
    print_table(
        ["what", "seconds"],
        [
            ("one `list --format json` call of the fake", list_call),
            ("one status check (exec labctl-vm-status)", check_call),
            ("labctl startup floor (`labctl validate`)", floor),
            ("labctl status --json", status),
            ("labctl status --json with exec latency 0", bare),
            ("one after another: list + 60 checks", sequential),
        ],
    )
    print(
        f"ratios: status/one check {status / check_call:.2f}, "
        f"exec latencies waited in a row (status - status@0)/{EXEC_LATENCY:g} s {waves:.2f}, "
        f"one-after-another/status {sequential / status:.2f}"
    )
    return 0 if all(run.returncode in (0, 1) for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
