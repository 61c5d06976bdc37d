"""The browser check's driver: start-up per transport, one page, and a class's pages in one browser.

A dumbflix-like single-page app (navbar, then its hero after a 1.2 s timer, a CSS background
image, a failing API call) on a loopback server, mapped to ten domains with resolver rules.
Measures, with labctl's own CDP client and the installed Chromium:

- start-up (process start to `Browser.getVersion` answered) and close, over the pipe and the
  websocket transport;
- one page: navigation to hero rendered, settled and shot;
- ten pages in one browser, 1 window at a time vs 4 (labctl's bound) vs 10, with the browser's
  peak memory (PSS summed over its processes, sampled every 0.1 s; Linux only).

Only loopback is contacted; every other name is unresolvable (LABCTL_BROWSER_RULES).
Usage: python bench/bench_browser.py [--runs N]
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.host.browser.page import WaitFor, visit
from labctl.host.browser.process import Browser, TransportKind
from tests.browser import png
from tests.browser.world import APP_JS, INDEX

DOMAINS = [f"s{i}.lab" for i in range(10)]
HERO = WaitFor(selector=".hero")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser closing a kept-alive connection is not news


def _serve(folder: Path) -> int:
    (folder / "index.html").write_text(INDEX)
    (folder / "app.js").write_text(APP_JS.replace("MODE", "app"))
    (folder / "hero.png").write_bytes(png.solid(1280, 480, (200, 16, 32)))
    server = _Server(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def _start_close(kind: TransportKind) -> tuple[float, float]:
    started = time.monotonic()
    browser = Browser.start(transport=kind)
    up = time.monotonic() - started
    started = time.monotonic()
    browser.close()
    return up, time.monotonic() - started


def _pss_mb(marker: str) -> float:
    """Proportional memory of every process whose command line holds `marker` (Linux)."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or marker.encode() not in (proc / "cmdline").read_bytes():
                continue
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _class(port: int, windows: int) -> tuple[float, int, float]:
    rules = [f"MAP {domain} 127.0.0.1" for domain in DOMAINS]
    with Browser.start(resolver_rules=rules) as browser:
        peak = 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.1):
                peak = max(peak, _pss_mb(str(browser.profile)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=windows) as pool:
            pages = list(
                pool.map(
                    lambda d: visit(browser.cdp, f"http://{d}:{port}/", HERO, timeout=15), DOMAINS
                )
            )
        took = time.monotonic() - started
        done.set()
        sampler.join()
    return took, sum(1 for page in pages if page.ready and page.screenshot), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LABCTL_BROWSER_RULES", "MAP * ~NOTFOUND, EXCLUDE localhost")
    with tempfile.TemporaryDirectory() as tmp:
        port = _serve(Path(tmp))
        print(f"{'measure':44} {'median':>8} {'min':>8} {'max':>8}")

        def row(name: str, values: list[float]) -> None:
            print(
                f"{name:44} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}"
            )

        for kind in ("pipe", "websocket"):
            times = [_start_close(kind) for _ in range(args.runs)]  # type: ignore[arg-type]
            row(f"start, {kind} (s)", [up for up, _ in times])
            row(f"close, {kind} (s)", [down for _, down in times])
        single = []
        for _ in range(args.runs):
            with Browser.start(resolver_rules=["MAP s0.lab 127.0.0.1"]) as browser:
                page = visit(browser.cdp, f"http://s0.lab:{port}/", HERO, timeout=15)
                assert page.ready and page.screenshot
                single.append(page.seconds)
        row("one page: navigate..hero..settled..shot (s)", single)
        for windows in (1, 4, 10):
            results = [_class(port, windows) for _ in range(max(1, args.runs // 2))]
            complete = min(done for _, done, _ in results)
            row(f"10 pages, {windows} window(s) at a time (s)", [t for t, _, _ in results])
            row(f"  peak PSS of the browser, {windows} window(s) (MB)", [m for _, _, m in results])
            print(f"{'':44} every run: {complete}/10 pages rendered and shot (at least)")


if __name__ == "__main__":
    main()
