"""Running the real labctl against a test LXD: as a subprocess in its own mount namespace (the
test's hosts file over /etc/hosts), with the daemon's environment, this machine's `lxc`, no
Multipass, and the lab state under the test's folder. Shared by the server and cluster modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import WITH_HOSTS

ROOT = Path(__file__).resolve().parents[2]


def labctl_env(daemon_env: dict[str, str], root: Path) -> dict[str, str]:
    env = {k: v for k, v in daemon_env.items() if not k.startswith("LABCTL_")}
    env["LABCTL_LXC"] = shutil.which("lxc") or "lxc"
    env["LABCTL_MULTIPASS"] = "/nonexistent/no-multipass-in-the-lxd-tier"
    env["LABCTL_STATE_DIR"] = str(root / "state")
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_labctl(
    args: tuple[str, ...], *, file: Path, hosts: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable]
    argv += [str(WITH_HOSTS), str(hosts), "--", sys.executable, "-m", "labctl"]
    argv += [*args, "-f", str(file)]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
