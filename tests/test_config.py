from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.config.load import dotted, json_schema, load_lab, parse_lab
from labctl.errors import ConfigError
from labctl.scalars import parse_duration, size_in_bytes

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
name: demo
domain: demo.lab
vms:
  - name: app1
    roles: [app]
  - name: lb
    roles: [lb]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_lab(text, "lab.yaml")
    return caught.value.problems


def test_repo_labs_load() -> None:
    seed = load_lab(ROOT / "lab.yaml").lab
    assert seed.name == "alvin" and seed.domain == "alvin.xyz"
    assert [vm.name for vm in seed.app_vms] == ["app1", "gateway"]
    assert seed.lb_vm.name == "gateway"
    assert seed.app.source.git == "https://github.com/dumbwaysdev/dumbflix-frontend"
    assert seed.app.env["NODE_OPTIONS"] == "--openssl-legacy-provider"
    hello = load_lab(ROOT / "examples/hello/lab.yaml").lab
    assert [vm.name for vm in hello.app_vms] == ["app1", "app2", "app3"]
    assert hello.lb_vm.name == "lb" and hello.app.source.builtin == "hello"


def test_minimal_lab_gets_defaults() -> None:
    lab = parse_lab(MINIMAL)
    assert lab.image == "24.04"
    assert (lab.defaults.cpus, lab.defaults.memory, lab.defaults.disk) == (1, "1G", "5G")
    assert lab.lb.method == "round_robin" and lab.lb.fail_timeout == 5.0
    assert lab.instance_name(lab.vms[0]) == "demo-app1"
    assert lab.manage_hosts is True


