"""Per-student LXD projects and `labctl access`, through the CLI against the fake `lxc` made a
3-member cluster: `up` creates each student's restricted project (once), launches the student's
lab in it, and `plan` shows that creation; status and down act on each student's project;
`access` prints a command whose token lets a client into that student's project only, `--revoke`
takes it back; and every refusal is one line that says what to do. The token never appears
outside stdout.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from labctl.config.load import parse_lab
from labctl.errors import ConfigError
from labctl.render.userdata import LB_APPLY_COMMAND, VM_STATUS_COMMAND
from tests.fake_lxc.class_lb import STATUS, ClassLb, class_cli
from tests.fake_lxc.fixture import FakeLxc
from tests.test_classroom_cluster import MEMBERS

pytestmark = pytest.mark.slow

STUDENTS = ["ann", "bob"]
LAB = """\
name: cls
engine: {{name: lxd, project: "cls-{{student}}"}}
image: labctl-test
class:
  students: [{students}]
  domain: "{{student}}.class.lab"
app: {{name: hello, source: {{builtin: hello}}}}
defaults: {{memory: 256M, disk: 1G}}
vms:
  - {{name: app, roles: [app]}}
  - {{name: lb, roles: [lb]}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 10s}}
manage_hosts: false
snapshots: {{baseline: false}}
hosts:
  - {{name: m1, member: m1}}
  - {{name: m2, member: m2}}
