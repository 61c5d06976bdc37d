"""Bad input never gets past validation: `validate` and `up` both exit 2 with the file, line,
column and field of the problem, no traceback, and not a single multipass call.

The corpus is `tests/fixtures/bad_labs/` (one file per way a lab.yaml can be wrong, named for it).
Each file's first line is `# expect:LINE:COL: field.path: message…` (or `# expect: message` for a
whole-file problem): the first problem labctl reports, checked as `FILE:` + that text. Cases that
cannot carry a comment (empty, binary, non-UTF-8, huge, a directory, a missing file) are built in
tmp_path below. Hostile values that are *legal* (env values) must render inert: the last tests
parse `labctl render` output and check that the structure is the one a plain lab gets.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from labctl.cli.main import app
from labctl.render.userdata import APP_ENV_PATH, ECOSYSTEM_PATH
from tests.fake_multipass.fixture import FakeMultipass

CORPUS = Path(__file__).resolve().parent / "fixtures" / "bad_labs"
BAD_LABS = sorted(CORPUS.glob("*.yaml"))
EXPECT = "# expect:"

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(fake_multipass: FakeMultipass, tmp_path: Path) -> Invoke:
    """labctl in-process against the subprocess fake multipass, with its own hosts and state."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    runner = CliRunner()

    def run(*args: str) -> Result:
        env = {
            **fake_multipass.env,
            "LABCTL_MULTIPASS": str(fake_multipass.executable),
            "LABCTL_HOSTS_FILE": str(hosts),
            "LABCTL_STATE_DIR": str(tmp_path / "state"),
        }
        return runner.invoke(app, list(args), env=env)

    return run


def expected_first_problem(path: Path) -> str:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith(EXPECT), f"{path.name}: first line must be '{EXPECT}...'"
    return f"{path}:{first[len(EXPECT) :]}"  # ":LINE:COL: field: ..." or " whole-file problem"


