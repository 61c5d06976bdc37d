"""`labctl up` wall time against the fake multipass (plain backend) with launch/cloud-init latency.

Each VM gets launch latency 2 s ± 0.5 s (seeded) and cloud-init latency 3 s. The fake's `launch`
returns after both (like multipass, which waits for boot-finished), so one VM costs their sum.
The LB VM's address is served by a loopback responder (127.86.K.N:80, needs root for port 80)
answering 200 with `X-Lab-Backend` cycling over the app VMs, so `up` runs to the end of its serve
stage for real. Figures: wall time / slowest VM (labs within --max-parallel) or / the LPT
makespan over the slots (20 VMs at --max-parallel 5), beside one-VM-after-another (the course).

    .venv/bin/python bench/bench_up.py
"""

from __future__ import annotations

import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    CliRun,
    compile_bytecode,
    list_makespan,
    loopback_lb,
    lpt_makespan,
    print_table,
    run_labctl,
    up_force_args,
)
from _common import labctl_env as make_env

from labctl.config.load import parse_lab
from labctl.model import Lab
from tests.fake_multipass.fixture import FakeMultipass

LAUNCH, SPREAD, CLOUD_INIT = 2.0, 0.5, 3.0
SEED = 6
MANY = """\
name: many
domain: many.lab
defaults: {memory: 128M, disk: 1G}
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
"""


@dataclass
class Case:
    label: str
    path: Path
    max_parallel: int


@dataclass
class Row:
    label: str
    vms: int
    slots: int
    serving: float  # until `up` printed "✓ serve" (domain serves through every backend)
    wall: float  # until `up` exited (after the baseline snapshot step, where labctl has it)
    ideal: float  # slowest VM, or the LPT makespan over the slots
    in_order: float  # the same greedy schedule in lab order (what a FIFO semaphore can reach)
    sequential: float
    rc: int


def many_lab(directory: Path, apps: int) -> Path:
    path = directory / "many.yaml"
    lines = [f"  - {{name: app{i}, roles: [app]}}" for i in range(1, apps + 1)]
    path.write_text(MANY + "\n".join(lines) + "\n  - {name: lb, roles: [lb]}\n")
    return path


def free_pool(count: int) -> str:
    """A 127.86.K.0/24 whose first `count` addresses can take port 80 (nothing else uses them)."""
    for k in random.Random().sample(range(1, 255), 30):
        sockets = []
        try:
            for n in range(1, count + 1):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((f"127.86.{k}.{n}", 80))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return f"127.86.{k}.0/24"
    raise RuntimeError("no free 127.86.K.0/24 range for the loopback LB")


def app_backends(fake: FakeMultipass, lab: Lab) -> Callable[[], list[str]]:
    def backends() -> list[str]:
        table = fake.instances()
        return [f"{table[lab.instance_name(vm)]['ipv4'][0]}:{lab.app.port}" for vm in lab.app_vms]

    return backends


@dataclass
class UpRun:
    """One `labctl up` against the fake: its output, the fake's calls, when it started."""

    run: CliRun
    calls: list[dict[str, Any]]
    started: float  # time.monotonic() just before labctl was started
    per_vm: list[float]  # each VM's launch + cloud-init latency
    vms: int


def run_up(path: Path, rng: random.Random, max_parallel: int, label: str) -> UpRun:
    """`up --no-hosts` of `path` with seeded launch latencies and the loopback LB."""
    lab = parse_lab(path.read_text())
    names = [lab.instance_name(vm) for vm in lab.vms]
    launch = {name: round(LAUNCH + rng.uniform(-SPREAD, SPREAD), 2) for name in names}
    pool = free_pool(len(names))
    addresses = [f"{pool.rsplit('.', 1)[0]}.{n}" for n in range(1, len(names) + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        root = Path(tmp)
        fake = FakeMultipass(root / "fmp")
        fake.configure(ip_pool=pool, launch_latency=launch, cloud_init_latency=CLOUD_INIT)
        fake.on_exec(
            lab.instance_name(lab.lb_vm), ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n"
        )
        env = make_env(fake.env, fake.executable, root)
        args = ["up", "-f", str(path), "--no-hosts", "--max-parallel", str(max_parallel)]
        args += up_force_args(env)
        with loopback_lb(addresses, app_backends(fake, lab)):
            started = time.monotonic()
            run = run_labctl(args, env)
        if run.returncode != 0:
            print(f"{label}: labctl up exited {run.returncode}", file=sys.stderr)
            print(run.stdout[-2000:] + run.stderr[-2000:], file=sys.stderr)
        calls = fake.calls()
    per_vm = [launch[name] + CLOUD_INIT for name in names]
    return UpRun(run, calls, started, per_vm, len(names))


def measure(case: Case, rng: random.Random) -> Row:
    up = run_up(case.path, rng, case.max_parallel, case.label)
    run, per_vm = up.run, up.per_vm
    slots = case.max_parallel
    ideal = max(per_vm) if len(per_vm) <= slots else lpt_makespan(per_vm, slots)
    serving = run.first("✓ serve") or float("nan")
    in_order = list_makespan(per_vm, slots)  # labctl queues VMs in lab order, not longest first
    return Row(
        case.label,
        up.vms,
        slots,
        serving,
        run.wall,
        ideal,
        in_order,
        sum(per_vm),
        run.returncode,
    )


def main() -> int:
    print(compile_bytecode())
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="bench-up-labs-") as tmp:
        cases = [
            Case("seed lab (lab.yaml)", ROOT / "lab.yaml", 4),
            Case("hello (examples/hello)", ROOT / "examples" / "hello" / "lab.yaml", 4),
            Case("20 VMs", many_lab(Path(tmp), 19), 5),
        ]
        rows = [measure(case, rng) for case in cases]
    print(
        f"labctl up vs the fake multipass: launch {LAUNCH:g} s ± {SPREAD:g} s per VM (seed {SEED}),"
        f" cloud-init {CLOUD_INIT:g} s; the LB answered by a loopback responder (up runs to the end)"
    )
    print_table(
        [
            "lab",
            "VMs",
            "max-par",
            "serving s",
            "exit s",
            "ideal s",
            "lab-order s",
            "sequential s",
            "rc",
        ],
        [
            (r.label, r.vms, r.slots, r.serving, r.wall, r.ideal, r.in_order, r.sequential, r.rc)
            for r in rows
        ],
    )
    print(
        "ratios (serving/ideal, exit/ideal, sequential/serving): "
        + "; ".join(
            f"{r.label} {r.serving / r.ideal:.2f} / {r.wall / r.ideal:.2f} / "
            f"{r.sequential / r.serving:.2f}"
            for r in rows
        )
    )
    return 0 if all(r.rc == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