def test_several_mistakes_are_all_reported_with_lines() -> None:
    text = """\
name: 1lab
domain: "alvin..xyz"
defaults:
  memmory: 2G
  cpus: two
vms:
  - name: app1
    roles: [app, db]
lb:
  method: roundrobin
  fail_timeout: soon
"""
    found = problems(text)
    assert found == [
        "lab.yaml:1:1: name: '1lab' is not a valid name: use letters, digits and hyphens, start with a "
        "letter and end with a letter or digit (Multipass's instance-name rule)",
        "lab.yaml:2:1: domain: 'alvin..xyz' is not a valid domain name (like \"alvin.xyz\")",
        "lab.yaml:4:3: defaults.memmory: unknown key 'memmory' (did you mean 'memory'?)",
        "lab.yaml:5:3: defaults.cpus: expected a whole number, got 'two'",
        "lab.yaml:8:18: vms[0].roles[1]: Input should be 'app' or 'lb', got 'db'",
        "lab.yaml:10:3: lb.method: Input should be 'round_robin', 'least_conn' or 'ip_hash', got 'roundrobin'",
        'lab.yaml:11:3: lb.fail_timeout: expected a duration like "30s" or "5m", got \'soon\'',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "lab.yaml: file is empty"),
        ("- a\n- b\n", "lab.yaml:1:1: expected a mapping"),
        ("name: [unclosed\n", "lab.yaml:2:1: invalid YAML"),
        ("name: a\nname: b\ndomain: d.lab\nvms: []\n", "lab.yaml:2:1: name: duplicate key"),
        (MINIMAL + "colour: blue\n", "lab.yaml:8:1: colour: unknown key 'colour'"),
        (MINIMAL.replace("demo.lab", "demo lab"), "domain: 'demo lab' is not a valid domain name"),
        (MINIMAL.replace("demo.lab", "a;b.lab"), "domain: 'a;b.lab' is not a valid domain name"),
        (MINIMAL.replace("demo.lab", "10.0.0.1"), "domain: '10.0.0.1' is not a valid domain name"),
        (MINIMAL.replace("name: app1", "name: app_1"), "vms[0].name: 'app_1' is not a valid name"),
        (MINIMAL.replace("name: app1", "name: app-"), "vms[0].name: 'app-' is not a valid name"),
        (MINIMAL.replace("roles: [lb]", "roles: [app]"), "vms: no VM has role lb"),
        (
            MINIMAL.replace("roles: [app]", "roles: [lb]"),
            "vms[1].roles: a second lb VM; 'app1' already has role lb",
        ),
        (
            MINIMAL.replace("name: lb", "name: app1"),
            "vms[1].name: duplicate VM name 'app1' (also vms[0])",
        ),
        (
            MINIMAL.replace("roles: [app]", "roles: []"),
            "vms[0].roles: List should have at least 1 item",
        ),
        (
            MINIMAL + "defaults: {memory: 64M}\n",
            "defaults.memory: 64M is below Multipass's minimum of 128M",
        ),
        (
            MINIMAL + "defaults: {disk: lots}\n",
            'defaults.disk: expected a size like "2G" or "512M", got \'lots\'',
        ),
        (
            MINIMAL + "defaults: {cpus: 0}\n",
            "defaults.cpus: Input should be greater than or equal to 1",
        ),
        (MINIMAL + "lb: {port: 70000}\n", "lb.port: Input should be less than or equal to 65535"),
        (MINIMAL + "lb: {port: 3000}\napp: {port: 3000}\n", None),  # different VMs: fine
        (
            MINIMAL + "app: {source: {git: https://x/y, path: ./app}}\n",
            "app.source: give exactly one of builtin, git or path",
        ),
        (
            MINIMAL + "app: {source: {builtin: hello, ref: main}}\n",
            "app.source.ref: ref only applies to a git source",
        ),
        (
            MINIMAL + "app: {source: {git: --upload-pack=evil}}\n",
            "app.source.git: '--upload-pack=evil' is not a git URL",
        ),
        (
            MINIMAL + "app: {source: {git: https://x/y}}\n",
            "app.start: required for a git or path app",
        ),
        (
            MINIMAL + "app: {source: {git: https://x/y, ref: -x}, start: {serve: build}}\n",
            "app.source.ref: '-x' is not a valid git ref",
        ),
        (
            MINIMAL + "app: {start: {serve: ../../etc}}\n",
            "app.start.serve: '../../etc' must be a path inside the app's folder",
        ),
        (
            MINIMAL + "app: {start: {serve: b, script: s.js}}\n",
            "app.start: give exactly one of serve, script or command",
        ),
        (MINIMAL + "app: {env: {'BAD NAME': x}}\n", "is not a valid environment variable name"),
        (MINIMAL + "app: {name: 'my app'}\n", "app.name: 'my app' is not a valid pm2 process name"),
        (
            MINIMAL + "app: {env: {A: b}, secret_env: [B]}\n",
            "app.secret_env[0]: 'B' is not a key of app.env",
        ),
        (
            MINIMAL + "app: {node_version: 16}\n",
            "app.node_version: Input should be 18, 20, 22 or 24",
        ),
        (MINIMAL + "waits: {serve: -5}\n", "waits.serve: duration must be between 1s and 7 days"),
        (
            MINIMAL + "image: 'ubuntu; rm -rf /'\n",
            "image: 'ubuntu; rm -rf /' is not an image: a Multipass image",
        ),
        (MINIMAL + "aliases: [demo.lab]\n", "aliases[0]: 'demo.lab' is listed twice"),
        (MINIMAL.replace("name: demo", "name: " + "d" * 60), "is longer than 63 characters"),
        (
            MINIMAL + "lb: {connect_timeout: 10s, read_timeout: 2s}\n",
            "lb.read_timeout: read_timeout (2 s) should not be shorter than connect_timeout (10 s)",
        ),
    ],
)
def test_bad_lab_is_reported(text: str, expected: str | None) -> None:
    if expected is None:
        assert parse_lab(text).lb.port == 3000
        return
    found = problems(text)
    assert any(expected in line for line in found), found
    assert all(line.startswith("lab.yaml") for line in found)


def test_path_source_must_exist(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(
        MINIMAL + "app: {source: {path: ./nope}, start: {script: s.js}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_lab(tmp_path / "lab.yaml")
    assert "app.source.path: './nope' is not a directory" in str(caught.value)
    (tmp_path / "nope").mkdir()
    lab_file = load_lab(tmp_path / "lab.yaml")
    assert lab_file.app_source_dir() == (tmp_path / "nope").resolve()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("dir", "is a directory"),
        ("missing", "no such file"),
        ("binary", "not UTF-8 text"),
        ("nul", "contains NUL bytes"),
    ],
)
def test_unreadable_files(tmp_path: Path, setup: str, expected: str) -> None:
    target = tmp_path / "lab.yaml"
    if setup == "dir":
        target.mkdir()
    elif setup == "binary":
        target.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    elif setup == "nul":
        target.write_bytes(b"name: a\x00\n")
    with pytest.raises(ConfigError) as caught:
        load_lab(target)
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_sizes_and_durations() -> None:
    assert size_in_bytes("1G") == 1024**3
    assert size_in_bytes("1.5G") == int(1.5 * 1024**3)
    assert size_in_bytes("512MiB") == 512 * 1024**2
    assert size_in_bytes("2048") == 2048
    assert parse_duration("1m30s") == 90 and parse_duration(5) == 5 and parse_duration("2h") == 7200
    with pytest.raises(ValueError, match="duration"):
        parse_duration("5 minutes")


