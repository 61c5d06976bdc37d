"""The CLI conventions: -h, version/-V, global options after the command, readable
metavars, --json documents, `labctl init`, and a plan that tells the whole story."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperOption
from typer.testing import CliRunner

from labctl import __version__
from labctl.cli.main import app
from labctl.cli.templates import Starter
from labctl.config.load import load_lab
from tests.fake_multipass.fixture import FakeMultipass

HELLO = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}}
vms:
  - {name: app1, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 60s, cloud_init: 90s, serve: 1s}
"""


@pytest.fixture
def run(fake_multipass: FakeMultipass, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the default -f lab.yaml is the test's
    (tmp_path / "lab.yaml").write_text(HELLO)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        full = {
            **fake_multipass.env,
            "LABCTL_MULTIPASS": str(fake_multipass.executable),
            "LABCTL_HOSTS_FILE": str(hosts),
            "LABCTL_STATE_DIR": str(tmp_path / "state"),
            "COLUMNS": "100",
            **(env or {}),
        }
        return runner.invoke(app, list(args), env=full)

    return invoke


def _commands() -> list[list[str]]:
    names = [
        "validate", "schema", "render", "plan", "up", "status", "down", "drill", "reset", "logs",
        "shell", "exec", "doctor", "check", "init", "version",
    ]  # fmt: skip
    return [[n] for n in names] + [["snapshot", s] for s in ("save", "restore", "delete", "list")]


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_has_short_help_and_readable_metavars(run, command: list[str]) -> None:
    long = run(*command, "--help")
    short = run(*command, "-h")
    assert short.exit_code == 0 and short.output == long.output
    assert "Usage:" in short.output
    assert not re.search(r"<(bool|str|path|int|list\[str\]|int range)>", short.output)
    assert "--debug" in short.output and "--quiet" in short.output  # accepted after it too


def test_top_level_help_has_no_type_noise_and_lists_init_and_version(run) -> None:
    out = run("-h").output
    assert "<bool>" not in out and "<path>" not in out
    assert re.search(r"init\s+Write a starter lab.yaml", out)
    assert re.search(r"version\s+Print labctl's version", out)
    # a command's summary is one paragraph rewrapped, not the docstring's hard line breaks
    assert re.search(r"up\s+Launch the lab \(what is missing\), wire the load balancer", out)
    assert not re.search(r"wait until\s*│\s*\n│\s+the domain", out)


def test_metavars_name_what_goes_there(run) -> None:
    assert re.search(r"--student\s+-s\s+NAME", run("up", "-h").output)
    assert re.search(r"--max-parallel\s+N \[1<=x<=64\]", run("up", "-h").output)
    assert re.search(r"--file\s+-f\s+PATH", run("status", "-h").output)
    assert "[VM]..." in run("reset", "-h").output
    assert re.search(r"--mode\s+app\|vm\|freeze", run("drill", "-h").output)


def test_version_command_and_flags(run) -> None:
    for args in (["version"], ["--version"], ["-V"]):
        result = run(*args)
        assert result.exit_code == 0 and f"labctl {__version__}" in result.output, args


def test_global_options_work_before_and_after_the_command(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(HELLO.replace("name: hello", "name: other"))
    for args in (
        ["validate", "-f", str(other), "--debug", "--quiet"],
        ["--debug", "--quiet", "validate", "-f", str(other)],
        ["-f", str(other), "validate"],
        ["--file", str(other), "validate", "--no-progress"],
    ):
        result = run(*args)
        assert result.exit_code == 0 and "lab 'other'" in result.output, args
    # the command's own -f wins over one given before the command
    result = run("-f", str(other), "validate", "-f", str(tmp_path / "lab.yaml"))
    assert "lab 'hello'" in result.output
    assert "lab 'hello'" in run("validate").output  # and the default stays lab.yaml


def test_debug_after_the_command_logs_multipass_calls(fake_multipass, tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(HELLO)
    env = {
        **fake_multipass.environ(),
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "labctl", "status", "--debug"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1  # nothing is up
    assert re.search(r"labctl\S* running \S+multipass list --format json", result.stderr)


def test_quiet_hides_progress_lines_but_not_results(run, fake_multipass) -> None:
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    noisy = run("up", "--max-parallel", "2")  # CliRunner is no terminal: plain lines
    assert re.search(r"^\d\d:\d\d:\d\d … preflight  checking multipass$", noisy.output, re.M)
    hushed = run("up", "-q")
    assert hushed.exit_code == 1 and not re.search(r"^\d\d:\d\d:\d\d ", hushed.output, re.M)
    assert "✗ serve [lb]" in hushed.output  # errors still show


def test_validate_json_is_one_document_ok_or_every_problem(run, tmp_path: Path) -> None:
    good = run("validate", "--json")
    assert good.exit_code == 0
    doc = json.loads(good.output)
    assert doc["ok"] is True and doc["lab"] == "hello" and doc["vms"] == ["app1", "lb"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 1lab\ndomain: x..y\nvms:\n  - {name: a, roles: [web]}\n")
    result = run("validate", "-f", str(bad), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.output)
    assert doc["ok"] is False and len(doc["problems"]) >= 3
    assert doc["problems"][0].startswith(f"{bad}:1:1: name:")


def test_doctor_json_is_one_document(run) -> None:
    result = run("doctor", "--json")
    doc = json.loads(result.output)
    assert doc["lab"] == "hello" and isinstance(doc["ok"], bool)
    assert {"multipass", "daemon"} <= {check["name"] for check in doc["checks"]}
    assert result.exit_code == (0 if doc["ok"] else 1)


def test_plan_shows_each_stages_limit_and_the_baseline_cycle(run) -> None:
    text = run("plan", "--no-hosts").output
    assert re.search(r"launch hello-app1 .*\[at most 1 min\]", text)
    assert re.search(r"wait for cloud-init on hello-lb .*\[at most 1 min 30 s\]", text)
    assert re.search(r"waiting for http://hello.lab/ .*\[at most 1 s\]", text)
    assert re.search(r"stop hello-app1, hello-lb", text)
    assert "snapshot --name baseline --comment 'labctl lab hello' hello-app1" in text
    plan = json.loads(run("plan", "--json").output)
    limits = {step["what"]: step["max_seconds"] for step in plan["steps"]}
    assert limits["start hello-app1, hello-lb"] == 60
    orders = [s["order"] for s in plan["steps"] if s["what"].startswith("snapshot ")]
    assert orders == sorted(set(orders))  # snapshots run one after the other


def test_plan_says_which_vms_take_their_baseline_early(run) -> None:
    """One launch slot for two VMs: app1 (heavier, first) is done while lb waits for the slot."""
    plan = json.loads(run("plan", "--max-parallel", "1", "--json").output)
    [note] = [n for n in plan["notes"] if "wait for a slot" in n]
    assert "(likely app1)" in note
    stops = [s for s in plan["steps"] if s["argv"] and s["argv"][1:2] == ["stop"]]
    # app1's cycle runs while lb waits for the slot; lb's after the lab first serves
    assert [(s["argv"][2:], s["stage"]) for s in stops] == [
        (["hello-app1"], "baseline"),
        (["hello-lb"], "snapshot"),
    ]
    steps = [s for s in plan["steps"] if s["argv"] and s["argv"][1:2] == ["snapshot"]]
    assert [s["argv"][-1] for s in steps] == ["hello-app1", "hello-lb"]
    firsts = [s for s in plan["steps"] if s["order"] == 1]
    assert [s["argv"][1] for s in firsts] == ["version", "list"]
    assert all(s["parallel"] for s in firsts)  # asked at once


def test_plan_without_baseline_says_so(run, tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(HELLO + "snapshots: {baseline: false}\n")
    text = run("plan").output
    assert "baseline snapshot (" not in text
    assert "note: no baseline snapshot: snapshots.baseline is false" in text


@pytest.mark.parametrize("template", [t.value for t in Starter])
def test_init_writes_a_lab_that_validates_with_its_schema(run, tmp_path: Path, template) -> None:
    target = tmp_path / "new" / "lab.yaml"
    result = run("init", template, "-f", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./lab.schema.json"
    assert text.count("#") > 5  # commented for a newcomer
    schema = json.loads((target.parent / "lab.schema.json").read_text())
    assert schema["title"] == "labctl lab.yaml"
    assert set(yaml.safe_load(text)) <= set(schema["properties"])
    validated = run("validate", "-f", str(target))
    assert validated.exit_code == 0 and ": ok — " in validated.output
    assert load_lab(target).lab.is_class == (template in ("class", "cluster"))


def test_init_refuses_to_overwrite_without_force(run, tmp_path: Path) -> None:
    target = tmp_path / "lab.yaml"  # the fixture's lab exists already
    before = target.read_text()
    result = run("init", "seed", "-f", str(target))
    assert result.exit_code == 2 and "exists already; nothing was written" in result.output
    assert target.read_text() == before and not (tmp_path / "lab.schema.json").exists()
    forced = run("init", "seed", "-f", str(target), "--force")
    assert forced.exit_code == 0 and "name: alvin" in target.read_text()


def test_init_default_is_hello_in_the_current_directory(run, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "lab.yaml").unlink()
    monkeypatch.chdir(tmp_path)
    result = run("init")
    assert result.exit_code == 0 and "name: hello" in (tmp_path / "lab.yaml").read_text()
    assert "next: labctl validate   then: labctl plan   then: labctl up" in result.output


def test_readme_walkthrough_shows_what_init_and_validate_print(run, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    walkthrough = readme.split("## Your first lab in five minutes", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "lab.yaml").unlink()
    for command in (["init"], ["validate"]):
        result = run(*command)
        assert result.exit_code == 0
        block = walkthrough.split(f"$ labctl {command[0]}", 1)[1].split("\n$ ", 1)[0]
        shown = block.split("\n", 1)[1].rstrip("\n")  # what the README says comes out
        assert shown == result.output.rstrip("\n"), command
    assert "make test" in walkthrough and "port 80" in walkthrough


def _number_options() -> list[tuple[list[str], str, type, TyperOption]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], str, type, TyperOption]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])
        for param in command.params:
            if isinstance(param, TyperOption) and param.type_descriptor.annotation in (int, float):
                yield path, param.opts[-1], param.type_descriptor.annotation, param

    return list(walk(typer.main.get_command(app), []))


FLOAT_OPTIONS = [(path, opt) for path, opt, kind, _ in _number_options() if kind is float]


def test_the_cli_has_float_options_to_check() -> None:
    assert (["status"], "--interval") in FLOAT_OPTIONS  # the tests below check something


@pytest.mark.parametrize(("path", "option"), FLOAT_OPTIONS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "1e400", "infinity"])
def test_every_float_option_refuses_infinities_and_nan(
    run, fake_multipass: FakeMultipass, path: list[str], option: str, value: str
) -> None:
    result = run(*path, option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': " in result.output, result.output
    assert "is not a number of" in result.output  # the option's own range, in its own words
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert fake_multipass.calls() == []


def test_every_int_option_has_bounds_or_is_a_count() -> None:
    unbounded = [
        (path, opt)
        for path, opt, kind, param in _number_options()
        if kind is int and param.type_descriptor.parameter_info.max is None
    ]
    assert unbounded == [(["status"], "--count")]  # 0 = until Ctrl-C; a huge count is the same


def test_columns_that_is_not_a_width_is_ignored() -> None:
    # COLUMNS=abc made `labctl` itself crash at import with a ValueError traceback
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "abc"}
    for columns in ("abc", "-5", "1e9", "99999"):
        env["COLUMNS"] = columns
        proc = subprocess.run(
            [sys.executable, "-m", "labctl", "version"], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


LOADED = """
import sys
from labctl.cli.main import app
try:
    app(sys.argv[1:], prog_name="labctl")
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith("labctl"))))
"""


def _loaded(*args: str) -> set[str]:
    """The labctl modules a real `labctl ARGS` process has imported when it ends."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, env=env, check=True
    )
    return set(proc.stdout.split("\n")[-2].split())


def test_a_command_loads_only_what_it_needs() -> None:
    version = _loaded("version")
    assert "labctl.cli.commands.version" in version  # the command ran
    assert not {m for m in version if m.startswith(("labctl.ops", "labctl.config"))}, version
    assert not {m for m in version if m.startswith("labctl.cli.commands.")} - {
        "labctl.cli.commands.version"
    }
    status = _loaded("status", "--help")
    assert {"labctl.cli.commands.status", "labctl.ops.status"} <= status
    assert not {
        m for m in status if m.startswith(("labctl.ops.check", "labctl.cli.printers.grades"))
    }
    assert "labctl.cli.commands.check" not in status
    listing = _loaded("--help")  # the root's help lists every command's summary: all of them
    assert {
        f"labctl.cli.commands.{m}" for m in ("check", "up", "snapshot", "exec_command")
    } <= listing
