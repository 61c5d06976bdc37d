"""The fake `lxc`'s faults: what a real daemon cannot be made to show on demand (a dead daemon,
a member going down, a create still running, quotas, trust), in the texts the real one printed
(tests/fixtures/lxd/calls.json)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.fake_lxc.fixture import FakeLxc
from tests.fake_lxc.recordings import RECORDED, calls, shape

CALLS = calls()


@pytest.fixture
def cluster(fake_lxc: FakeLxc) -> FakeLxc:
    """Two members on the recorder's addresses, one tagged container on each."""
    fake_lxc.make_cluster(["m1", "m2"], port=18443)
    fake_lxc.configure(member_down_stall=0.1)
    for member in ("m1", "m2"):
        made = fake_lxc.run(
            "launch",
            "labctl-test",
            f"lxt-k{member[1]}",
            "--target",
            member,
            "-c",
            "user.labctl.lab=rec",
        )
        assert made.returncode == 0, made.stderr
    return fake_lxc


def test_an_unreachable_local_daemon_fails_every_call_but_version(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(daemon_unreachable=True)
    env = fake_lxc.environ() | {"LXD_DIR": "/var/lib/labctl-lxd-test/server"}
    listing = subprocess.run(
        [str(fake_lxc.executable), "list", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    real = CALLS["daemon-unreachable-list"]
    assert (listing.returncode, listing.stderr) == (real["rc"], real["stderr"])
    version = fake_lxc.run("version")
    assert (version.returncode, version.stdout) == (
        0,
        CALLS["daemon-unreachable-version"]["stdout"],
    )


def test_the_daemon_can_die_after_a_number_of_calls(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(fail_after_calls=2)
    assert fake_lxc.run("launch", "labctl-test", "lxt-a").returncode == 0
    assert fake_lxc.run("list", "--format", "json").returncode == 0
    assert "unix.socket" in fake_lxc.run("list", "--format", "json").stderr


def test_a_down_member_s_containers_are_error_without_config(cluster: FakeLxc) -> None:
    cluster.set_member_down("m2")
    rows = {r["name"]: r for r in json.loads(cluster.run("list", "--format", "json").stdout)}
    real = {
        r["name"]: r for r in json.loads((RECORDED / "cluster-list-member-down.json").read_text())
    }
    assert shape(rows["lxt-k2"]) == shape(real["lxt-k2"])
    assert (rows["lxt-k2"]["status"], rows["lxt-k2"]["config"]) == ("Error", None)
    assert rows["lxt-k1"]["status"] == "Running"
    tagged = json.loads(cluster.run("list", "user.labctl.lab=rec", "--format", "json").stdout)
    assert [r["name"] for r in tagged] == ["lxt-k1"]  # no config, so the tag filter drops it
    real_tagged = json.loads(CALLS["cluster-list-tag-member-down"]["stdout"])
    assert [r["name"] for r in tagged] == [r["name"] for r in real_tagged]


@pytest.mark.parametrize(
    ("situation", "argv"),
    [
        ("cluster-exec-member-down", ["exec", "lxt-k2", "--", "true"]),
        ("cluster-stop-member-down", ["stop", "lxt-k2", "--force"]),
        ("cluster-info-member-down", ["info", "lxt-k2"]),
        ("cluster-launch-target-down", ["launch", "labctl-test", "lxt-k3", "--target", "m2"]),
    ],
)
def test_calls_into_a_down_member_fail_as_recorded(
    cluster: FakeLxc, situation: str, argv: list[str]
) -> None:
    cluster.set_member_down("m2")
    fake = cluster.run(*argv)
    real = CALLS[situation]
    assert (fake.returncode, fake.stdout, fake.stderr) == (
        real["rc"],
        real["stdout"],
        real["stderr"],
    )


def test_a_down_member_stays_online_in_cluster_list_until_the_heartbeat_misses(
    cluster: FakeLxc,
) -> None:
    cluster.configure(member_offline_after=3600)
    cluster.set_member_down("m2")
    members = json.loads(cluster.run("cluster", "list", "--format", "json").stdout)
    assert [m["status"] for m in members] == ["Online", "Online"]
    cluster.configure(member_offline_after=0)
    members = json.loads(cluster.run("cluster", "list", "--format", "json").stdout)
    real = json.loads((RECORDED / "cluster-list-member-offline.json").read_text())
    assert shape(members) == shape(real)
    assert members[1]["status"] == real[1]["status"] == "Offline"
    assert members[1]["message"].startswith("No heartbeat for ")


def test_placement_and_bad_targets(cluster: FakeLxc) -> None:
    bad = cluster.run("launch", "labctl-test", "lxt-k9", "--target", "nosuch")
    real = CALLS["cluster-launch-bad-target"]
    assert (bad.returncode, bad.stdout, bad.stderr) == (real["rc"], real["stdout"], real["stderr"])
    cluster.run("init", "labctl-test", "lxt-k4")
    cluster.run("init", "labctl-test", "lxt-k5")
    located = {
        r["name"]: r["location"] for r in json.loads(cluster.run("list", "--format", "json").stdout)
    }
    assert located == {"lxt-k1": "m1", "lxt-k2": "m2", "lxt-k4": "m1", "lxt-k5": "m2"}


def test_a_create_still_running_makes_other_calls_busy(fake_lxc: FakeLxc) -> None:
    fake_lxc.run("init", "labctl-test", "lxt-busy-start")
    fake_lxc.configure(busy_creating=["lxt-busy-start"])
    started = fake_lxc.run("start", "lxt-busy-start")
    real = CALLS["start-while-creating"]
    assert (started.returncode, started.stderr) == (real["rc"], real["stderr"])
    fake_lxc.run("init", "labctl-test", "lxt-busy-delete")
    fake_lxc.configure(busy_creating=["lxt-busy-delete"])
    deleted = fake_lxc.run("delete", "--force", "lxt-busy-delete")
    real = CALLS["delete-while-creating"]
    assert (deleted.returncode, deleted.stderr) == (real["rc"], real["stderr"])


def test_project_quotas_refuse_as_recorded(fake_lxc: FakeLxc) -> None:
    created = fake_lxc.run(
        "project",
        "create",
        "lxt-quota",
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=false",
        "-c",
        "limits.instances=1",
        "-c",
        "limits.memory=1GiB",
    )
    assert created.returncode == 0
    for situation, name, memory in (
        ("quota-memory", "lxt-q1", "2GiB"),
        ("quota-first", "lxt-q1", "256MiB"),
        ("quota-instances", "lxt-q2", "256MiB"),
    ):
        fake = fake_lxc.run(
            "init", "labctl-test", name, "--project", "lxt-quota", "-c", f"limits.memory={memory}"
        )
        real = CALLS[situation]
        assert (fake.returncode, fake.stdout, fake.stderr) == (
            real["rc"],
            real["stdout"],
            real["stderr"],
        )


def test_a_student_token_reaches_only_its_project(fake_lxc: FakeLxc) -> None:
    fake_lxc.make_cluster(["m1", "m2"], port=18443)
    fake_lxc.run(
        "project", "create", "lxt-s1", "-c", "restricted=true", "-c", "features.images=false"
    )
    added = fake_lxc.run(
        "config", "trust", "add", "--name", "lxt-student", "--projects", "lxt-s1", "--restricted"
    )
    header, token = added.stdout.splitlines()
    assert f"{header}\n<token>\n" == CALLS["trust-add"]["stdout"]
    assert fake_lxc.run("remote", "add", "cl", token).returncode == 0
    remotes = json.loads(fake_lxc.run("remote", "list", "--format", "json").stdout)
    real_remotes = json.loads(CALLS["remote-list"]["stdout"])
    assert (
        shape(remotes["cl"]) == shape(real_remotes["cl"]) and remotes["cl"]["Project"] == "lxt-s1"
    )
    assert list(remotes) == list(real_remotes)
    for situation, argv in (
        ("student-list", ["list", "cl:", "--format", "json"]),
        ("student-other-project", ["list", "cl:", "--project", "default", "--format", "json"]),
        ("student-target", ["init", "cl:labctl-test", "cl:lxt-s1a", "--target", "m1"]),
    ):
        fake = fake_lxc.run(*argv)
        real = CALLS[situation]
        assert (fake.returncode, fake.stdout, fake.stderr) == (
            real["rc"],
            real["stdout"],
            real["stderr"],
        )
    trusted = json.loads(fake_lxc.run("config", "trust", "list", "--format", "json").stdout)
    assert [c["name"] for c in trusted] == ["lxt-student"]
    fake_lxc.run("config", "trust", "remove", trusted[0]["fingerprint"])
    gone = fake_lxc.run("list", "cl:", "--format", "json")
    assert (gone.returncode, gone.stderr) == (1, CALLS["student-untrusted"]["stderr"])
    replayed = fake_lxc.run("remote", "add", "again", token)
    assert (replayed.returncode, replayed.stderr) == (1, "Error: not authorized\n")


def test_trust_and_certificate_faults_on_a_remote(fake_lxc: FakeLxc) -> None:
    fake_lxc.add_remote("srv", address="127.0.1.9:18443")
    assert fake_lxc.run("list", "srv:", "--format", "json").stdout == "[]\n"
    fake_lxc.configure(certificate_changed=["srv"])
    changed = fake_lxc.run("list", "srv:", "--format", "json")
    assert (changed.returncode, changed.stderr) == (
        1,
        CALLS["remote-certificate-changed"]["stderr"],
    )
    fake_lxc.configure(certificate_changed=None, untrusted=["srv"])
    assert fake_lxc.run("list", "srv:", "--format", "json").stderr == "Error: not authorized\n"
    fake_lxc.configure(untrusted=None, daemon_unreachable=["srv"])
    down = fake_lxc.run("list", "srv:", "--format", "json")
    assert down.stderr.startswith('Error: Get "https://127.0.1.9:18443/1.0": Unable to connect to')
    assert fake_lxc.run("list", "--format", "json").returncode == 0  # the local one still answers


def test_image_missing_and_vms_refused(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(image_missing=["labctl-test"])
    missing = fake_lxc.run("launch", "labctl-test", "lxt-a")
    assert (missing.returncode, missing.stderr) == (1, CALLS["launch-no-image"]["stderr"])
    fake_lxc.configure(image_missing=None)
    vm = fake_lxc.run("launch", "labctl-test", "lxt-v", "--vm")
    assert vm.stderr == "Error: Asked for a VM but image is of type container\n"


def test_the_call_log_keeps_the_instance_yaml_and_exec_stdin(fake_lxc: FakeLxc) -> None:
    body = "config:\n  cloud-init.user-data: |\n    #cloud-config\n    {}\n"
    fake_lxc.run("launch", "labctl-test", "lxt-a", input=body)
    fake_lxc.on_exec("lxt-a", ["sudo", "labctl-lb-apply"], stdout="applied\n")
    applied = fake_lxc.run("exec", "lxt-a", "--", "sudo", "labctl-lb-apply", input="server {}\n")
    assert (applied.returncode, applied.stdout) == (0, "applied\n")
    assert fake_lxc.calls("launch")[0]["stdin"] == body
    assert fake_lxc.calls("exec")[0]["stdin"] == "server {}\n"
    config = fake_lxc.instance("lxt-a")["config"]
    assert config["cloud-init.user-data"] == "#cloud-config\n{}\n"


def test_a_hung_exec_ends_only_when_the_caller_kills_it(fake_lxc: FakeLxc) -> None:
    fake_lxc.run("launch", "labctl-test", "lxt-a")
    fake_lxc.configure(exec_hang=["lxt-a"])
    with pytest.raises(subprocess.TimeoutExpired):
        fake_lxc.run("exec", "lxt-a", "--", "true", timeout=1)
    assert fake_lxc.run("exec", "lxt-b", "--", "true").stderr == "Error: Instance not found\n"


def test_unknown_knobs_are_refused(fake_lxc: FakeLxc) -> None:
    with pytest.raises(ValueError, match="unknown lxc fake settings"):
        fake_lxc.configure(daemon_unreachble=True)


def test_the_first_run_notice_goes_to_stderr_only(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(first_run_notice=True)
    first = fake_lxc.run("list", "--format", "json")
    assert (first.stdout, first.stderr.splitlines()[0]) == (
        "[]\n",
        CALLS["remote-add-bad-password"]["stderr"].splitlines()[0],
    )
    assert fake_lxc.run("list", "--format", "json").stderr == ""


def test_a_launch_still_creating_makes_a_concurrent_start_busy(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(create_latency=2.0)
    creating = subprocess.Popen(
        [str(fake_lxc.executable), "init", "labctl-test", "lxt-slow"],
        env=fake_lxc.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = 40
        while "lxt-slow" not in fake_lxc.instances() and deadline:
            deadline -= 1
            time.sleep(0.05)
        racing = fake_lxc.run("start", "lxt-slow")
    finally:
        creating.communicate(timeout=30)
    assert (racing.returncode, racing.stderr) == (1, CALLS["start-while-creating"]["stderr"])
    assert fake_lxc.run("start", "lxt-slow").returncode == 0  # the create has finished


def test_lxc_on_path_is_the_fake(fake_lxc: FakeLxc) -> None:
    found = subprocess.run(
        ["lxc", "version"],
        env=fake_lxc.environ(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert found.stdout == CALLS["version"]["stdout"]
    assert fake_lxc.calls("version")[0]["rc"] == 0


def test_exec_with_stdin_left_open_returns_as_the_real_client_does(fake_lxc: FakeLxc) -> None:
    fake_lxc.run("launch", "labctl-test", "lxt-a")
    with subprocess.Popen(
        [str(fake_lxc.executable), "exec", "lxt-a", "--", "true"],
        env=fake_lxc.environ(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.wait(timeout=20) == 0  # the pipe is still open: nothing was sent, no EOF
        assert proc.stdin is not None
        proc.stdin.close()
    assert fake_lxc.calls("exec")[0]["stdin"] == "<stdin left open>"
