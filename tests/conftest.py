from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.check_world import check_world  # noqa: F401  (a fixture: labctl check, stages)
from tests.fake_lxc.fixture import fake_lxc, lxd_here  # noqa: F401  (fixtures)
from tests.fake_multipass.fixture import fake_multipass  # noqa: F401  (a fixture)
from tests.lab_world import make_world  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
NO_LXC = "/nonexistent/labctl-tests-use-a-fake-lxc"


@pytest.fixture(autouse=True)
def _no_real_lxc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that does not name an `lxc` never runs this machine's: `labctl doctor` and the
    engine choice look for LXD, and a real client would read and write ~/.config/lxc."""
    if "LABCTL_LXC" not in os.environ:
        monkeypatch.setenv("LABCTL_LXC", NO_LXC)


@pytest.fixture(autouse=True)
def _no_browser_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`labctl check` opens a real browser when one is installed: tests that grade labs on the
    fakes get a skipped browser check instead; the browser tests (tests/browser/) turn it on."""
    monkeypatch.setenv("LABCTL_BROWSER", "none")


@pytest.fixture
def bare_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A PATH with neither engine's client: only what a test puts there."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LABCTL_MULTIPASS", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def _piped_console_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process CLI runs print at the width of piped output (160 columns), whoever runs pytest:
    labctl sizes its consoles once, at import, from COLUMNS; pytest-xdist's workers have
    COLUMNS=80 in their environment, which wrapped table cells that tests read back whole."""
    from labctl.cli import app as cli_app

    width = cli_app._piped_width(None)
    for console in (cli_app.stdout, cli_app.stderr):
        monkeypatch.setattr(console, "width", width)


def sim_unavailable_reason() -> str | None:
    """Why simulated-VM tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    if (
        not Path("/usr/sbin/ip").exists()
        and not Path("/sbin/ip").exists()
        and not Path("/usr/bin/ip").exists()
    ):
        return "needs iproute2 (ip netns)"
    missing = [tool for tool in ("nginx", "node", "pm2", "unshare", "nsenter") if not _which(tool)]
    if missing:
        return f"needs {', '.join(missing)} (make test installs them as root)"
    return None


def _which(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None or Path(f"/usr/sbin/{tool}").exists()


def skip_or_fail_without_sim() -> None:
    """Skip with the reason printed, except in CI (LABCTL_REQUIRE_SIM=1) where it is a failure."""
    skip_or_fail(sim_unavailable_reason(), "simulated-VM")


def skip_or_fail(reason: str | None, kind: str) -> None:
    """No-op when reason is None; else skip, or fail when LABCTL_REQUIRE_SIM=1 (CI)."""
    if reason is None:
        return
    if os.environ.get("LABCTL_REQUIRE_SIM") == "1":
        pytest.fail(f"{kind} test cannot run: {reason} (LABCTL_REQUIRE_SIM=1 forbids skipping)")
    pytest.skip(f"{kind} test skipped: {reason}")
