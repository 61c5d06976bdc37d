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
from pathlib import Path

from _common import ROOT, compile_bytecode, print_table
from bench_up import SEED, run_up

RUNS = 3
PHASES = ("start-up", "preflight", "launch spawn", "after the last launch", "overhead", "baseline")


def one_run(path: Path, rng: random.Random) -> dict[str, float]:
    up = run_up(path, rng, 4, "hello")
    if up.run.returncode != 0:
        raise SystemExit(f"labctl up exited {up.run.returncode}")
    run, started = up.run, up.started
    launches = [c for c in up.calls if c["command"] == "launch"]
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