"""


@pytest.fixture
def lb(fake_lxc: FakeLxc) -> Iterator[ClassLb]:
    fake_lxc.make_cluster(MEMBERS)
    # every student's instances are in the student's own project
    stand_in = ClassLb(
        lambda: [
            {
                k: v
                for s in [*STUDENTS, "cat"]
                for k, v in fake_lxc.instances(project=f"cls-{s}").items()
            }
        ]
    )
    fake_lxc.on_exec("*", LB_APPLY_COMMAND, stdout="applied\n")
    fake_lxc.on_exec("*", VM_STATUS_COMMAND, stdout=json.dumps(STATUS))
    yield stand_in
    stand_in.close()


@pytest.fixture
def lab(tmp_path: Path, lb: ClassLb) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(students=", ".join(STUDENTS), port=lb.port))
    return path


@pytest.fixture
def run(fake_lxc: FakeLxc, tmp_path: Path) -> Callable[..., Result]:
    return class_cli(fake_lxc, tmp_path)


def project_calls(fake: FakeLxc) -> list[list[str]]:
    return [c["argv"] for c in fake.calls() if c["argv"][:1] in (["project"], ["profile"])]


def test_up_creates_each_students_restricted_project_once_and_launches_in_it(
    lab: Path, run, fake_lxc: FakeLxc
) -> None:
    result = run(lab, "up")
    assert result.exit_code == 0, result.output
    for student in STUDENTS:
        mine = fake_lxc.instances(project=f"cls-{student}")
        assert sorted(mine) == [f"cls-{student}-app", f"cls-{student}-lb"]
    assert fake_lxc.instances(project="default") == {}
    created = [argv for argv in project_calls(fake_lxc) if argv[:2] == ["project", "create"]]
    assert sorted(argv[2] for argv in created) == ["local:cls-ann", "local:cls-bob"]
    for argv in created:
        settings = {argv[i + 1] for i, arg in enumerate(argv) if arg == "--config"}
        assert {
            "features.images=false",
            "features.profiles=true",
            "restricted=true",
            "restricted.snapshots=allow",
            "restricted.devices.nic=allow",
        } <= settings
    # the student project's default profile got the default project's root disk and NIC
    devices = [argv for argv in project_calls(fake_lxc) if argv[:3] == ["profile", "device", "add"]]
    assert sorted((argv[-1], argv[4], argv[5]) for argv in devices) == [
        ("cls-ann", "eth0", "nic"),
        ("cls-ann", "root", "disk"),
        ("cls-bob", "eth0", "nic"),
        ("cls-bob", "root", "disk"),
    ]
    launches = [c["argv"] for c in fake_lxc.calls("launch")]
    assert all(
        argv[argv.index("--project") + 1] == f"cls-{argv[2].split('-')[1]}" for argv in launches
    )

    before = len(project_calls(fake_lxc))
    again = run(lab, "up")
    assert again.exit_code == 0, again.output
    assert len(project_calls(fake_lxc)) == before  # the projects exist: nothing created again
    assert len(fake_lxc.calls("launch")) == 4


def test_plan_shows_the_project_a_new_student_gets_and_creates_nothing(
    lab: Path, run, fake_lxc: FakeLxc
) -> None:
    result = run(lab, "plan", "--student", "ann", "--json")
    assert result.exit_code == 0, result.output
    argvs = [step["argv"] for step in json.loads(result.stdout)["steps"] if step["argv"]]
    assert any(argv[1:4] == ["project", "create", "local:cls-ann"] for argv in argvs), argvs
    assert any(argv[1:4] == ["profile", "device", "add"] for argv in argvs), argvs
    assert project_calls(fake_lxc) == []  # plan only recorded them


def test_status_and_down_work_in_each_students_project(lab: Path, run, fake_lxc: FakeLxc) -> None:
    assert run(lab, "up").exit_code == 0
    status = run(lab, "status", "--json")
    assert status.exit_code == 0, status.output
    assert all(row["healthy"] for row in json.loads(status.stdout)["students"])
    down = run(lab, "down")
    assert down.exit_code == 0, down.output
    for student in STUDENTS:
        assert fake_lxc.instances(project=f"cls-{student}") == {}


def student_remote(fake: FakeLxc, command: str) -> str:
    """Run the `lxc remote add` part of the printed command as the student would."""
    add, _, shell = command.partition(" && ")
    argv = shlex.split(add)
    assert argv[:3] == ["lxc", "remote", "add"] and shlex.split(shell)[:2] == ["lxc", "exec"]
    result = fake.run(*argv[1:])
    assert result.returncode == 0, result.stderr
    return argv[3]


def test_access_lets_the_student_into_their_project_only_until_revoked(
    lab: Path, run, fake_lxc: FakeLxc
) -> None:
    assert run(lab, "up").exit_code == 0
    granted = run(lab, "access", "--student", "ANN", "--debug")
    assert granted.exit_code == 0, granted.output
    command = granted.stdout.strip()
    token = shlex.split(command.partition(" && ")[0])[4]
    assert json.loads(base64.b64decode(token))["client_name"] == "labctl-cls-ann"
    assert token not in granted.stderr  # --debug logs every engine call, never the token
    assert shlex.split(command.partition(" && ")[2]) == [
        "lxc", "exec", "cls-ann:cls-ann-app", "--", "su", "-l", "ubuntu",
    ]  # fmt: skip

    remote = student_remote(fake_lxc, command)
    listed = fake_lxc.run("list", f"{remote}:", "--format", "json")
    assert sorted(i["name"] for i in json.loads(listed.stdout)) == ["cls-ann-app", "cls-ann-lb"]
    other = fake_lxc.run("list", f"{remote}:", "--project", "cls-bob", "--format", "json")
    assert other.returncode == 1 and "not authorized" in other.stderr

    revoked = run(lab, "access", "--student", "ann", "--revoke")
    assert revoked.exit_code == 0, revoked.output
    assert "removed 1" in revoked.stderr
    after = fake_lxc.run("list", f"{remote}:", "--format", "json")
    assert after.returncode == 1 and "not authorized" in after.stderr


def test_a_second_access_revokes_the_unused_token_and_json_has_the_command(
    lab: Path, run, fake_lxc: FakeLxc
) -> None:
    assert run(lab, "up", "--student", "bob").exit_code == 0
    first = run(lab, "access", "--student", "bob")
    second = run(lab, "access", "--student", "bob", "--json")
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    document = json.loads(second.stdout)
    assert set(document) == {"student", "project", "remote", "command"}
    assert (document["student"], document["project"], document["remote"]) == (
        "bob", "cls-bob", "cls-bob",
    )  # fmt: skip
    stale = fake_lxc.run(*shlex.split(first.stdout.strip().partition(" && ")[0])[1:])
    assert stale.returncode == 1 and "not authorized" in stale.stderr
    assert student_remote(fake_lxc, document["command"]) == "cls-bob"


def one_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.output  # the message, and at most one hint
    return " ".join(lines)


def test_access_refusals_say_what_to_do(tmp_path: Path, lab: Path, run, fake_lxc: FakeLxc) -> None:
    missing = run(lab, "access", "--student", "ann")  # no `up` yet: no project
    assert missing.exit_code == 1 and "labctl up --student ann" in one_line(missing)
    stranger = run(lab, "access", "--student", "zed")
    assert stranger.exit_code == 2 and "not a student of class 'cls'" in one_line(stranger)

    shared = tmp_path / "shared.yaml"
    shared.write_text(lab.read_text().replace('project: "cls-{student}"', "project: cls"))
    refused = run(shared, "access", "--student", "ann")
    assert refused.exit_code == 2 and "{student}" in one_line(refused)

    multipass = tmp_path / "multipass.yaml"
    text = lab.read_text().replace('{name: lxd, project: "cls-{student}"}', "multipass")
    multipass.write_text(text.replace("image: labctl-test", "image: '24.04'").split("\nhosts:")[0])
    not_lxd = run(multipass, "access", "--student", "ann")
    assert not_lxd.exit_code == 2 and "needs engine: lxd" in one_line(not_lxd)


def test_a_server_without_a_network_address_is_refused_with_the_command_to_set_it(
    tmp_path: Path, run, fake_lxc: FakeLxc
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(students="ann", port=80).split("\nhosts:")[0])
    fake_lxc.run("project", "create", "cls-ann", "-c", "features.profiles=true")
    fake_lxc.run("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default",
                 "--project", "cls-ann")  # fmt: skip
    fake_lxc.run("profile", "device", "add", "default", "eth0", "nic", "network=lxdbr0",
                 "name=eth0", "--project", "cls-ann")  # fmt: skip
    result = run(path, "access", "--student", "ann")
    assert result.exit_code == 1, result.output
    assert "lxc config set core.https_address" in one_line(result)
    assert not any("POST" in c["argv"] for c in fake_lxc.calls("query"))


def test_student_in_the_project_needs_a_class_and_a_valid_rendered_name() -> None:
    single = LAB.replace("class:\n  students: [{students}]\n  domain: \"{{student}}.class.lab\"\n",
                         "domain: one.lab\n")  # fmt: skip
    with pytest.raises(ConfigError) as outside:
        parse_lab(single.format(port=80).split("\nhosts:")[0])
    [line] = [p for p in outside.value.problems if "engine.project" in p]
    assert line.startswith("lab.yaml:2:") and "no class" in line
    long = LAB.replace("cls-{{student}}", "cls-" + "x" * 55 + "-{{student}}")
    with pytest.raises(ConfigError) as too_long:
        parse_lab(long.format(students="ann, bobby", port=80))
    [line] = too_long.value.problems
    assert line.startswith("lab.yaml:2:") and "'bobby'" in line and "not a valid LXD" in line


def test_a_project_left_half_made_is_finished_not_created_again(
    lab: Path, run, fake_lxc: FakeLxc
) -> None:
    fake_lxc.run("project", "create", "cls-ann", "-c", "features.profiles=true")  # cut short
    result = run(lab, "plan", "--student", "ann", "--json")
    assert result.exit_code == 0, result.output
    argvs = [s["argv"][1:] for s in json.loads(result.stdout)["steps"] if s["argv"]]
    assert not any(argv[:2] == ["project", "create"] for argv in argvs), argvs
    added = sorted(argv[4] for argv in argvs if argv[:3] == ["profile", "device", "add"])
    assert added == ["eth0", "root"], argvs


def test_access_through_another_remote_lets_the_student_into_that_servers_project(
    tmp_path: Path, run, fake_lxc: FakeLxc
) -> None:
    """LXD 5.0's `config trust add` reaches only the local daemon: the token is asked for
    through the REST API on the lab's own remote, and revoked there."""
    fake_lxc.add_remote("lab2", address="127.0.2.1:8443")
    path = tmp_path / "lab.yaml"
    text = LAB.format(students="ann", port=80).split("\nhosts:")[0]
    path.write_text(text.replace("{name: lxd,", "{name: lxd, remote: lab2,"))
    for argv in (
        ["project", "create", "lab2:cls-ann", "-c", "features.profiles=true"],
        ["profile", "device", "add", "lab2:default", "root", "disk", "path=/", "pool=default"],
        ["profile", "device", "add", "lab2:default", "eth0", "nic", "network=lxdbr0"],
    ):
        extra = [] if argv[0] == "project" else ["--project", "cls-ann"]
        assert fake_lxc.run(*argv, *extra).returncode == 0
    fake_lxc.run("launch", "labctl-test", "lab2:cls-ann-app", "--project", "cls-ann")
    first = run(path, "access", "--student", "ann")
    granted = run(path, "access", "--student", "ann", "--debug")  # revokes the unused first
    assert first.exit_code == 0 and granted.exit_code == 0, granted.output
    token = shlex.split(granted.stdout.partition(" && ")[0])[4]
    assert json.loads(base64.b64decode(token))["addresses"] == ["127.0.2.1:8443"]
    assert token not in granted.stderr  # --debug logs every engine call, never the token
    asked = [c["argv"] for c in fake_lxc.calls("query") if "-X" in c["argv"]]
    assert asked and all(argv[3].startswith("lab2:/1.0/") for argv in asked), asked

    stale = fake_lxc.run(*shlex.split(first.stdout.strip().partition(" && ")[0])[1:])
    assert stale.returncode == 1 and "not authorized" in stale.stderr
    remote = student_remote(fake_lxc, granted.stdout.strip())
    listed = fake_lxc.run("list", f"{remote}:", "--format", "json")
    assert [i["name"] for i in json.loads(listed.stdout)] == ["cls-ann-app"], listed.stderr

    revoked = run(path, "access", "--student", "ann", "--revoke")
    assert revoked.exit_code == 0 and "removed 1" in revoked.stderr, revoked.output
    after = fake_lxc.run("list", f"{remote}:", "--format", "json")
    assert after.returncode == 1 and "not authorized" in after.stderr