def test_dotted_paths() -> None:
    assert dotted(("vms", 1, "name")) == "vms[1].name"
    assert dotted(()) == ""


def test_json_schema_describes_the_model() -> None:
    schema = json.loads(json_schema())
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"name", "domain", "vms"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert "lb" in schema["properties"] and "app" in schema["properties"]


# --- YAML 1.1 scalars: read as written or refused at their field ---------------------------------


def test_keys_are_the_text_written_not_yaml_booleans_or_numbers() -> None:
    # YAML 1.1 reads `yes`, `on` and `No` as booleans: every one of these keys was "True"/"False",
    # two of them collapsed into one env variable.
    lab = parse_lab(MINIMAL + 'app: {env: {yes: "1", on: "2", No: "3", null: "4"}}\n')
    assert lab.app.env == {"yes": "1", "on": "2", "No": "3", "null": "4"}


def test_every_refused_scalar_is_reported_once_with_its_field() -> None:
    found = problems(
        MINIMAL + "app: {port: 03000}\nlb: {port: 0x50}\nwaits: {serve: !!float soon}\n"
        "defaults: {cpus: 1_0}\n"
    )
    assert found == [
        "lab.yaml:8:7: app.port: 03000 is an octal number in YAML 1.1 (1536); quote it or write "
        "it in decimal",
        "lab.yaml:9:6: lb.port: 0x50 is a hexadecimal number in YAML 1.1 (80); quote it or write "
        "it in decimal",
        "lab.yaml:10:9: waits.serve: !!float 'soon': not a number",
        "lab.yaml:11:12: defaults.cpus: 1_0 is a number with digit separators in YAML 1.1 (10); "
        "quote it or write it in decimal",
    ]


def test_a_refused_scalar_behind_an_alias_is_reported_at_each_use_not_at_its_anchor() -> None:
    # PyYAML leaves a failed node marked "being built": the second use said "recursive node"
    found = problems(MINIMAL + "x-port: &p !!int eighty\napp: {port: *p}\nlb: {port: *p}\n")
    assert found == [
        "lab.yaml:9:7: app.port: !!int 'eighty': not a whole number",
        "lab.yaml:10:6: lb.port: !!int 'eighty': not a whole number",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3000", None),
        ("+3000", None),
        ("'03000'", "expected a whole number, got '03000'"),  # quoted: text, refused as a port
        ("-0b1", "-0b1 is a binary number in YAML 1.1 (-1)"),
        ("!!int 0o17", "0o17 is a number not written in decimal in YAML 1.1 (15)"),
        ("190:20:30", "190:20:30 is a base-60 number in YAML 1.1 (685230)"),
        ("!!timestamp 2024-01-01", "expected a whole number, got 2024-01-01"),
        ("2024-01-01 25:00:00", "is written like a date or time, but is not one"),
    ],
)
def test_number_spellings(value: str, expected: str | None) -> None:
    text = MINIMAL + f"app: {{port: {value}}}\n"
    if expected is None:
        assert parse_lab(text).app.port == 3000
        return
    (line,) = problems(text)
    assert line.startswith("lab.yaml:8:7: app.port: ") and expected in line, line


def test_sizes_and_durations_never_overflow() -> None:
    # floats of these are infinite: int(inf) and float(huge int) raised past the validators
    assert size_in_bytes("9" * 400 + ".5G") > 1024**5
    assert size_in_bytes("1.5G") == 1024**3 + 1024**3 // 2
    for huge in ("9" * 400 + "h", "9" * 400 + "m", 10**400, -(10**400), float("nan")):
        with pytest.raises(ValueError, match="between 1s and 7 days"):
            parse_duration(huge)


def test_checks_budget_takes_a_hundred_default_checks_but_not_hours() -> None:
    many = "".join(f"  - {{name: c{i}, http: {{}}}}\n" for i in range(100))
    assert len(parse_lab(MINIMAL + "checks:\n" + many).checks) == 100  # 100 x 10 s
    slow = "checks:\n  - {name: slow, http: {}, timeout: 10m, retry: 2, retry_interval: 1m}\n"
    (line,) = problems(MINIMAL + slow)
    assert line.startswith("lab.yaml:8:1: checks: the checks can take 32 min in all"), line


@pytest.mark.parametrize(
    "start", ["{script: ./server.js}", "{script: src/main.js}", "{serve: .}", "{serve: dist/}"]
)
def test_start_paths_that_name_what_they_should_are_accepted(start: str) -> None:
    text = MINIMAL + f"app: {{source: {{git: https://example.com/a.git}}, start: {start}}}\n"
    assert parse_lab(text).app.start is not None
