"""Fixtures for the tests on a real LXD (marker `lxd`): the image, the host footprint (lxcfs,
baseline, clean-up), a standalone server and a 3-member cluster, each started once for this
package and torn down as soon as its last test ran (package scope: in a whole `make test` the
daemons, their containers, `ip_forward` and LXD's iptables rules must be gone before the next
tier's tests start, not at the end of the session).

Teardown always runs: after a failing test, on Ctrl-C (pytest tears session fixtures down on
KeyboardInterrupt) and on SIGTERM (turned into KeyboardInterrupt while LXD is up); a run killed
harder is undone by the next session's clean-up at start. The pytest summary ends with an "LXD"
section: the image, what each piece cost, and what the clean-ups removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from tests.conftest import skip_or_fail
from tests.lxd.cluster import LxdCluster
from tests.lxd.image import LxdImage
from tests.lxd.server import LxdServer
from tests.lxd.session import LxdRun

CLUSTER_SIZE = 3
TOOLS = ("lxd", "lxc", "lxcfs", "dnsmasq", "iptables", "ip6tables", "ip", "ss", "losetup")


def lxd_unavailable_reason() -> str | None:
    from tests.lxd.image import unavailable_reason

    if os.geteuid() != 0:
        return "needs root (LXD daemons, bridges, iptables)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (make system-deps installs lxd and dnsmasq-base)"
    if Path(shutil.which("lxd") or "").resolve().parts[:2] == ("/", "snap"):
        return "needs a packaged lxd (a snap's daemon cannot be started with a private LXD_DIR)"
    return unavailable_reason()


@dataclass
class LxdSession:
    run: LxdRun
    image: LxdImage


_NOTES: list[str] = []


def say(config: pytest.Config, line: str) -> None:
    _NOTES.append(line)
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def timings(label: str, measured: dict[str, float]) -> str:
    return f"LXD: {label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in measured.items())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _NOTES:
        terminalreporter.write_sep("-", "LXD")
        for line in _NOTES:
            terminalreporter.write_line(line)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="package")
def lxd_session(pytestconfig: pytest.Config) -> Iterator[LxdSession]:
    skip_or_fail(lxd_unavailable_reason(), "LXD")
    from tests.lxd.image import ensure_image

    started = time.monotonic()
    image = ensure_image()
    say(pytestconfig, f"LXD: image {image.folder} ready after {time.monotonic() - started:.0f} s")
    run = LxdRun()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run.begin()
        say(pytestconfig, f"LXD: clean-up at start: {report.summary()} (run folder {run.root})")
        yield LxdSession(run, image)
    finally:
        try:
            report = run.end()
            say(pytestconfig, f"LXD: clean-up at end: {report.summary()}; nothing left")
        finally:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="package")
def lxd_server(lxd_session: LxdSession, pytestconfig: pytest.Config) -> Iterator[LxdServer]:
    server = LxdServer.start(lxd_session.run, lxd_session.image)
    say(pytestconfig, timings(f"server ({server.driver} pool)", server.timings))
    try:
        yield server
    finally:
        started = time.monotonic()
        deleted = server.stop()
        say(
            pytestconfig,
            f"LXD: server stopped ({len(deleted)} instances deleted) "
            f"in {time.monotonic() - started:.1f} s",
        )


@pytest.fixture(scope="package")
def lxd_cluster(lxd_session: LxdSession, pytestconfig: pytest.Config) -> Iterator[LxdCluster]:
    cluster = LxdCluster.start(lxd_session.run, lxd_session.image, size=CLUSTER_SIZE)
    say(
        pytestconfig,
        timings(f"{CLUSTER_SIZE}-member cluster ({cluster.driver} pools)", cluster.timings),
    )
    try:
        yield cluster
    finally:
        started = time.monotonic()
        deleted = cluster.stop()
        say(
            pytestconfig,
            f"LXD: cluster stopped ({len(deleted)} instances deleted) "
            f"in {time.monotonic() - started:.1f} s",
        )
