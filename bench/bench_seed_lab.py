"""The course's seed lab side by side: in LXD system containers and in real VMs (qemu).

The same lab.yaml on both engines, apart from the engine lines: app1 and a gateway (lb + app),
the app cloned from a local `git daemon` on the engine's bridge (the tests' small static
frontend, `npm run build`, `pm2 serve build --spa`), 1 CPU, 1 GiB and 5 GB per instance as the
real-VM tests give. For each engine, as an instructor runs it:

- `labctl up` until it returned (it returns when the domain serves through both backends);
- 12 GETs to the gateway with the domain: answers and backends seen;
- host memory used (MemTotal - MemAvailable) before and after `up`, per instance;
- `labctl status --json`, `labctl check` (four built-in checks) and `labctl down`.

LXD: the tests' private server (tests/lxd: a private LXD_DIR, the safe preseed on
10.252.0.0/24, no NAT, the image from `make lxd-image`). Real VMs: the fake multipass's `vm`
backend (tests/qemuvm: qemu with the image from `make vm-image`, KVM when the machine has it,
else software emulation) on a private bridge. Each part cleans up after itself (daemons,
containers, qemu, bridges, iptables rules) and checks that nothing is left, also on Ctrl-C.
Traffic goes only to the two bridges. Needs root; a part that cannot run says why in one line.

    flock /tmp/labctl-heavy.lock .venv/bin/python bench/bench_seed_lab.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import compile_bytecode, machine_line, print_table
from bench_lxd_class import load, memory_by_role, used_memory_mib, with_server
from bench_lxd_class import unavailable_reason as lxd_unavailable_reason

from labctl.host.probes import hammer
from tests.e2e.harness import make_lab, seed_lab_text, serve_git_app, tear_down
from tests.lxd.instances import ipv4
from tests.lxd.labctl_run import labctl_env, run_labctl
from tests.lxd.server import SERVER_SUBNET, LxdServer
from tests.lxd.session import CONTAINER_PREFIX

LXD_LAB = f"{CONTAINER_PREFIX}seed"  # containers lxt-seed-app1, ...: the session's sweep knows them
SIZES = "defaults: {cpus: 1, memory: 1G, disk: 5G}\n"
AFTER = (
    "lb: {max_fails: 2, fail_timeout: 5s, read_timeout: 3s, connect_timeout: 1s}\n"
    "waits: {launch: 1800s, cloud_init: 1800s, serve: 300s}\n"
    "snapshots: {baseline: false}\n"
)
CHECKS = ("app-online", "domain-resolves", "lb-serves", "reverse-proxy")
INSTANCES = 2

Labctl = Callable[..., tuple[float, subprocess.CompletedProcess[str]]]


def timed(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    try:
        result = run()
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        result = subprocess.CompletedProcess([], -9, out, "(timed out)")
    return time.monotonic() - started, result


def measure(
    labctl: Labctl, gateway_ip: Callable[[], str | None], up_timeout: float
) -> dict[str, str]:
    """The instructor's sequence on one engine; each value as printed in the table."""
    row: dict[str, str] = {}
    before = used_memory_mib()
    row["load average before up"] = load()
    seconds, up = labctl("up", timeout=up_timeout)
    row["`up` wall (s)"] = f"{seconds:.1f} (exit {up.returncode})"
    if up.returncode != 0:
        print(up.stdout[-2000:] + up.stderr[-2000:], file=sys.stderr)
    after = used_memory_mib()
    row["host memory used per instance (MiB)"] = f"{(after - before) / INSTANCES:.0f}"
    row["load average after up"] = load()
    address = gateway_ip()
    if address is not None:
        tally = hammer(address, 80, "alvin.xyz", requests=12, deadline=60, timeout=10)
        row["12 GETs: 200s / backends seen"] = f"{tally.ok} / {len(tally.by_backend)}"
    seconds, status = labctl("status", "--json", timeout=600)
    healthy = "?"
    with contextlib.suppress(json.JSONDecodeError):
        healthy = str(json.loads(status.stdout).get("healthy"))
    row["`status --json` wall (s)"] = f"{seconds:.1f} (exit {status.returncode}, healthy {healthy})"
    checks = [arg for name in CHECKS for arg in ("--check", name)]
    seconds, check = labctl("check", *checks, timeout=600)
    row[f"`check` ({len(CHECKS)} checks) wall (s)"] = f"{seconds:.1f} (exit {check.returncode})"
    seconds, down = labctl("down", timeout=900)
    row["`down` wall (s)"] = f"{seconds:.1f} (exit {down.returncode})"
    return row


