"""`labctl status --json` on 20, 60 and 120-VM labs against the fake multipass (plain backend).

Each VM answers its check after LATENCY (0.5 s) with the canned labctl-vm-status JSON, two ways:
- by `multipass exec` (the fake's `exec_latency` + `on_exec`): one fake client process per VM;
- by its status agent: the real cloud-init/status_agent.py server on the VM's loopback address
  (bench/_agents.py, all VMs in one helper process), sleeping LATENCY before answering.
labctl runs one `list`, then every VM's check in parallel. Goal: status(60) <=
2 x (one list + one check). CPU = user+sys of labctl and the multipass processes it ran.

    .venv/bin/python bench/bench_status.py
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    CliRun,
    compile_bytecode,
    labctl_env,
    machine_line,
    print_table,
    run_labctl,
    timed,
)

from labctl.config.load import parse_lab
from labctl.host.agent import AgentTarget, fetch_report, lab_key, vm_key
from labctl.render.agent import status_port
from tests.fake_multipass.fixture import FakeMultipass

# (VMs, students): one lab of 20 and of 60 VMs (a lab holds at most 64), a class of 30 students
# x 4 VMs for 120.
SIZES = ((20, 0), (60, 0), (120, 30))
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


def measured(args: list[str], env: dict[str, str]) -> tuple[CliRun, float]:
    """One labctl run and the CPU seconds it and its children (multipass processes) used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = run_labctl(args, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return run, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def class_text(students: int, apps: int) -> str:
    vms = "\n".join(f"  - {{name: app{i}, roles: [app]}}" for i in range(1, apps + 1))
    roster = ", ".join(f"s{i:02d}" for i in range(1, students + 1))
    return (
        f'name: wide\nclass:\n  students: [{roster}]\n  domain: "{{student}}.wide.lab"\n'
        "app: {name: hello, source: {builtin: hello}, port: 3000}\n"
        f"vms:\n{vms}\n  - {{name: lb, roles: [lb]}}\nmanage_hosts: false\n"
    )


def one_size(vms: int, students: int, root: Path) -> dict[str, float | str]:
    lab = root / "lab.yaml"
    labs = [f"wide-s{i:02d}" for i in range(1, students + 1)] or ["wide"]
    per_lab = vms // len(labs)
    text = class_text(students, per_lab - 1) if students else lab_text(per_lab - 1)
    lab.write_text(text)
    fake = FakeMultipass(root / "fmp")
    # Addresses nobody else listens on (the domain check gets `connection refused` at once).
    fake.configure(ip_pool="127.87.0.0/16", exec_latency=EXEC_LATENCY)
    keys = {}
    names = []
    for lab_name in labs:
        key = lab_key(root / "state" / lab_name, create=True)
        assert key is not None
        for vm in [f"app{i}" for i in range(1, per_lab)] + ["lb"]:
            names.append(f"{lab_name}-{vm}")
            keys[names[-1]] = vm_key(key, names[-1])
    for name in names:
        fake.add_instance(name, foreign=False)
    fake.on_exec("*", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(REPORT))
    env = labctl_env(fake.env, fake.executable, root)
    ips = {name: rec["ipv4"][0] for name, rec in fake.instances().items()}
    port = status_port(parse_lab(lab_text(1)))
    agents = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("_agents.py")),
            str(EXEC_LATENCY),
            str(port),
            json.dumps(REPORT),
            *(f"{ips[n]}={keys[n].hex()}" for n in names),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agents.stdout is not None and agents.stdout.readline().strip() == "ready"

        def median(action: object, samples: int = SAMPLES) -> float:
            return statistics.median(timed(action) for _ in range(samples))  # type: ignore[arg-type]

        list_call = median(lambda: fake.run("list", "--format", "json"))
        check_call = median(
            lambda: fake.run("exec", names[0], "--", "sudo", "/usr/local/sbin/labctl-vm-status")
        )
        first = names[0]
        target = AgentTarget(ips[first], port, keys[first])
        agent_call = median(lambda: fetch_report(target, 30))
        runs = [measured(["status", "-f", str(lab), "--json"], env) for _ in range(SAMPLES)]
        via = _via(runs[0][0].stdout)
        walls = sorted(run.wall for run, _ in runs)
        cpu = statistics.median(c for _, c in runs)
    finally:
        assert agents.stdin is not None
        agents.stdin.close()
        agents.wait(timeout=30)
    # The same lab without agents (nothing listens on the port): every VM by multipass exec.
    exec_run, exec_cpu = measured(["status", "-f", str(lab), "--json"], env)
    exec_via = _via(exec_run.stdout)
    return {
        "vms": f"{vms} ({students} x {per_lab})" if students else vms,
        "list": list_call,
        "check": check_call,
        "agent check": agent_call,
        "status": statistics.median(walls),
        "spread": f"{walls[0]:.2f}-{walls[-1]:.2f}",
        "cpu/VM ms": 1000 * cpu / vms,
        "via": via,
        "status by exec": exec_run.wall,
        "exec cpu/VM ms": 1000 * exec_cpu / vms,
        "exec via": exec_via,
    }


def _via(stdout: str) -> str:
    """How the VMs were read, e.g. "60 agent" (from status --json, a lab's or a class's)."""
    report = json.loads(stdout)
    reports = [row["status"] for row in report["students"]] if report.get("class") else [report]
    counts: dict[str, int] = {}
    for one in reports:
        for vm in one["vms"]:
            counts[str(vm["checked_via"])] = counts.get(str(vm["checked_via"]), 0) + 1
    return ", ".join(f"{n} {how}" for how, n in sorted(counts.items()))


def main() -> int:
    print(machine_line())
    print(compile_bytecode())
    print(
        f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        floor = statistics.median(
            run_labctl(["--help"], labctl_env({}, Path("multipass"), Path(tmp))).wall
            for _ in range(SAMPLES)
        )
        rows = []
        for vms, students in SIZES:
            root = Path(tmp) / f"n{vms}"
            root.mkdir()
            rows.append(one_size(vms, students, root))
    print(
        f"\nlabctl status --json, check latency {EXEC_LATENCY:g} s (median of {SAMPLES}; "
        f"`labctl --help` start-up {floor:.2f} s)"
    )
    headers = list(rows[0])
    print_table(headers, [[row[h] for h in headers] for row in rows])
    for row in rows:
        one = float(row["list"]) + float(row["check"])
        print(
            f"{row['vms']} VMs: status / (list + check) {float(row['status']) / one:.2f} "
            f"(goal <= 2); exec-only / status {float(row['status by exec']) / float(row['status']):.1f}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
