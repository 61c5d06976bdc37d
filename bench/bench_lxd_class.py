"""A class on LXD system containers on one machine: N students x 3 containers, one `labctl up`.

Starts the LXD tests' private server (tests/lxd: a private LXD_DIR, the safe preseed on
10.252.0.0/24 with no NAT and no routing, the project's own image `labctl-test` from `make
lxd-image`), writes a class lab (app1, app2, lb per student; the built-in hello app), and
measures, as an instructor would run it:

- `labctl up` for the whole class, until it returned (it returns when every lab serves);
- containers Running, each lab's domain answered through its LB (one GET per lab, checked here);
- memory per container (`lxc list` state: the container's cgroup memory usage), host memory
  used (MemTotal - MemAvailable, as `free` counts it) before and after;
- `labctl status --json`, `labctl check` (four built-in checks) and `labctl down` for the class.

Every wait is bounded (`--timeout` for up, fixed ones for the rest). Everything the run starts
(daemon, containers, bridge, iptables rules, lxcfs, the run folder) is removed by the tests'
own session clean-up, which then checks nothing is left, also on Ctrl-C or SIGTERM. Traffic
goes only to the server's bridge and loopback. Needs root, LXD and the cached image; without
them it says why in one line and exits 0 (`make bench` runs every script).

    .venv/bin/python bench/bench_lxd_class.py --students 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from _common import compile_bytecode, machine_line, print_table

from labctl.host.probes import http_get
from tests.lxd.image import cached_image
from tests.lxd.instances import ipv4
from tests.lxd.labctl_run import explain, labctl_env, run_labctl
from tests.lxd.server import LxdServer
from tests.lxd.session import CONTAINER_PREFIX, LxdRun

LAB = CONTAINER_PREFIX.rstrip("-")  # containers lxt-<student>-<vm>: the session's sweep knows them
VMS = ("app1", "app2", "lb")
TOOLS = ("lxd", "lxc", "lxcfs", "dnsmasq", "iptables", "ip", "unshare")
CHECKS = ("app-online", "domain-resolves", "lb-serves", "reverse-proxy")
LAB_YAML = """\
name: {lab}
engine: {{name: lxd}}
image: labctl-test
class:
  students: [{students}]
  domain: "{{student}}.{lab}.lab"
defaults: {{cpus: 1, memory: {memory}, disk: 3G}}
app: {{name: hello, source: {{builtin: hello}}, port: 3000}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: app2, roles: [app]}}
  - {{name: lb, roles: [lb]}}
waits: {{launch: {wait}s, cloud_init: {wait}s, serve: 300s}}
snapshots: {{baseline: false}}
"""


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (an LXD daemon, a bridge, iptables)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (make system-deps installs them)"
    if not cached_image().complete():
        return "needs the LXD test image: run `make lxd-image` first"
    return None


def used_memory_mib() -> float:
    """Host memory in use as `free` counts it: MemTotal - MemAvailable."""
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


@dataclass
class Bench:
    server: LxdServer
    folder: Path
    students: list[str]
    file: Path = field(init=False)
    hosts: Path = field(init=False)
    rows: list[tuple[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # inside the run folder: the session's sweep kills a labctl whose -f points here
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = self.folder / "lab.yaml"
        self.hosts = self.folder / "hosts"
        self.hosts.write_text("127.0.0.1\tlocalhost\n")

    def labctl(self, *args: str, timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
        env = labctl_env(self.server.daemon.env, self.folder)
        started = time.monotonic()
        try:
            result = run_labctl(args, file=self.file, hosts=self.hosts, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            result = subprocess.CompletedProcess(list(args), -9, out, err + "\n(timed out)")
        return time.monotonic() - started, result

    def instances(self) -> list[dict[str, Any]]:
        listed = self.server.daemon.lxc("list", "--format", "json", timeout=120).stdout
        return [i for i in json.loads(listed) if i["name"].startswith(CONTAINER_PREFIX)]

    def note(self, what: str, value: object) -> None:
        self.rows.append((what, value))
        print(f"  {what}: {value}", flush=True)


def memory_by_role(instances: list[dict[str, Any]]) -> dict[str, list[float]]:
    by_role: dict[str, list[float]] = {"app": [], "lb": []}
    for instance in instances:
        usage = ((instance.get("state") or {}).get("memory") or {}).get("usage")
        if isinstance(usage, int):
            role = "lb" if instance["name"].endswith("-lb") else "app"
            by_role[role].append(usage / 1024 / 1024)
    return by_role


def serving_labs(bench: Bench, instances: list[dict[str, Any]]) -> int:
    """One GET per lab to its LB with the student's domain: 200 counts as serving."""
    lbs = {i["name"]: ipv4(i) for i in instances}
    serving = 0
    for student in bench.students:
        address = lbs.get(f"{LAB}-{student}-lb")
        if address and http_get(address, 80, f"{student}.{LAB}.lab", timeout=10).status == 200:
            serving += 1
    return serving