def on_lxd(up_timeout: float) -> dict[str, str]:
    reason = lxd_unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    result: dict[str, str] = {}

    def work(server: LxdServer, folder: Path) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        host = str(SERVER_SUBNET.network_address + 1)
        with serve_git_app(folder, 20618, listen=host) as repo:
            engine = "engine: {name: lxd}\nimage: labctl-test\n"
            text = seed_lab_text(
                f"git://{host}:20618/{repo}", before_app=engine + SIZES, after=AFTER
            )
            lab_file, hosts = folder / "lab.yaml", folder / "hosts"
            lab_file.write_text(text.replace("name: alvin\n", f"name: {LXD_LAB}\n", 1))
            hosts.write_text("127.0.0.1\tlocalhost\n")
            env = labctl_env(server.daemon.env, folder)

            def labctl(
                *args: str, timeout: float
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
                return timed(
                    lambda: run_labctl(args, file=lab_file, hosts=hosts, env=env, timeout=timeout)
                )

            def gateway() -> str | None:
                listed = server.daemon.lxc_json("list", f"{LXD_LAB}-gateway")
                if listed:
                    memory = memory_by_role(listed)["app"]
                    if memory:
                        result["gateway memory as LXD counts it (MiB)"] = f"{memory[0]:.0f}"
                return ipv4(listed[0]) if listed else None

            result.update(measure(labctl, gateway, up_timeout))
        return 0

    with_server(work)
    return result


def on_real_vms(up_timeout: float) -> dict[str, str]:
    from tests.realvm.conftest import vm_unavailable_reason

    reason = vm_unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    from tests.qemuvm import probe_accel
    from tests.simvm import SimNetwork
    from tests.vmimage import cached_image

    root = Path(tempfile.mkdtemp(prefix="labctl-bench-seed-"))
    prefix = "b" + secrets.token_hex(2)
    image = cached_image()
    result: dict[str, str] = {}
    try:
        accel = probe_accel(image, root / "accel-probe.log")
        result["accelerator"] = accel
        lab = make_lab(root, prefix, backend="vm", vm_image=str(image.folder), vm_accel=accel)
        network = SimNetwork(
            f"{prefix}0", str(lab.fake.settings()["sim_subnet"]), root / "sim" / "network"
        )
        network.ensure()
        with serve_git_app(root, 20619, listen=network.host_ip) as repo:
            seed = root / "alvin.yaml"
            url = f"git://{network.host_ip}:20619/{repo}"
            seed.write_text(seed_lab_text(url, before_app=SIZES, after=AFTER))

            def labctl(
                *args: str, timeout: float
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
                return timed(lambda: lab.labctl(*args, "-f", str(seed), timeout=timeout))

            def gateway() -> str | None:
                listed = lab.instances().get("alvin-gateway", {}).get("ipv4") or []
                return str(listed[0]) if listed else None

            result.update(measure(labctl, gateway, up_timeout))
    finally:
        tear_down(prefix)
        shutil.rmtree(root, ignore_errors=True)
        print("real VMs: cleaned up (every qemu, TAP and the bridge are gone)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up-timeout", type=float, default=2400, help="bound on each up, seconds")
    parser.add_argument("--only", choices=["lxd", "vm"], help="one engine only")
    args = parser.parse_args()
    print(compile_bytecode())
    print(machine_line())
    columns: dict[str, dict[str, str]] = {}
    if args.only in (None, "lxd"):
        columns["LXD containers"] = on_lxd(args.up_timeout)
        print("LXD:", columns["LXD containers"], flush=True)
    if args.only in (None, "vm"):
        columns["real VMs (qemu)"] = on_real_vms(args.up_timeout)
        print("real VMs:", columns["real VMs (qemu)"], flush=True)
    measures = list(dict.fromkeys(key for column in columns.values() for key in column))
    rows = [(m, *(column.get(m, "-") for column in columns.values())) for m in measures]
    print()
    print_table(["measure", *columns], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
