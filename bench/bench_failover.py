"""Failover of labctl's rendered nginx site beside a course-style site, on simulated VMs.

A lab (app1, app2: the built-in hello app under pm2; lb: nginx) is brought up with `labctl up`
against the fake multipass's sim backend (tests/e2e/harness.py: network namespaces on a private
bridge, real nginx/node/pm2). Then, for each site pushed with labctl-lb-apply:

- closed-loop load (THREADS threads x SECONDS s, keep-alive connections, client timeout
  CLIENT_TIMEOUT s); at FAULT_AT s app2 is killed (kill -9 of pm2's daemon, then of the app, so
  nothing restarts it), frozen (SIGSTOP) or blackholed (iptables DROP in the LB's namespace);
- recovery: both backends refuse connections for 1 s (iptables REJECT tcp-reset in the LB's
  namespace, 4 client threads); time from their return to the first 200;
- upstream TCP connections opened per 2,000 requests (8 keep-alive threads): TcpPassiveOpens of
  the backends' namespaces (/proc/net/snmp), cross-checked with the LB's TcpActiveOpens.

Traffic goes only to the simulated VMs' addresses; every loop is bounded in count and time; every
namespace, rule and process is removed at the end (also on Ctrl-C). Needs root.

    .venv/bin/python bench/bench_failover.py
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _common import machine_line, print_table

from labctl.config.load import parse_lab
from labctl.render.userdata import LB_APPLY_COMMAND, Backend, render_nginx_site
from tests.conftest import sim_unavailable_reason
from tests.e2e.harness import SimLab, _free_subnet, _leftovers
from tests.fake_multipass.fixture import FakeMultipass

THREADS, SECONDS, FAULT_AT, CLIENT_TIMEOUT = 16, 15.0, 5.0, 5.0
MAX_REQUESTS_PER_THREAD = 50_000
BLIP_THREADS, BLIP_DOWN, BLIP_AFTER = 4, 1.0, 25.0
KEEPALIVE_REQUESTS, KEEPALIVE_THREADS = 2000, 8
LAB = """\
name: fo
domain: fo.lab
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
defaults: {memory: 256M, disk: 1G}
snapshots: {baseline: false}
waits: {launch: 300s, cloud_init: 300s, serve: 90s}
"""
COURSE_SITE = """\
upstream course_fo {{
    server {a1};
    server {a2};
}}
server {{
    listen 80 default_server;
    server_name fo.lab;
    location / {{
        proxy_pass http://course_fo;
    }}
}}
"""
# Recovery candidates, measured beside labctl's default site: name -> (lb: settings,
# last_resort). "labctl" itself is the default rendering.
CANDIDATES: dict[str, tuple[str, bool | None]] = {
    "no-backup mf2 ft5": ("", False),  # labctl before its backup peers: max_fails=2 fail_timeout=5s
    "no-backup mf5 ft1": ("max_fails: 5, fail_timeout: 1s", False),
    "no-backup mf1 ft1": ("max_fails: 1, fail_timeout: 1s", False),
    "no-backup mf0": ("max_fails: 0", False),
}
# The earlier measurement docs/nginx-failover.md reports (nginx 1.22.1, 1 worker, loopback
# backends, 16 threads x 15 s, client timeout 5 s), printed beside this run's figures.
EARLIER = {
    ("kill9", "course"): "0 failed, 34 ms",
    ("kill9", "labctl"): "0 failed, 32 ms (tuned)",
    ("stop", "course"): "32 client timeouts, 5.0 s",
    ("stop", "labctl"): "16 failed, 5.0 s (read 5 s) / 0, 3.02 s (read 3 s)",
    ("blackhole", "course"): "32 client timeouts, 5.0 s",
    ("blackhole", "labctl"): "9 failed, 5.0 s (read 5 s) / 0, 3.01 s (read 3 s)",
    ("blip", "course"): "9.53 s (max_fails=1 fail_timeout=10s)",
    ("blip", "labctl"): "1.15 s (fail_timeout=2s)",
    ("conns", "course"): "2000 (no keepalive)",
    ("conns", "labctl"): "15 (keepalive 16 + HTTP/1.1)",
}


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, input=stdin
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Load:
    total: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    max_latency: float = 0.0
    first_ok_after: dict[str, float] = field(default_factory=dict)
    oks: list[float] = field(default_factory=list)  # completion times (s since start) of 200s
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> str:
        if not self.failed:
            return "0"
        return (
            f"{sum(self.failed.values())} ("
            + ", ".join(f"{n} x {what}" for what, n in self.failed.most_common())
            + ")"
        )


def closed_loop(
    ip: str,
    threads: int,
    seconds: float,
    *,
    events: Sequence[tuple[float, Callable[[], None]]] = (),
    max_requests: int = MAX_REQUESTS_PER_THREAD,
    stop_when: Callable[[Load], bool] | None = None,
) -> Load:
    """`threads` clients, each on its own keep-alive connection, GET / until `seconds` passed or
    `max_requests` each; `events` run at their offsets from the main thread."""
    load = Load()
    started = time.monotonic()
    deadline = started + seconds
    done = threading.Event()

    def client() -> None:
        conn: http.client.HTTPConnection | None = None
        for _ in range(max_requests):
            if time.monotonic() >= deadline or done.is_set():
                break
            conn = conn or http.client.HTTPConnection(ip, 80, timeout=CLIENT_TIMEOUT)
            sent = time.monotonic()
            try:
                conn.request("GET", "/", headers={"Host": "fo.lab"})
                response = conn.getresponse()
                response.read()
                status = str(response.status)
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                status = "client timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                conn.close()
                conn = None
            now = time.monotonic()
            with load.lock:
                load.total += 1
                load.max_latency = max(load.max_latency, now - sent)
                if status == "200":
                    load.oks.append(now - started)
                else:
                    load.failed[status] += 1
                if stop_when and stop_when(load):
                    done.set()
        if conn:
            conn.close()

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for offset, action in sorted(events, key=lambda e: e[0]):
        while time.monotonic() < started + offset and not done.is_set():
            time.sleep(0.01)
        action()
    for worker in workers:
        worker.join(timeout=seconds + CLIENT_TIMEOUT + 10)
    done.set()
    return load


class Bench:
    """The simulated lab and the knobs on it."""

    def __init__(self, lab: SimLab) -> None:
        self.lab = lab
        self.net = f"{lab.prefix}0"
        self.lb_ip = lab.ip("fo-lb")
        self.apps = {vm: lab.ip(f"fo-{vm}") for vm in ("app1", "app2")}
        self.rules: list[list[str]] = []
        self.pushes = 0

    def netns(self, vm: str) -> str:
        return f"{self.net}-fo-{vm}"

    def labctl_site(self, lb: str = "", *, last_resort: bool | None = None) -> str:
        """labctl's rendered site; `lb` adds an `lb:` section (a candidate's settings)."""
        backends = [Backend(vm, f"{ip}:3000") for vm, ip in self.apps.items()]
        lab = parse_lab(LAB + (f"lb: {{{lb}}}\n" if lb else ""))
        return render_nginx_site(lab, backends, last_resort=last_resort)

    def course_site(self) -> str:
        return COURSE_SITE.format(a1=f"{self.apps['app1']}:3000", a2=f"{self.apps['app2']}:3000")

    def push(self, site: str) -> None:
        """Apply the site; a new comment every time makes nginx reload (fresh failure state)."""
        self.pushes += 1
        text = f"{site}# bench push {self.pushes}\n"
        pushed = self.lab.multipass_cmd("exec", "fo-lb", "--", *LB_APPLY_COMMAND, stdin=text)
        if pushed.returncode != 0 or "applied" not in pushed.stdout:
            raise RuntimeError(f"labctl-lb-apply: {pushed.stdout} {pushed.stderr}")
        time.sleep(1.0)  # old workers finish; new ones take over

    def iptables(self, vm_ns: str, *rule: str) -> None:
        sh("ip", "netns", "exec", vm_ns, "iptables", "-I", "OUTPUT", *rule)
        self.rules.append([vm_ns, *rule])

    def drop_rules(self) -> None:
        while self.rules:
            vm_ns, *rule = self.rules.pop()
            sh("ip", "netns", "exec", vm_ns, "iptables", "-D", "OUTPUT", *rule, check=False)

    def pm2_pids(self, vm: str) -> tuple[int, list[int]]:
        """(pm2 God daemon, its children = the app) among the VM's processes."""
        pids = [int(p) for p in sh("ip", "netns", "pids", self.netns(vm)).split()]
        god = next(p for p in pids if _cmdline(p).startswith("PM2 v"))
        children = [p for p in pids if _ppid(p) == god]
        return god, children

    def app_answers(self, vm: str) -> bool:
        try:
            conn = http.client.HTTPConnection(self.apps[vm], 3000, timeout=2)
            conn.request("GET", "/")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def wait_app(self, vm: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not self.app_answers(vm):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{vm} did not come back within {seconds:.0f}s")
            time.sleep(0.1)

    def upstream_opens(self) -> tuple[int, int]:
        """(sum of the backends' TcpPassiveOpens, the LB's TcpActiveOpens)."""
        passive = sum(_tcp_counter(self.netns(vm), "PassiveOpens") for vm in self.apps)
        return passive, _tcp_counter(self.netns("lb"), "ActiveOpens")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _tcp_counter(netns: str, name: str) -> int:
    lines = sh("ip", "netns", "exec", netns, "cat", "/proc/net/snmp").splitlines()
    header, values = (ln.split() for ln in lines if ln.startswith("Tcp:"))
    return int(dict(zip(header, values, strict=True))[name])


def fault_run(bench: Bench, site: str, fault: str) -> Load:
    bench.push(site)
    app2 = bench.apps["app2"]
    restore: list[Callable[[], None]] = []

    def inject() -> None:
        if fault == "kill9":
            god, children = bench.pm2_pids("app2")
            os.kill(god, signal.SIGKILL)  # first, or it restarts the app at once
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            restore.append(
                lambda: bench.lab.multipass_cmd("exec", "fo-app2", "--", "pm2", "resurrect")
            )
        elif fault == "stop":
            _, children = bench.pm2_pids("app2")
            for pid in children:
                os.kill(pid, signal.SIGSTOP)
            restore.append(lambda: [os.kill(pid, signal.SIGCONT) for pid in children])
        else:
            rule = ("-d", app2, "-p", "tcp", "--dport", "3000", "-j", "DROP")
            bench.iptables(bench.netns("lb"), *rule)
            restore.append(bench.drop_rules)

    try:
        return closed_loop(bench.lb_ip, THREADS, SECONDS, events=[(FAULT_AT, inject)])
    finally:
        for action in restore:
            action()
        bench.wait_app("app2")


def blip_run(bench: Bench, site: str) -> tuple[float | None, int]:
    """Both backends refuse for BLIP_DOWN s; seconds from their return to the first 200."""
    bench.push(site)
    back: list[float] = []
    started = time.monotonic()

    def down() -> None:
        for ip in bench.apps.values():
            rule = ("-d", ip, "-p", "tcp", "--dport", "3000", "-j", "REJECT")
            bench.iptables(bench.netns("lb"), *rule, "--reject-with", "tcp-reset")

    def up() -> None:
        bench.drop_rules()
        back.append(time.monotonic() - started)

    def recovered(load: Load) -> bool:
        return bool(back) and any(t > back[0] for t in load.oks[-4:])

    try:
        load = closed_loop(
            bench.lb_ip,
            BLIP_THREADS,
            2.0 + BLIP_DOWN + BLIP_AFTER,
            events=[(2.0, down), (2.0 + BLIP_DOWN, up)],
            stop_when=recovered,
        )
    finally:
        bench.drop_rules()
    after = [t for t in load.oks if back and t > back[0]]
    return (min(after) - back[0] if after else None), sum(load.failed.values())


def connections_run(bench: Bench, site: str) -> tuple[int, int, int]:
    bench.push(site)
    passive, active = bench.upstream_opens()
    load = closed_loop(
        bench.lb_ip, KEEPALIVE_THREADS, 60.0, max_requests=KEEPALIVE_REQUESTS // KEEPALIVE_THREADS
    )
    passive2, active2 = bench.upstream_opens()
    return load.total, passive2 - passive, active2 - active


@contextmanager
def sim_lab(root: Path) -> Iterator[SimLab]:
    """The e2e harness's sim_lab fixture, outside pytest: own prefix, subnet, cleanup."""
    from tests.simvm import cleanup_all

    prefix = "b" + secrets.token_hex(2)
    fake = FakeMultipass(root / "fmp")
    fake.configure(
        backend="sim",
        sim_subnet=_free_subnet(),
        sim_prefix=prefix,
        sim_state_dir=str(root / "sim"),
    )
    wrapper = root / "bin" / "multipass"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nexec nsenter --mount=/proc/{os.getpid()}/ns/mnt -- "{fake.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    try:
        yield SimLab(fake, root, prefix, hosts, wrapper)
    finally:
        cleanup_all(prefix)
        left = _leftovers(prefix)
        if left:
            print(f"warning: left behind: {left}", file=sys.stderr)


def main() -> int:
    reason = sim_unavailable_reason() or (None if _has("iptables") else "needs iptables")
    if reason:
        print(f"bench_failover: skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp, sim_lab(Path(tmp)) as lab:
        path = Path(tmp) / "lab.yaml"
        path.write_text(LAB)
        started = time.monotonic()
        force = ["--force"] if "--force" in lab.labctl("up", "--help").stdout else []
        up = lab.labctl("up", "-f", str(path), "--no-hosts", *force)  # sim VMs: host memory
        if up.returncode != 0:
            print(up.stdout + up.stderr, file=sys.stderr)
            return 1
        print(f"lab up on simulated VMs in {time.monotonic() - started:.0f}s; {machine_line()}")
        bench = Bench(lab)
        sites = {"labctl": bench.labctl_site(), "course": bench.course_site()}
        sites.update(
            {name: bench.labctl_site(lb, last_resort=lr) for name, (lb, lr) in CANDIDATES.items()}
        )
        rows = []
        for fault in ("kill9", "stop", "blackhole"):
            for name, site in sites.items():
                load = fault_run(bench, site, fault)
                rows.append(
                    (
                        fault,
                        name,
                        load.total,
                        load.describe(),
                        f"{load.max_latency:.2f}",
                        EARLIER.get((fault, name), "-"),
                    )
                )
        blips = {name: blip_run(bench, site) for name, site in sites.items()}
        conns = {name: connections_run(bench, sites[name]) for name in ("labctl", "course")}
    print(
        f"\nfailover: {THREADS} threads x {SECONDS:g} s closed loop, keep-alive, client timeout "
        f"{CLIENT_TIMEOUT:g} s, fault on app2 at {FAULT_AT:g} s"
    )
    print_table(["fault", "site", "requests", "failed", "max latency s", "earlier (docs)"], rows)
    print(f"\nrecovery: both backends refuse for {BLIP_DOWN:g} s ({BLIP_THREADS} threads)")
    print_table(
        ["site", "first 200 after return s", "failed during run", "earlier (docs)"],
        [
            (
                name,
                "none" if gap is None else f"{gap:.3f}",
                failed,
                EARLIER.get(("blip", name), "-"),
            )
            for name, (gap, failed) in blips.items()
        ],
    )
    print(
        f"\nupstream TCP connections per {KEEPALIVE_REQUESTS} requests ({KEEPALIVE_THREADS} threads)"
    )
    print_table(
        ["site", "requests", "backend accepts", "LB connects", "earlier (docs)"],
        [(name, *figures, EARLIER[("conns", name)]) for name, figures in conns.items()],
    )
    failed = {(r[0], r[1]): r[3] for r in rows}
    gap = {name: g for name, (g, _) in blips.items()}
    print(
        "ratios: "
        + ", ".join(
            f"{fault} failed labctl/course {failed[(fault, 'labctl')]} / "
            f"{failed[(fault, 'course')]}"
            for fault in ("kill9", "stop", "blackhole")
        )
        + f"; recovery course/labctl {_ratio(gap['course'], gap['labctl'])}"
        + f"; connections course/labctl {_ratio(conns['course'][1], conns['labctl'][1])}"
    )
    return 0


def _ratio(a: float | None, b: float | None) -> str:
    if a is not None and b is not None and b < 0.001:
        return f"> {a / 0.001:.0f} (below 1 ms)"  # the last-resort peers answer at once
    return f"{a / b:.1f}" if a is not None and b else "n/a"


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


if __name__ == "__main__":
    sys.exit(main())
