"""End-to-end harness: labctl against the fake multipass's simulated VMs (tests/simvm).

Each test gets its own bridge, subnet and name prefix; teardown removes every namespace, link
and process the test created (also when it fails) and checks that nothing is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.host.probes import Tally, hammer
from tests.browser.support import browser_env
from tests.conftest import skip_or_fail_without_sim
from tests.fake_multipass.fixture import FakeMultipass

ROOT = Path(__file__).resolve().parents[2]
WITH_HOSTS = Path(__file__).resolve().parent / "with_hosts.py"


def _free_subnet() -> str:
    routes = subprocess.run(
        ["ip", "-4", "route"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    addresses = subprocess.run(
        ["ip", "-4", "addr"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    for third in range(10, 250):
        net = f"10.251.{third}."
        if net not in routes and net not in addresses:
            return f"{net}0/24"
    raise RuntimeError("no free 10.251.x.0/24 test subnet")


@dataclass
class SimLab:
    fake: FakeMultipass
    root: Path
    prefix: str
    hosts: Path
    multipass: Path  # wrapper: the fake, run in the test's mount namespace
    # `labctl check` opens the lab in the real browser (kept off the internet); else its browser
    # check is skipped (LABCTL_BROWSER=none), as in the tests that grade other things
    browser: bool = False

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
        env.update(self.fake.env)
        env["LABCTL_MULTIPASS"] = str(self.multipass)
        env["LABCTL_LXC"] = "/nonexistent/labctl-tests-use-a-fake-lxc"  # never this machine's
        env["LABCTL_STATE_DIR"] = str(self.root / "state")
        env["PYTHONPATH"] = str(ROOT)
        env.update(browser_env() if self.browser else {"LABCTL_BROWSER": "none"})
        return env

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run labctl with the temp hosts file bound over /etc/hosts in a private mount namespace."""
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            str(WITH_HOSTS),
            str(self.hosts),
            "--",
            sys.executable,
            "-m",
            "labctl",
            *args,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
        )

    def multipass_cmd(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.fake.run(*args, input=stdin, timeout=timeout)

    def instances(self) -> dict[str, dict[str, Any]]:
        return self.fake.instances()

    def ip(self, instance: str) -> str:
        return str(self.instances()[instance]["ipv4"][0])

    def status(self, lab_file: Path) -> tuple[int, dict[str, Any]]:
        result = self.labctl("status", "-f", str(lab_file), "--json")
        return result.returncode, json.loads(result.stdout)

    def wait_healthy(self, lab_file: Path, *, within: float) -> dict[str, Any]:
        """Status until healthy, for at most `within` seconds (bounded; one check a second).

        After a backend comes back, each nginx worker keeps its own failure state for it until
        fail_timeout passes, so "healthy" can lag the first 200 by up to fail_timeout.
        """
        deadline = time.monotonic() + within
        while True:
            code, report = self.status(lab_file)
            if code == 0 or time.monotonic() > deadline:
                return report
            time.sleep(1)

    def hammer(
        self,
        instance_lb: str,
        domain: str,
        *,
        requests: int,
        deadline: float = 120,
        port: int = 80,
        timeout: float = 10,
    ) -> Tally:
        """Bounded sequential GETs to the LB's address with the lab's domain as Host."""
        return hammer(
            self.ip(instance_lb),
            port,
            domain,
            requests=requests,
            deadline=deadline,
            timeout=timeout,
        )


def _leftovers(prefix: str) -> list[str]:
    found: list[str] = []
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found += [line.split()[0] for line in netns.splitlines() if line.startswith(prefix)]
    links = subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found += [
        line.split(":")[1].strip().split("@")[0]
        for line in links.splitlines()
        if line.split(":")[1].strip().startswith(prefix)
    ]
    return found


def seed_lab_text(
    git_url: str, *, before_app: str = "", app_extra: str = "", after: str = ""
) -> str:
    """The course's seed lab shape (app1 + gateway with lb+app) with the app from `git_url`
    (a repository made by serve_git_app); the callers add defaults, lb and waits."""
    return (
        "name: alvin\ndomain: alvin.xyz\naliases: [www.alvin.xyz]\n"
        + before_app
        + "app:\n  name: dumbflix\n"
        + f'  source: {{git: "{git_url}", ref: main}}\n'
        + app_extra
        + "  build: npm run build\n  start: {serve: build, spa: true}\n  port: 3000\n"
        + "  env: {BUILD_TAG: seed, NODE_OPTIONS: --openssl-legacy-provider}\n"
        + "vms:\n  - {name: app1, roles: [app]}\n  - {name: gateway, roles: [lb, app]}\n"
        + after
    )


@contextlib.contextmanager
def serve_git_app(tmp: Path, port: int, listen: str | None = None) -> Iterator[str]:
    """A small static frontend in a local git repository (`frontend.git`: `npm run build`
    writes build/index.html with $BUILD_TAG), served by `git daemon` on `port` (no internet)."""
    repo = tmp / "repos" / "frontend.git"
    work = tmp / "frontend"
    work.mkdir()
    package = {"name": "frontend", "version": "1.0.0", "private": True}
    (work / "package.json").write_text(
        json.dumps(package | {"scripts": {"build": "node build.js"}})
    )
    (work / "build.js").write_text(
        "const fs = require('fs');\n"
        "fs.mkdirSync('build', {recursive: true});\n"
        "fs.writeFileSync('build/index.html', '<h1>dumbflix-like frontend ' + process.env.BUILD_TAG + '</h1>');\n"
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for argv in (["init", "-q"], ["add", "."], ["commit", "-qm", "app"]):
        subprocess.run([*git, *argv], cwd=work, check=True, timeout=30)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True, timeout=30)
    argv = ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repo.parent}"]
    argv += [f"--port={port}", *([f"--listen={listen}"] if listen else []), str(repo.parent)]
    daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield repo.name
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@contextlib.contextmanager
def serve_git_repos(repos: Path, port: int) -> Iterator[None]:
    """`git daemon` serving every bare repository in `repos` on `port` (no internet needed)."""
    argv = ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repos}"]
    daemon = subprocess.Popen(
        [*argv, f"--port={port}", str(repos)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def make_lab(root: Path, prefix: str, **settings: Any) -> SimLab:
    """A fake multipass on its own subnet/prefix (backend `sim` unless `settings` say otherwise),
    its daemon wrapper and a temp hosts file; shared by the sim and the real-VM (vm) tests."""
    fake = FakeMultipass(root / "fmp")
    fake.configure(
        **{
            "backend": "sim",
            "sim_subnet": _free_subnet(),
            "sim_prefix": prefix,
            "sim_state_dir": str(root / "sim"),
            **settings,
        }
    )
    # The simulated daemon must create namespaces in the test's mount namespace, not in the
    # private one labctl runs in (which vanishes with it): like multipassd, it lives outside.
    wrapper = root / "bin" / "multipass"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nexec nsenter --mount=/proc/{os.getpid()}/ns/mnt -- "{fake.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
    return SimLab(fake, root, prefix, hosts, wrapper)


def tear_down(prefix: str) -> None:
    """Kill, delete and check: no netns, link or tagged process named prefix* is left."""
    from tests.simvm import cleanup_all

    cleanup_all(prefix)
    left = _leftovers(prefix)
    assert not left, f"VMs left behind: {left}"


@pytest.fixture
def sim_lab(tmp_path: Path) -> Iterator[SimLab]:
    skip_or_fail_without_sim()
    prefix = "e" + secrets.token_hex(2)  # simvm names: [a-z][a-z0-9]{0,9}
    lab = make_lab(tmp_path, prefix)
    try:
        yield lab
    finally:
        tear_down(prefix)