def run_class(bench: Bench, args: argparse.Namespace) -> int:
    containers = len(bench.students) * len(VMS)
    bench.file.write_text(
        LAB_YAML.format(
            lab=LAB, students=", ".join(bench.students), memory=args.memory, wait=args.timeout
        )
    )
    bench.note("students x containers", f"{len(bench.students)} x {len(VMS)} = {containers}")
    bench.note("host memory used before up (MiB)", round(used_memory_mib()))
    bench.note("load average before up", load())
    # --force: the capacity preflight adds up the declared limits (1 CPU each); containers share
    # the host's cores, so on 2 cores any class of more than one container would be refused
    seconds, up = bench.labctl(
        "up", "--force", "--max-parallel", str(args.max_parallel), timeout=args.timeout
    )
    bench.note("up wall (s)", round(seconds, 1))
    bench.note("up exit code", up.returncode)
    if up.returncode != 0:
        print(explain(up)[-3000:], file=sys.stderr)
    instances = bench.instances()
    running = sum(1 for i in instances if i["status"] == "Running")
    bench.note("containers running", f"{running} of {containers}")
    bench.note(
        "labs serving (one GET each)", f"{serving_labs(bench, instances)} of {len(bench.students)}"
    )
    bench.note("up wall per container (s)", round(seconds / containers, 1))
    for role, values in memory_by_role(instances).items():
        if values:
            bench.note(
                f"{role} container memory MiB (min/median/max)",
                f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}",
            )
    bench.note("host memory used after up (MiB)", round(used_memory_mib()))
    bench.note("load average after up", load())

    seconds, status = bench.labctl("status", "--json", timeout=600)
    healthy = "?"
    with contextlib.suppress(json.JSONDecodeError):
        healthy = str(json.loads(status.stdout).get("summary", {}).get("healthy"))
    bench.note(
        "status --json wall (s)", f"{seconds:.1f} (exit {status.returncode}, healthy {healthy})"
    )
    check_args = [arg for name in CHECKS for arg in ("--check", name)]
    seconds, check = bench.labctl("check", *check_args, "--json", timeout=600)
    bench.note(f"check ({len(CHECKS)} checks) wall (s)", f"{seconds:.1f} (exit {check.returncode})")
    for name, (passed, total, reasons) in check_tally(check.stdout).items():
        why = f"; not passed: {' | '.join(reasons)}" if reasons else ""
        bench.note(f"  check {name}: labs passed", f"{passed} of {total}{why}")
    seconds, down = bench.labctl("down", timeout=900)
    bench.note("down wall (s)", f"{seconds:.1f} (exit {down.returncode})")
    bench.note("containers left after down", len(bench.instances()))
    bench.note("host memory used after down (MiB)", round(used_memory_mib()))
    return 0 if up.returncode == 0 else 1


def check_tally(document: str) -> dict[str, tuple[int, int, list[str]]]:
    """Per check of `labctl check --json`: labs passed, labs graded, and up to three distinct
    reasons of the others (what a failing class-wide check is about)."""
    try:
        labs = json.loads(document).get("labs") or []
    except (json.JSONDecodeError, AttributeError):
        return {}
    tally: dict[str, tuple[int, int, list[str]]] = {}
    for lab in labs:
        for verdict in lab.get("checks") or []:
            passed, total, reasons = tally.get(verdict["name"], (0, 0, []))
            ok = verdict.get("status") == "pass"
            reason = str(verdict.get("reason") or verdict.get("status"))
            if not ok and reason not in reasons and len(reasons) < 3:
                reasons = [*reasons, reason]
            tally[verdict["name"]] = (passed + ok, total + 1, reasons)
    return tally


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def with_server(work: Callable[[LxdServer, Path], int]) -> int:
    """The tests' private server for the length of `work`; cleaned up and checked afterwards."""
    run = LxdRun()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run.begin()
        print(f"clean-up at start: {report.summary()}")
        server = LxdServer.start(run, cached_image())
        print(
            f"server ({server.driver} pool): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in server.timings.items()),
            flush=True,
        )
        try:
            return work(server, run.root / "bench")
        finally:
            started = time.monotonic()
            deleted = server.stop()
            print(
                f"server stopped ({len(deleted)} left to delete) in {time.monotonic() - started:.1f} s"
            )
    finally:
        try:
            report = run.end()
            print(f"clean-up at end: {report.summary()}; nothing left")
        finally:
            signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=24, help="class size (3 containers each)")
    parser.add_argument("--memory", default="256M", help="limits.memory per container")
    parser.add_argument("--max-parallel", type=int, default=4, help="labctl up --max-parallel")
    parser.add_argument("--timeout", type=int, default=900, help="bound on up, in seconds")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_lxd_class: skipped: {reason}")
        return 0
    print(compile_bytecode())
    print(machine_line())
    students = [f"s{index:02d}" for index in range(1, args.students + 1)]

    def work(server: LxdServer, folder: Path) -> int:
        bench = Bench(server, folder, students)
        code = run_class(bench, args)
        print()
        print_table(["measure", "value"], bench.rows)
        return code

    return with_server(work)


if __name__ == "__main__":
    sys.exit(main())
