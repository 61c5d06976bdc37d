"""`labctl up` on LXD when the engine cannot take the lab (the fake `lxc`, with LXD 5.0.2's
recorded texts): each failure says what happened, what state it left and what to do, and a
failure found before launching launches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_lxc.fixture import FakeLxc

ROOT = Path(__file__).resolve().parent.parent
LAB = """\
name: flt
domain: flt.lab
engine: {name: lxd%s}
image: labctl-test
defaults: {cpus: 1, memory: 256M, disk: 3G}
app: {name: hello, source: {builtin: hello}, port: 3000}
vms:
  - {name: app1, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 60s, cloud_init: 60s, serve: 20s}
"""


def up(fake: FakeLxc, tmp_path: Path, engine_extra: str = "") -> subprocess.CompletedProcess[str]:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB % engine_extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    env |= fake.env | {"LABCTL_LXC": str(fake.executable), "PYTHONPATH": str(ROOT)}
    env |= {"LABCTL_MULTIPASS": "/nonexistent", "LABCTL_STATE_DIR": str(tmp_path / "state")}
    env["COLUMNS"] = "300"
    return subprocess.run(
        [sys.executable, "-m", "labctl", "--no-progress", "up", "-f", str(lab), "--no-hosts"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def launches(fake: FakeLxc) -> list[str]:
    return [c["argv"][3] for c in fake.calls() if c["command"] == "launch"]


def test_an_lxd_nobody_initialised_launches_nothing_and_names_lxd_init(
    fake_lxc: FakeLxc, tmp_path: Path
) -> None:
    fake_lxc.make_uninitialised()
    result = up(fake_lxc, tmp_path)
    assert result.returncode == 1
    assert (
        "LXD 5.0.2 is installed but not initialised (no storage pool, no root disk in the "
        "profiles, no network in the profiles); up launched nothing and changed nothing"
    ) in result.stderr
    assert "`labctl lxd-init` sets it up with a fixed subnet" in result.stderr
    assert launches(fake_lxc) == []


def test_a_daemon_that_does_not_answer_launches_nothing(fake_lxc: FakeLxc, tmp_path: Path) -> None:
    fake_lxc.configure(daemon_unreachable=True)
    result = up(fake_lxc, tmp_path)
    assert result.returncode == 1
    assert "LXD does not answer" in result.stderr and "unix.socket" in result.stderr
    assert "up launched nothing and changed nothing" in result.stderr
    assert "Is the LXD daemon running and reachable?" in result.stderr
    assert launches(fake_lxc) == []


def test_a_missing_project_launches_nothing_and_says_how_to_make_it(
    fake_lxc: FakeLxc, tmp_path: Path
) -> None:
    result = up(fake_lxc, tmp_path, ", project: web")
    assert result.returncode == 1
    assert "Project not found; up launched nothing and changed nothing" in result.stderr
    assert "`lxc project create NAME`" in result.stderr
    assert launches(fake_lxc) == []


def test_a_missing_image_says_which_and_that_nothing_was_made(
    fake_lxc: FakeLxc, tmp_path: Path
) -> None:
    fake_lxc.configure(image_missing=["*"])
    result = up(fake_lxc, tmp_path)
    assert result.returncode == 1
    assert "launch [app1]: " in result.stderr and "launch [lb]: " in result.stderr
    assert "Image not found" in result.stderr
    assert "`lxc image list` shows what is" in result.stderr
    assert "up stopped: 0 VM(s) ready (none); nothing was deleted" in result.stderr
    assert fake_lxc.run("list", "--format", "csv", "-c", "n").stdout == ""


@pytest.mark.parametrize("limit", ["limits.instances=1"])
def test_a_used_up_quota_says_what_is_up_and_how_to_go_on(
    fake_lxc: FakeLxc, tmp_path: Path, limit: str
) -> None:
    created = fake_lxc.run(
        "project", "create", "lxt-quota", "-c", "features.images=false",
        "-c", "features.profiles=false", "-c", limit,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    result = up(fake_lxc, tmp_path, ", project: lxt-quota")
    assert result.returncode == 1
    assert (
        "the project's quota is used up (Reached maximum number of instances in project "
        '"lxt-quota")'
    ) in result.stderr
    assert "`lxc project set NAME limits.instances N`" in result.stderr
    assert "up stopped: 1 VM(s) ready (" in result.stderr and "nothing was deleted" in (
        result.stderr
    )
    assert "`labctl up` again continues from here; `labctl down` removes the lab" in (result.stderr)
    listed = fake_lxc.run("list", "--project", "lxt-quota", "--format", "csv", "-c", "n")
    assert len(listed.stdout.splitlines()) == 1
