"""`labctl init`'s starters for each engine: every one loads with the real loader, the LXD ones
say what each LXD key does, and without `--engine` the starter is for the engine `labctl up`
would take on this machine (Multipass installed, else a usable LXD, else Multipass's with how to
get either). The machines are the fakes: a `multipass` on PATH, the fake `lxc`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.cli.templates import ENGINES_OF, Starter, StarterEngine, starter
from labctl.config.load import load_lab
from labctl.engine.registry import ENGINES, choose_engine
from labctl.errors import EngineNotFoundError
from labctl.model import LXD_ONLY_KEYS
from labctl.scalars import size_in_bytes
from tests.fake_lxc.fixture import FakeLxc

PAIRS = [(t, e) for t, engines in ENGINES_OF.items() for e in engines]


def init(*args: str):
    return CliRunner().invoke(app, ["init", *args], env={"COLUMNS": "100"})


def test_a_starter_exists_for_every_engine_labctl_has() -> None:
    assert {e.value for e in StarterEngine} == set(ENGINES)
    for template in Starter:
        assert template is Starter.cluster or set(ENGINES_OF[template]) == set(StarterEngine)
    assert ENGINES_OF[Starter.cluster] == (StarterEngine.lxd,)


@pytest.mark.parametrize(("template", "engine"), PAIRS, ids=lambda v: str(v))
def test_every_starter_for_every_engine_validates(tmp_path: Path, template, engine) -> None:
    target = tmp_path / f"{template}-{engine}" / "lab.yaml"
    written = init(template, "--engine", engine, "-f", str(target))
    assert written.exit_code == 0, written.output
    assert f"({template} lab, engine {engine})" in written.output
    text = target.read_text()
    assert text == starter(template, engine)
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./lab.schema.json"
    lab = load_lab(target).lab  # the real loader: every field and cross-check
    assert lab.engine is not None and lab.engine.name == engine
    assert lab.is_class == (template in (Starter.class_, Starter.cluster))
    validated = CliRunner().invoke(app, ["validate", "-f", str(target)])
    assert validated.exit_code == 0 and ": ok — " in validated.output, validated.output


@pytest.mark.parametrize("template", [t for t, e in PAIRS if e is StarterEngine.lxd])
def test_the_lxd_starters_set_and_explain_every_lxd_key(template: Starter) -> None:
    text = starter(template, StarterEngine.lxd)
    for key in LXD_ONLY_KEYS:
        assert re.search(rf"^  {key}: \S.*# \w", text, re.MULTILINE), f"{key} without a comment"
    assert "type: container" in text and "vm: a VM" in text
    assert "cli: lxc" in text and "incus" in text
    assert "labctl lxd-init --nat" in text  # the starters' instances install packages


@pytest.mark.parametrize("template", [Starter.hello, Starter.seed, Starter.class_])
def test_lxd_sizes_suit_containers(tmp_path: Path, template: Starter) -> None:
    def defaults(engine: StarterEngine) -> tuple[int, int]:
        path = tmp_path / f"{engine}.yaml"
        path.write_text(starter(template, engine))
        sizes = load_lab(path).lab.defaults
        return size_in_bytes(sizes.memory), size_in_bytes(sizes.disk)

    in_containers, in_vms = defaults(StarterEngine.lxd), defaults(StarterEngine.multipass)
    assert in_containers[0] < in_vms[0] and in_containers[1] < in_vms[1]


def test_the_class_starters_hosts_example_validates_once_uncommented(tmp_path: Path) -> None:
    """A commented example that the loader refuses would fail the instructor who uses it."""
    text = starter(Starter.class_, StarterEngine.lxd)
    uncommented = re.sub(r"^# (hosts:|  - \{)", r"\1", text, flags=re.MULTILINE)
    assert uncommented != text and "\n# hosts:" not in uncommented
    path = tmp_path / "lab.yaml"
    path.write_text(uncommented)
    hosts = load_lab(path).lab.hosts
    assert [(h.name, h.member) for h in hosts] == [("server1", "server1"), ("server2", "server2")]


def test_no_starter_offers_the_retired_remote_multipass_daemons() -> None:
    for template, engine in PAIRS:
        assert "address:" not in starter(template, engine), (template, engine)
    assert "labctl init --engine lxd class" in starter(Starter.class_, StarterEngine.multipass)


def test_the_cluster_starter_places_students_on_members(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(starter(Starter.cluster, StarterEngine.lxd))
    lab = load_lab(path).lab
    assert lab.engine is not None and lab.engine.lxd_remote == "classroom"
    assert lab.hosts == []  # labctl finds the members in the cluster
    uncommented = re.sub(r"^# (hosts:|  - \{)", r"\1", path.read_text(), flags=re.MULTILINE)
    path.write_text(uncommented)
    hosts = load_lab(path).lab.hosts  # the example that picks members validates once uncommented
    assert [h.member for h in hosts] == ["server1", "server2"]
    assert all(h.remote is None and h.memory for h in hosts)  # on the engine's remote


# -- the default engine: what `labctl up` would take here ---------------------------------------


def _up_would_take() -> str | None:
    try:
        return choose_engine()[0].capabilities.name
    except EngineNotFoundError:
        return None


def _install_multipass(bin_dir: Path) -> None:
    """A `multipass` on the PATH that the engine choice finds (it only looks for the command)."""
    (bin_dir / "multipass").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "multipass").chmod(0o755)


def _written_engine(path: Path) -> str:
    lab = load_lab(path).lab
    assert lab.engine is not None
    return lab.engine.name


def test_with_multipass_installed_init_writes_the_multipass_starter(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_multipass(bare_path)
    monkeypatch.chdir(bare_path)
    result = init()
    assert result.exit_code == 0, result.output
    assert _written_engine(bare_path / "lab.yaml") == "multipass" == _up_would_take()
    assert "engine multipass: Multipass is installed here (or: labctl init --engine lxd)" in (
        result.output
    )


def test_without_multipass_a_usable_lxd_gets_the_lxd_starter(
    lxd_here: FakeLxc, bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bare_path)
    result = init("class")
    assert result.exit_code == 0, result.output
    assert _written_engine(bare_path / "lab.yaml") == "lxd" == _up_would_take()
    assert "engine lxd: Multipass is not installed here and LXD is usable" in result.output
    assert "(or: labctl init --engine multipass)" in result.output


def test_an_lxd_nobody_initialised_gets_the_multipass_starter_and_the_fix(
    lxd_here: FakeLxc, bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lxd_here.make_uninitialised()
    monkeypatch.chdir(bare_path)
    result = init()
    assert result.exit_code == 0, result.output
    assert _written_engine(bare_path / "lab.yaml") == "multipass" and _up_would_take() is None
    assert "engine multipass: no engine can run it here yet: Multipass is not installed" in (
        result.output
    )
    assert "`labctl lxd-init`" in result.output and "sudo snap install multipass" in result.output


def test_an_lxd_that_does_not_answer_is_named_with_both_fixes(
    lxd_here: FakeLxc, bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lxd_here.configure(daemon_unreachable=True)
    monkeypatch.chdir(bare_path)
    result = init()
    assert result.exit_code == 0 and _up_would_take() is None
    assert "LXD is not usable: `" in result.output and "LXD does not answer" in result.output
    hint = result.output.split("\n")[2]
    assert hint.endswith("checks every part. Or install Multipass: sudo snap install multipass.")


def test_with_neither_engine_init_says_how_to_get_either(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bare_path)
    result = init("seed")
    assert result.exit_code == 0, result.output
    assert _written_engine(bare_path / "lab.yaml") == "multipass" and _up_would_take() is None
    assert "neither is installed here" in result.output
    assert "sudo snap install multipass" in result.output
    assert "sudo apt-get install lxd" in result.output


def test_a_cluster_is_lxd_even_where_multipass_is_installed(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_multipass(bare_path)
    monkeypatch.chdir(bare_path)
    refused = init("cluster", "--engine", "multipass")
    assert refused.exit_code == 2
    assert "the cluster starter is for lxd only; nothing was written" in refused.output
    assert not (bare_path / "lab.yaml").exists() and not (bare_path / "lab.schema.json").exists()
    written = init("cluster")
    assert written.exit_code == 0 and _written_engine(bare_path / "lab.yaml") == "lxd"


# -- the LXD starters run: `plan` records `up` against the fake LXD ------------------------------


@pytest.mark.parametrize("template", [t for t, e in PAIRS if e is StarterEngine.lxd])
def test_every_lxd_starter_plans_on_lxd(
    lxd_here: FakeLxc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Starter
) -> None:
    """Validation alone would miss an engine block LXD cannot take (a profile, a project, a
    remote or a member labctl then fails to reach): plan asks the (fake) LXD for real."""
    lxd_here.add_image("ubuntu:24.04")
    lxd_here.add_remote("classroom", address="127.0.1.1:8443", members=["server1", "server2"])
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    monkeypatch.chdir(lab_dir)
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LABCTL_HOSTS_FILE", str(tmp_path / "hosts"))
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    assert init(template, "--engine", "lxd").exit_code == 0
    student = ["--student", "alice"] if template in (Starter.class_, Starter.cluster) else []
    plan = CliRunner().invoke(app, ["plan", "--json", *student], env={"COLUMNS": "100"})
    assert plan.exit_code == 0, plan.output
    steps = json.loads(plan.output)["steps"]
    launches = [s["argv"] for s in steps if s["argv"] and s["argv"][1] == "launch"]
    assert len(launches) == (2 if template is Starter.seed else 3)
    for argv in launches:
        assert argv[2] == "ubuntu:24.04" and argv[4:6] == ["--profile", "default"]
        assert argv[-2:] == ["--project", "default"]
        if template is Starter.cluster:
            remote = "classroom:"
            assert argv[argv.index("--target") + 1] in ("server1", "server2")
        else:
            remote = "local:"
            assert "--target" not in argv
        assert argv[3].startswith(remote)
