"""Which engine a lab.yaml without `engine:` gets, and what `labctl doctor` says of the engines
this machine has: Multipass when it is installed, else an LXD that answers and was initialised,
else one command for each. LXD is the fake `lxc` (an uninitialised daemon as recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.engine.base import LaunchSpec
from labctl.engine.registry import (
    AutoEngine,
    EngineProbe,
    choose_engine,
    open_engine,
    probe_engines,
    probe_lxd,
)
from labctl.errors import EngineNotFoundError
from labctl.model import EngineSettings
from labctl.ops.doctor import doctor
from tests.fake_lxc.fixture import FakeLxc

SPEC = LaunchSpec("web-app1", "24.04", 1, "1G", "5G", "", timeout=60)


def test_multipass_installed_is_chosen_without_asking_lxd(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = bare_path / "multipass"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    engine, why = choose_engine()
    assert engine.capabilities.name == "multipass" and why == "Multipass (no engine: in lab.yaml)"


def test_without_multipass_a_usable_lxd_is_chosen_and_up_says_why(lxd_here: FakeLxc) -> None:
    engine, why = choose_engine()
    assert engine.capabilities.name == "lxd"
    assert why == "LXD (no engine: in lab.yaml and Multipass is not installed)"
    auto = AutoEngine()
    assert auto.ready() == "lxd 5.0.2; engine: " + why  # what up's preflight shows


def test_an_lxd_nobody_initialised_is_not_used_and_the_fix_is_named(lxd_here: FakeLxc) -> None:
    lxd_here.make_uninitialised()
    probe = probe_lxd()
    assert (probe.installed, probe.usable) == (True, False)
    assert "not initialised (no storage pool, no root disk in the profiles, no network" in (
        probe.detail
    )
    assert "`labctl lxd-init`" in probe.hint
    with pytest.raises(EngineNotFoundError) as caught:
        choose_engine()
    assert "Multipass is not installed, and LXD is not usable" in caught.value.message
    assert "labctl lxd-init" in (caught.value.hint or "")
    assert "sudo snap install multipass" in (caught.value.hint or "")


def test_an_lxd_that_does_not_answer_says_so(lxd_here: FakeLxc) -> None:
    lxd_here.configure(daemon_unreachable=True)
    probe = probe_lxd()
    assert (probe.installed, probe.usable) == (True, False)
    assert "LXD does not answer" in probe.detail and "unix.socket" in probe.detail


def test_neither_engine_says_how_to_get_either_in_one_command(bare_path: Path) -> None:
    with pytest.raises(EngineNotFoundError) as caught:
        choose_engine()
    assert caught.value.message == "labctl needs Multipass or LXD, and neither is installed here"
    hint = caught.value.hint or ""
    assert "sudo snap install multipass" in hint and "sudo snap install lxd" in hint
    assert "sudo apt-get install lxd" in hint
    # doctor's engine line fails with the same words; it never raises
    [line] = AutoEngine().health()
    assert (line.name, line.status) == ("engine", "fail") and line.hint == caught.value.hint


def test_doctor_lists_every_engine_usable_or_why_not(make_world, lxd_here: FakeLxc) -> None:
    lxd_here.make_uninitialised()
    world = make_world()
    report = doctor(world.ctx)
    engines = [c for c in report.checks if c.name == "engines"]
    assert [(c.status, c.detail) for c in engines] == [
        ("skip", "multipass: not usable: not installed"),
        (
            "warn",
            "lxd: not usable: LXD 5.0.2 is installed but not initialised (no storage pool, no "
            "root disk in the profiles, no network in the profiles)",
        ),
    ]
    assert engines[0].hint == "sudo snap install multipass"
    assert report.ok  # the lab's own engine (here in memory) decides; the others only inform


def test_probes_name_both_engines(bare_path: Path) -> None:
    assert [p.name for p in probe_engines()] == ["multipass", "lxd"]
    assert all(isinstance(p, EngineProbe) and not p.installed for p in probe_engines())


def test_an_engine_named_in_lab_yaml_is_opened_without_probing(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABCTL_LXC")
    lxd = open_engine(EngineSettings(name="lxd", remote="class", project="web", cli="incus"))
    assert lxd.list_argv() == ["incus", "list", "class:", "--format", "json", "--project", "web"]
    on_a_server = open_engine(EngineSettings(name="lxd"), remote="east")
    assert on_a_server.version_argv() == ["lxc", "query", "east:/1.0"]
    assert open_engine(EngineSettings(name="multipass")).capabilities.name == "multipass"
    monkeypatch.setenv("LABCTL_LXC", "/opt/incus/bin/incus")  # another path, the same flavour
    elsewhere = open_engine(EngineSettings(name="lxd", cli="incus"))
    assert elsewhere.version_argv()[0] == "/opt/incus/bin/incus"
    assert elsewhere.launch_argv(SPEC)[2] == "images:ubuntu/24.04/cloud"


def test_an_override_naming_a_missing_path_is_no_engine(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = bare_path / "gone" / "multipass"
    monkeypatch.setenv("LABCTL_MULTIPASS", str(gone))
    assert [(p.name, p.installed, p.usable) for p in probe_engines()] == [
        ("multipass", False, False),
        ("lxd", False, False),
    ]
    assert probe_engines()[0].detail == f"not installed (LABCTL_MULTIPASS={gone} is no executable)"
    # up still takes the Multipass it was told to use, whose error names the path
    assert choose_engine()[0].capabilities.name == "multipass"
