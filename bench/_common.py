"""Shared helpers of the benchmarks: labctl as a subprocess, tables, schedules, the loopback LB.

The benchmarks measure and print; nothing here asserts a time.
"""

from __future__ import annotations

import heapq
import http.server
import itertools
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # labctl and tests.* importable when run as a plain script


def compile_bytecode() -> str:
    """Compile labctl and the fake multipass to bytecode before measuring, and say so.

    A Python program normally runs from cached bytecode after its first start (pip compiles an
    installed package's). Where PYTHONDONTWRITEBYTECODE is set (this development machine sets it)
    every start would compile every module again: about 55 ms of labctl's start-up and 10 ms of
    each fake multipass call, which no user's `labctl` pays.
    """
    import compileall

    for folder in (ROOT / "labctl", ROOT / "tests" / "fake_multipass"):
        compileall.compile_dir(folder, quiet=1)
    compileall.compile_file(ROOT / "tests" / "__init__.py", quiet=1)
    return "bytecode: labctl and tests/fake_multipass compiled before measuring"


def labctl_env(fake_env: dict[str, str], executable: Path, root: Path) -> dict[str, str]:
    """The environment labctl runs in: the fake multipass, state and hosts file in `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    env.update(fake_env)
    env["LABCTL_MULTIPASS"] = str(executable)
    env["LABCTL_STATE_DIR"] = str(root / "state")
    env["LABCTL_HOSTS_FILE"] = str(root / "hosts")  # never /etc/hosts (and --no-hosts anyway)
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class CliRun:
    """One labctl run: exit code, output, wall time and when each stderr (progress) line came."""

    returncode: int
    stdout: str
    stderr: str
    wall: float
    progress: list[tuple[float, str]]  # (seconds since start, line)

    def first(self, text: str) -> float | None:
        """When the first progress line containing `text` was printed."""
        return next((t for t, line in self.progress if text in line), None)


def run_labctl(args: Sequence[str], env: dict[str, str], *, timeout: float = 600) -> CliRun:
    """Run the real CLI (`python -m labctl ARGS`), timestamping its progress lines as they come."""
    started = time.monotonic()
    progress: list[tuple[float, str]] = []
    with subprocess.Popen(
        [sys.executable, "-m", "labctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(out.read()), daemon=True)
        reader.start()
        for line in proc.stderr:
            progress.append((time.monotonic() - started, line.rstrip("\n")))
        try:
            returncode = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
        wall = time.monotonic() - started
        reader.join(timeout=10)
    stderr = "\n".join(line for _, line in progress)
    return CliRun(returncode, "".join(chunks), stderr, wall, progress)


def up_force_args(env: dict[str, str]) -> list[str]:
    """`--force` when this labctl has it: fake VMs need none of the host memory `up` checks for."""
    result = run_labctl(["up", "--help"], env, timeout=60)
    return ["--force"] if "--force" in result.stdout else []


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def list_makespan(durations: Sequence[float], slots: int) -> float:
    """Greedy list schedule: each job, in the given order, takes the first slot that frees up."""
    finish = [0.0] * max(1, slots)
    for duration in durations:
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish)


def lpt_makespan(durations: Sequence[float], slots: int) -> float:
    """Longest-processing-time-first: the list schedule of the durations sorted longest first."""
    return list_makespan(sorted(durations, reverse=True), slots)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def machine_line() -> str:
    """nproc, memory, Python and tool versions, for RESULTS.md."""
    memory = "?"
    try:
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    tools = []
    for tool, argv in (("nginx", ["nginx", "-v"]), ("node", ["node", "--version"])):
        if shutil.which(tool):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            tools.append(f"{tool} {(out.stdout + out.stderr).strip().split('/')[-1]}")
    return (
        f"{os.cpu_count()} CPUs, {memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}" + (", " + ", ".join(tools) if tools else "")
    )


@dataclass
class LoopbackLb:
    """Stands in for the LB VM of the plain fake: 200 with X-Lab-Backend cycling over backends."""

    addresses: list[str]
    backends: Callable[[], list[str]]  # "ip:port" of the app VMs, looked up on demand
    requests: int = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    lb: LoopbackLb
    cycle: Iterator[str] | None = None
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            cls = type(self)
            if cls.cycle is None:
                backends = self.lb.backends()
                cls.cycle = itertools.cycle(backends) if backends else None
            backend = next(cls.cycle) if cls.cycle else "none"
            self.lb.requests += 1
        body = b"ok\n"
        self.send_response(200)
        self.send_header("X-Lab-Backend", backend)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def loopback_lb(
    addresses: Sequence[str], backends: Callable[[], list[str]], port: int = 80
) -> Iterator[LoopbackLb]:
    """Serve HTTP on every address (all loopback, 127/8); shut every server down on exit."""
    lb = LoopbackLb(list(addresses), backends)
    handler = type("Handler", (_Handler,), {"lb": lb, "cycle": None})
    servers: list[http.server.ThreadingHTTPServer] = []
    try:
        for address in addresses:
            if not address.startswith("127."):
                raise ValueError(f"loopback only, got {address}")
            server = http.server.ThreadingHTTPServer((address, port), handler)
            server.daemon_threads = True
            servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        yield lb
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
