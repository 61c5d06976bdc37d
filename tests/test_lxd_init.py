"""`labctl lxd-init` on the fake `lxc`/`lxd` (a daemon as recorded right after installing LXD
5.0.2, before anyone initialised it): what it hands `lxd init --preseed` is the safe preseed
(a fixed subnet, NAT off unless asked, no IPv6, no automatic anything), shown and confirmed
first; an LXD someone already set up, or bad options, change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.engine.registry import probe_lxd
from tests.fake_lxc.fixture import FakeLxc

ROOT = Path(__file__).resolve().parent.parent


def labctl(fake: FakeLxc, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    env |= fake.env | {"LABCTL_LXC": str(fake.executable), "PYTHONPATH": str(ROOT)}
    env |= {"LABCTL_LXD": str(fake.daemon_executable), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "labctl", "lxd-init", *args],
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def inits(fake: FakeLxc) -> list[dict]:
    return [c for c in fake.calls() if c["argv"][:2] == ["lxd", "init"]]


@pytest.fixture
def fresh(fake_lxc: FakeLxc, monkeypatch: pytest.MonkeyPatch) -> FakeLxc:
    fake_lxc.make_uninitialised()
    for key, value in fake_lxc.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LABCTL_LXC", str(fake_lxc.executable))
    return fake_lxc


def test_a_fresh_lxd_gets_the_safe_preseed_and_becomes_usable(fresh: FakeLxc) -> None:
    assert not probe_lxd().usable
    result = labctl(fresh, "--subnet", "10.99.7.1/24", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    [call] = inits(fresh)
    assert call["argv"] == ["lxd", "init", "--preseed"] and call["rc"] == 0
    preseed = json.loads(call["stdin"])
    [network] = preseed["networks"]
    assert network["config"] == {
        "ipv4.address": "10.99.7.1/24",
        "ipv4.nat": "false",
        "ipv6.address": "none",
    }
    assert preseed["config"] == {"images.auto_update_interval": "0"}
    assert "auto" not in json.dumps(preseed).replace("auto_update", "")  # no automatic anything
    assert call["stdin"] in result.stdout  # what ran is what was shown
    assert "LXD initialised: root disk on default" in result.stdout
    probe = probe_lxd()
    assert probe.usable, probe.detail


def test_nat_is_only_there_when_asked_for(fresh: FakeLxc) -> None:
    assert labctl(fresh, "--subnet", "10.99.8.1/24", "--nat", "--yes").returncode == 0
    [call] = inits(fresh)
    assert json.loads(call["stdin"])["networks"][0]["config"]["ipv4.nat"] == "true"


def test_it_shows_the_preseed_and_a_no_changes_nothing(fresh: FakeLxc) -> None:
    result = labctl(fresh, "--subnet", "10.99.9.1/24", answer="n\n")
    assert result.returncode == 1
    assert '"ipv4.address": "10.99.9.1/24"' in result.stdout
    assert "Initialise LXD with it?" in result.stdout and "nothing was changed" in result.stdout
    assert inits(fresh) == []
    assert not probe_lxd().usable


def test_an_lxd_someone_set_up_is_refused_and_left_alone(fake_lxc: FakeLxc) -> None:
    result = labctl(fake_lxc, "--yes")
    assert result.returncode == 1
    assert "LXD 5.0.2 is already initialised (root disk on default" in result.stderr
    assert "nothing was changed" in result.stderr
    assert inits(fake_lxc) == []


@pytest.mark.parametrize(
    ("subnet", "words"),
    [
        ("auto", "--subnet auto: not an IPv4 address with a prefix"),
        ("8.8.8.1/24", "--subnet 8.8.8.1/24: not a private range"),
        ("10.99.7.0/24", "the bridge needs a host address, like 10.99.7.1/24"),
        ("10.0.0.1/8", "use a prefix between /16 and /28"),
    ],
)
def test_a_subnet_labctl_must_not_use_is_bad_input(fresh: FakeLxc, subnet: str, words: str) -> None:
    result = labctl(fresh, "--subnet", subnet, "--yes")
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert inits(fresh) == []


def test_a_subnet_this_machine_already_routes_is_refused() -> None:
    import ipaddress

    from labctl.engine.lxd.initialise import InitOptions, option_problems

    routes = [ipaddress.IPv4Network("10.99.0.0/16")]
    [problem] = option_problems(InitOptions(subnet="10.99.7.1/24"), routes, ["eth0"])
    assert "overlaps a network this machine already reaches (10.99.0.0/16)" in problem
    [taken] = option_problems(InitOptions(subnet="10.98.7.1/24", bridge="eth0"), routes, ["eth0"])
    assert "an interface of that name exists already" in taken
