from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.check_world import check_world  # noqa: F401  (a fixture: labctl check, stages)
from tests.fake_multipass.fixture import fake_multipass  # noqa: F401  (a fixture)
from tests.lab_world import make_world  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent


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
