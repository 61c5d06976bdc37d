"""Where `labctl up`'s fixed overhead goes: its phases on the hello lab, against the fake multipass.

The same set-up as bench_up.py (launch 2 s ± 0.5 s per VM, cloud-init 3 s, a loopback responder
for the LB), run RUNS times; each run's phases come from up's progress lines (timestamped as they
arrive) and the fake's call log (CLOCK_MONOTONIC, comparable across processes). Medians:

- start-up: process start until "checking multipass" (Python, imports, lab.yaml, the lock);
- preflight: until "✓ preflight" (version, list, capacity checks);
- launch spawn: "✓ preflight" until the last launch process logged its start;
- after the last launch: the slowest launch's end until "✓ serve";
- overhead: "✓ serve" minus the slowest launch's own duration (what up adds to the slowest VM);
- baseline: "✓ serve" until the process exited (the baseline snapshot step).

    .venv/bin/python bench/bench_up_phases.py
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, compile_bytecode, loopback_lb, print_table, run_labctl
from _common import labctl_env as make_env
from bench_up import CLOUD_INIT, LAUNCH, SEED, SPREAD, app_backends, free_pool

from labctl.config.load import parse_lab
from tests.fake_multipass.fixture import FakeMultipass

RUNS = 3
PHASES = ("start-up", "preflight", "launch spawn", "after the last launch", "overhead", "baseline")


def one_run(path: Path, rng: random.Random) -> dict[str, float]:
    lab = parse_lab(path.read_text())
    names = [lab.instance_name(vm) for vm in lab.vms]
    launch = {name: round(LAUNCH + rng.uniform(-SPREAD, SPREAD), 2) for name in names}
    pool = free_pool(len(names))
    addresses = [f"{pool.rsplit('.', 1)[0]}.{n}" for n in range(1, len(names) + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        root = Path(tmp)
        fake = FakeMultipass(root / "fmp")
        fake.configure(ip_pool=pool, launch_latency=launch, cloud_init_latency=CLOUD_INIT)
        fake.on_exec(
            lab.instance_name(lab.lb_vm), ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n"
        )
        env = make_env(fake.env, fake.executable, root)
        with loopback_lb(addresses, app_backends(fake, lab)):
            started = time.monotonic()
            run = run_labctl(["up", "-f", str(path), "--no-hosts", "--force"], env)
        if run.returncode != 0:
            raise SystemExit(f"labctl up exited {run.returncode}: {run.stderr[-2000:]}")
        launches = [c for c in fake.calls() if c["command"] == "launch"]
    checking, preflight, serve = (
        run.first("checking multipass"),
        run.first("✓ preflight"),
        run.first("✓ serve"),
    )
    assert checking is not None and preflight is not None and serve is not None
    slowest = max(launches, key=lambda c: c["end_mono"] - c["start_mono"])
    last_start = max(c["start_mono"] for c in launches) - started
    return {
        "start-up": checking,
        "preflight": preflight - checking,
        "launch spawn": last_start - preflight,
        "after the last launch": serve - (max(c["end_mono"] for c in launches) - started),
        "overhead": serve - (slowest["end_mono"] - slowest["start_mono"]),
        "baseline": run.wall - serve,
    }


def main() -> int:
    print(compile_bytecode())
    path = ROOT / "examples" / "hello" / "lab.yaml"
    rng = random.Random(SEED)
    runs = [one_run(path, rng) for _ in range(RUNS)]
    print(f"labctl up on the hello lab (4 VMs), phases in s, median of {RUNS} runs")
    print_table(
        ["phase", "median s", "min s", "max s"],
        [
            (
                phase,
                statistics.median(r[phase] for r in runs),
                min(r[phase] for r in runs),
                max(r[phase] for r in runs),
            )
            for phase in PHASES
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