def assert_refused(result: Result, path: Path, fake: FakeMultipass) -> list[str]:
    """Exit 2, every output line a problem of this file, no traceback, no multipass call."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "no message at all"
    assert all(line.startswith(f"{path}:") for line in lines), output
    assert fake.calls() == [], "bad input reached multipass"
    return lines


def test_corpus_is_big_and_varied() -> None:
    assert len(BAD_LABS) >= 40
    kinds = {path.name.split("_", 1)[0] for path in BAD_LABS}
    assert {"yaml", "type", "unknown", "hostile", "vm", "git", "duration", "port"} <= kinds


@pytest.mark.parametrize("command", ["validate", "up"])
@pytest.mark.parametrize("path", BAD_LABS, ids=[p.stem for p in BAD_LABS])
def test_bad_lab_is_refused_with_file_line_and_field(
    invoke: Invoke, fake_multipass: FakeMultipass, path: Path, command: str
) -> None:
    started = time.monotonic()
    result = invoke(command, "-f", str(path))
    lines = assert_refused(result, path, fake_multipass)
    assert lines[0].startswith(expected_first_problem(path)), lines[0]
    assert time.monotonic() - started < 5, "a bad lab.yaml must be refused at once"


def test_huge_values_come_back_short(invoke: Invoke, fake_multipass: FakeMultipass) -> None:
    path = CORPUS / "huge_env_value.yaml"
    lines = assert_refused(invoke("validate", "-f", str(path)), path, fake_multipass)
    assert max(map(len, lines)) < 400


# --- whole-file problems, built in tmp_path -----------------------------------------------------

LAB = "name: demo\ndomain: demo.lab\nvms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"


def _write(data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "lab.yaml"
        path.write_bytes(data)
        return path

    return make


def _directory(tmp: Path) -> Path:
    path = tmp / "lab.yaml"
    path.mkdir()
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "no-such-lab.yaml"


SPECIAL: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty_file": (_write(b""), r": file is empty; see examples/"),
    "whitespace_only": (_write(b"\n   \n\n"), r": file is empty; see examples/"),
    "lone_document_marker": (_write(b"---\n"), r": file is empty; see examples/"),
    "binary_file": (
        _write(bytes(range(256)) * 4),
        r": not UTF-8 text \(byte \d+\); is this a binary file\?",
    ),
    "binary_utf8_with_nul": (
        _write(b"name: demo\x00\x01\x02\n"),
        r": contains NUL bytes; is this a binary file\?",
    ),
    "non_utf8_latin1": (_write("name: démo\n".encode("latin-1")), r": not UTF-8 text \(byte 7\)"),
    "utf16_with_bom": (_write(LAB.encode("utf-16")), r": not UTF-8 text \(byte 0\)"),
    "directory_not_file": (_directory, r": is a directory, expected a lab.yaml file"),
    "file_does_not_exist": (_missing, r": no such file \(use -f PATH"),
    "ten_megabyte_file": (
        _write(LAB.encode() + b"# " + b"x" * 10_000_000 + b"\n"),
        r": file is 100000\d\d bytes; a lab.yaml over 256 KiB is not a lab",
    ),
    "one_megabyte_string": (
        _write(LAB.encode() + b"app: {env: {BLOB: " + b"y" * 1_000_000 + b"}}\n"),
        r": file is 10001\d\d bytes; a lab.yaml over 256 KiB",
    ),
    "hundred_thousand_vms": (
        _write(
            b"name: demo\ndomain: demo.lab\nvms:\n"
            + b"".join(b"  - {name: app%d, roles: [app]}\n" % i for i in range(100_000))
        ),
        r": file is \d{7} bytes; a lab.yaml over 256 KiB",
    ),
    "hundred_thousand_vms_by_alias": (
        _write(
            b"name: demo\ndomain: demo.lab\nvms: [&v {name: app1, roles: [app]}"
            + b", *v" * 60_000
            + b"]\n"
        ),
        r":3:6: vms: expands to more than 20000 values through anchors and aliases",
    ),
}


@pytest.mark.parametrize("command", ["validate", "up"])
@pytest.mark.parametrize("case", sorted(SPECIAL))
def test_whole_file_problem_is_refused(
    invoke: Invoke, fake_multipass: FakeMultipass, tmp_path: Path, case: str, command: str
) -> None:
    make, expected = SPECIAL[case]
    path = make(tmp_path)
    started = time.monotonic()
    result = invoke(command, "-f", str(path))
    lines = assert_refused(result, path, fake_multipass)
    assert re.match(re.escape(str(path)) + expected, lines[0]), lines[0]
    assert len(result.output) < 1000
    assert time.monotonic() - started < 5


# --- legal but hostile values render inert --------------------------------------------------------

HOSTILE_VALUES = {
    "QUOTES": "it's \"quoted\" 'twice'",
    "SUBST": "$(touch /tmp/labctl-pwned) `touch /tmp/labctl-pwned` ${HOME}",
    "SEMI": "a; touch /tmp/labctl-pwned; echo",
    "NEWLINES": "line1\nline2\n\n",
    "YAML_BREAKOUT": "x\nruncmd:\n  - [sh, -c, 'touch /tmp/labctl-pwned']\nwrite_files: []",
    "DOC_BREAKOUT": "x\n---\n#cloud-config\nusers: []\n",
    "JSON_BREAKOUT": '"}]};require("child_process").execSync("touch /tmp/labctl-pwned");//',
    "BACKSLASHES": "C:\\path\\n\\x00-not-nul \\'",
}


def _hostile_lab(tmp_path: Path, env: dict[str, str]) -> Path:
    data: dict[str, Any] = {
        "name": "demo",
        "domain": "demo.lab",
        "app": {"name": "hello", "source": {"builtin": "hello"}, "env": env},
        "vms": [{"name": "app1", "roles": ["app"]}, {"name": "lb", "roles": ["lb"]}],
    }
    path = tmp_path / f"lab-{len(env)}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _contents(doc: dict[str, Any]) -> dict[str, str]:
    return {entry["path"]: entry["content"] for entry in doc["write_files"]}


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def test_hostile_env_values_keep_the_user_data_structure(
    invoke: Invoke, fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    plain_path = _hostile_lab(tmp_path, {"PLAIN": "ok"})
    hostile_path = _hostile_lab(tmp_path, HOSTILE_VALUES)
    for vm in ("app1", "lb"):
        plain = invoke("render", vm, "-f", str(plain_path))
        hostile = invoke("render", vm, "-f", str(hostile_path))
        assert plain.exit_code == hostile.exit_code == 0, hostile.output
        assert hostile.output.startswith("#cloud-config\n")
        a, b = yaml.safe_load(plain.output), yaml.safe_load(hostile.output)
        assert list(a) == list(b)  # same top-level keys, same order
        assert a["runcmd"] == b["runcmd"]
        assert a["packages"] == b["packages"]
        assert [f["path"] for f in a["write_files"]] == [f["path"] for f in b["write_files"]]
        assert [f["permissions"] for f in a["write_files"]] == [
            f["permissions"] for f in b["write_files"]
        ]
        files = _contents(b)
        carriers = {APP_ENV_PATH, ECOSYSTEM_PATH}
        for name, value in HOSTILE_VALUES.items():
            # Anywhere else in the document, the value (or a line of it) would be live.
            outside = [
                s
                for s in _strings({k: v for k, v in b.items() if k != "write_files"})
                + [c for p, c in files.items() if p not in carriers]
                if value in s
            ]
            assert not outside, f"{name} leaked out of the env files"
        assert "labctl-pwned" not in "\n".join(
            str(v) for k, v in b.items() if k not in ("write_files",)
        )
    assert fake_multipass.calls() == []


def test_hostile_env_values_read_back_exactly_from_the_env_file(
    invoke: Invoke, tmp_path: Path
) -> None:
    """The env file is sourced by bash on the VM (provision-app.sh); it must yield the bytes."""
    result = invoke("render", "app1", "-f", str(_hostile_lab(tmp_path, HOSTILE_VALUES)))
    env_file = tmp_path / "app.env"
    env_file.write_text(_contents(yaml.safe_load(result.output))[APP_ENV_PATH])
    marker = tmp_path / "labctl-pwned"
    for name, value in HOSTILE_VALUES.items():
        proc = subprocess.run(
            [
                "bash",
                "-c",
                f'set -eu; set -a; . "$1"; set +a; printf %s "${name}"',
                "-",
                str(env_file),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )
        assert proc.stdout == value, name
    assert not marker.exists() and not Path("/tmp/labctl-pwned").exists()


def test_path_app_too_big_for_user_data_is_refused_before_multipass(
    invoke: Invoke, fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "blob.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # incompressible
    path = tmp_path / "lab.yaml"
    path.write_text(LAB + "app: {source: {path: ./app}, start: {script: blob.bin}}\n")
    result = invoke("up", "-f", str(path))
    assert result.exit_code == 2, result.output
    assert (
        "app.source.path:" in result.output
        and "does not fit in cloud-init user-data" in result.output
    )
    assert "Traceback" not in result.output
    assert fake_multipass.calls() == []


def test_domain_already_in_the_hosts_file_is_refused_by_validate_and_up(
    invoke: Invoke, fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    """Hostile input: a name the hosts file has outside labctl's blocks is a system name."""
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n10.9.9.9 intranet.corp\n")
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.replace("demo.lab", "intranet.corp"))
    for command in ("validate", "up"):
        lines = assert_refused(invoke(command, "-f", str(path)), path, fake_multipass)
        assert lines == [
            f"{path}:2:1: domain: 'intranet.corp' is already in the hosts file outside labctl's "
            "entries ('10.9.9.9 intranet.corp'); labctl will not point a system name at a lab VM: "
            "pick another name or remove that line yourself"
        ]
    assert invoke("up", "--no-hosts", "-f", str(path)).exit_code != 2  # labctl writes no entry
