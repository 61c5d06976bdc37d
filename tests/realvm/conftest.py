"""Session fixtures for the real-VM tests: one image, one fake multipass (backend `vm`), one
private bridge, and the seed lab brought up once (two first boots in parallel). A lab whose
install fails is shown on LXD containers (tests/lxd), with the same cloud-init: a third boot
here cost minutes on two cores.

Everything is session-scoped because a boot costs minutes under TCG. Teardown always kills
every qemu, TAP and bridge of the session's prefix (tests.simvm.cleanup_all, as the sim tests),
checks that nothing is left, and removes the overlays.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import sim_unavailable_reason, skip_or_fail
from tests.e2e.harness import SimLab, make_lab, seed_lab_text, serve_git_app, tear_down

UP_TIMEOUT = 2400.0  # two first boots at once on 2 shared cores under TCG, bounded
SEED_EXTRAS = {
    "before_app": "defaults: {cpus: 1, memory: 1G, disk: 5G}\n",
    "after": "lb: {max_fails: 2, fail_timeout: 5s, read_timeout: 3s, connect_timeout: 1s}\n"
    "waits: {launch: 1800s, cloud_init: 1800s, serve: 300s}\n",
}


@dataclass
class VmSession:
    lab: SimLab
    accel: str
    seed_file: Path
    up_results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    up_seconds: float = 0.0

    def explain(self, result: subprocess.CompletedProcess[str] | None = None) -> str:
        """A failure message: labctl's output, and each VM's serial console tail."""
        parts = [] if result is None else [result.stdout, result.stderr]
        for log in sorted((self.lab.root / "sim" / "logs").glob("*.serial.log")):
            lines = log.read_text(errors="replace").splitlines()[-25:]
            parts.append(f"--- {log.name} (last 25 lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)


def vm_unavailable_reason() -> str | None:
    from tests.vmimage import image_unavailable_reason

    return sim_unavailable_reason() or image_unavailable_reason()


_NOTES: list[str] = []  # said again in the terminal summary, which every pytest run prints


def _say(config: pytest.Config, line: str) -> None:
    _NOTES.append(line)
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The image, the accelerator (KVM or TCG) and the long waits, also in a quiet CI log."""
    if _NOTES:
        terminalreporter.write_sep("-", "real VMs")
        for line in _NOTES:
            terminalreporter.write_line(line)
        reports = [
            report
            for reports in terminalreporter.stats.values()
            for report in reports
            if isinstance(report, pytest.TestReport) and report.nodeid.startswith("tests/realvm/")
        ]
        seconds = sum(report.duration for report in reports)
        tests = len({report.nodeid for report in reports})
        terminalreporter.write_line(
            f"real VMs: {tests} tests took {seconds:.0f} s (setup, calls and teardown)"
        )


@pytest.fixture(scope="session")
def vm_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[VmSession]:
    skip_or_fail(vm_unavailable_reason(), "real-VM")
    from tests.qemuvm import probe_accel
    from tests.simvm import SimNetwork
    from tests.vmimage.build import ensure_image

    started = time.monotonic()
    image = ensure_image()
    _say(
        pytestconfig,
        f"real VMs: image {image.folder} ready after {time.monotonic() - started:.0f} s",
    )
    root = tmp_path_factory.mktemp("realvm")
    prefix = "v" + secrets.token_hex(2)
    accel = probe_accel(image, root / "accel-probe.log")
    _say(pytestconfig, f"real VMs: qemu accelerator {accel} (KVM only if a probe boot ran a guest)")
    lab = make_lab(root, prefix, backend="vm", vm_image=str(image.folder), vm_accel=accel)
    subnet = str(lab.fake.settings()["sim_subnet"])
    network = SimNetwork(f"{prefix}0", subnet, root / "sim" / "network")  # the backend's bridge
    try:
        network.ensure()  # now, so git daemon can listen on the host side of the bridge only
        port = 19418 + int(prefix[1:], 16) % 1000
        with serve_git_app(root, port, listen=network.host_ip) as repo:
            seed = root / "alvin.yaml"
            url = f"git://{network.host_ip}:{port}/{repo}"
            seed.write_text(seed_lab_text(url, **SEED_EXTRAS))
            session = VmSession(lab, accel, seed)
            yield session
    finally:
        tear_down(prefix)
        # The serial consoles outlive the overlays (about 1 GB per VM), for a post-mortem.
        if (root / "sim" / "logs").is_dir():
            shutil.copytree(root / "sim" / "logs", root / "serial-logs", dirs_exist_ok=True)
        shutil.rmtree(root / "sim", ignore_errors=True)
        _say(
            pytestconfig,
            "real VMs: cleaned up (every qemu, TAP and the bridge are gone); serial consoles kept "
            f"in {root / 'serial-logs'}",
        )


@pytest.fixture(scope="session")
def seed(vm_session: VmSession, pytestconfig: pytest.Config) -> VmSession:
    """The seed lab brought up once per session (both its VMs boot at once)."""
    if not vm_session.up_results:
        started = time.monotonic()
        up = vm_session.lab.labctl("up", "-f", str(vm_session.seed_file), timeout=UP_TIMEOUT)
        vm_session.up_results = {"alvin": up}
        vm_session.up_seconds = time.monotonic() - started
        _say(
            pytestconfig,
            f"real VMs: the seed lab's `up` returned after {vm_session.up_seconds:.0f} s",
        )
    return vm_session
