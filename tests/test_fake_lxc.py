"""The fake `lxc` against what the real LXD 5.0.2 printed (tests/fixtures/lxd, recorded by
tests/lxd/record.py): the same JSON shapes, the same error texts and exit codes, and the faults
a real daemon cannot be made to show on demand."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.fake_lxc.fixture import FakeLxc
from tests.fake_lxc.recordings import RECORDED, calls, recorded, shape

CALLS = calls()
USER_DATA = "#cloud-config\nruncmd:\n  - [touch, /root/recorded]\n"
REC1_BODY = (
    "config:\n  user.labctl.lab: rec\n  user.labctl.vm: app1\n  limits.cpu: '1'\n"
    "  limits.memory: 512MiB\n  cloud-init.user-data: |\n    #cloud-config\n    runcmd:\n"
    "      - [touch, /root/recorded]\n"
)


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def listed(fake: FakeLxc, *args: str) -> list[dict[str, Any]]:
    proc = fake.run("list", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def server(fake_lxc: FakeLxc) -> FakeLxc:
    """The fake in the state the recorder put the real server in: lxt-rec1 running with its
    tags and user-data, lxt-rec2 created and never started."""
    assert fake_lxc.run("launch", "labctl-test", "lxt-rec1", input=REC1_BODY).returncode == 0
    assert (
        fake_lxc.run("init", "labctl-test", "lxt-rec2", "-c", "user.labctl.lab=other").returncode
        == 0
    )
    return fake_lxc


def test_list_json_has_the_real_shapes_running_and_never_started(server: FakeLxc) -> None:
    real = by_name(recorded("list.json"))
    fake = by_name(listed(server))
    for name in ("lxt-rec1", "lxt-rec2"):
        assert shape(fake[name]) == shape(real[name]), name
        assert sorted(fake[name]["config"]) == sorted(
            k for k in real[name]["config"] if k != "image.labctl.recipe"
        ), name
        assert fake[name]["status_code"] == real[name]["status_code"]
        assert fake[name]["location"] == real[name]["location"] == "none"
        assert fake[name]["snapshots"] is real[name]["snapshots"] is None


def test_list_json_is_compact_in_go_s_key_order(server: FakeLxc) -> None:
    real_raw = CALLS["list"]["stdout"]
    fake_raw = server.run("list", "--format", "json").stdout
    assert fake_raw.startswith('[{"architecture":"x86_64","config":{')
    assert fake_raw.endswith("}]\n") and real_raw.endswith("}]\n")
    assert "\n" not in fake_raw[:-1]
    pairs = lambda raw: json.loads(raw, object_pairs_hook=lambda kv: [k for k, _ in kv])  # noqa: E731
    assert pairs(fake_raw)[0] == pairs(real_raw)[0]
    escaped = server.run("launch", "labctl-test", "lxt-amp", "-c", "user.note=a && b <c>")
    assert escaped.returncode == 0
    assert "a \\u0026\\u0026 b \\u003cc\\u003e" in server.run("list", "--format", "json").stdout


def test_snapshots_and_a_frozen_container_have_the_real_shapes(server: FakeLxc) -> None:
    assert server.run("snapshot", "lxt-rec1", "snap0").returncode == 0
    real = recorded("list-snapshots.json")[0]
    fake = listed(server, "lxt-rec1")[0]
    assert shape(fake["snapshots"]) == shape(real["snapshots"])
    assert server.run("pause", "lxt-rec1").returncode == 0
    frozen = listed(server, "lxt-rec1")[0]
    real_frozen = recorded("list-frozen.json")[0]
    assert (frozen["status"], frozen["status_code"]) == (real_frozen["status"], 110)
    assert shape(frozen["state"]) == shape(real_frozen["state"])


def test_filters_pick_what_the_real_list_picked(server: FakeLxc) -> None:
    for label, expression in (
        ("tag", "user.labctl.lab=rec"),
        ("regex", "^lxt-rec"),
        ("status", "status=stopped"),
    ):
        real = [row["name"] for row in json.loads(CALLS[f"list-filter-{label}"]["stdout"])]
        assert [row["name"] for row in listed(server, expression)] == real, label


def test_info_text_reads_like_the_real_one(server: FakeLxc) -> None:
    server.run("snapshot", "lxt-rec1", "snap0")
    for name, file in (("lxt-rec1", "info-running.txt"), ("lxt-rec2", "info-stopped.txt")):
        fake = server.run("info", name).stdout.splitlines()
        real = (RECORDED / file).read_text().splitlines()
        assert _labels(fake)[:6] == _labels(real)[:6], name
    running = server.run("info", "lxt-rec1").stdout
    assert "| NAME  |       TAKEN AT       | EXPIRES AT | STATEFUL |" in running
    assert re.search(r"^        inet:  127\.81\.0\.\d+/24 \(global\)$", running, re.M)


def _labels(lines: list[str]) -> list[str]:
    return [line.split(":")[0] for line in lines if not line.startswith(("|", "+"))]


# -- the same texts and exit codes as the real client -------------------------------------------
SAME_AS_RECORDED = {
    "exec-not-found": ["exec", "lxt-rec1", "--", "no-such-command"],
    "exec-stopped": ["exec", "lxt-rec2", "--", "true"],
    "exec-missing": ["exec", "nosuch", "--", "true"],
    "info-missing": ["info", "nosuch"],
    "stop-missing": ["stop", "nosuch"],
    "start-missing": ["start", "nosuch"],
    "delete-missing": ["delete", "nosuch", "--force"],
    "launch-exists": ["launch", "labctl-test", "lxt-rec1"],
    "launch-no-image": ["launch", "no-such-image", "lxt-rec3"],
    "launch-bad-name": ["launch", "labctl-test", "Bad_Name"],
    "launch-target-standalone": ["launch", "labctl-test", "lxt-rec3", "--target", "m1"],
    "launch-bad-config": ["launch", "labctl-test", "lxt-rec3", "-c", "limits.memory=lots"],
    "launch-no-profile": ["launch", "labctl-test", "lxt-rec3", "-p", "nosuch"],
    "launch-project-missing": ["init", "labctl-test", "lxt-rec3", "--project", "nosuch"],
    "start-running": ["start", "lxt-rec1"],
    "stop-stopped": ["stop", "lxt-rec2"],
    "delete-running": ["delete", "lxt-rec1"],
    "restore-missing": ["restore", "lxt-rec1", "nosnap"],
    "delete-snapshot-missing": ["delete", "lxt-rec1/nosnap"],
    "project-missing": ["list", "--project", "nosuch", "--format", "json"],
    "remote-missing": ["list", "nosuch:", "--format", "json"],
    "usage-command": ["nosuchcmd"],
    "usage-flag": ["list", "--nosuchflag"],
    "stop-timeout": ["stop", "lxt-rec1", "--timeout", "30"],
    "init": ["init", "labctl-test", "lxt-rec5"],
    "project-create": ["project", "create", "lxt-p1", "-c", "features.images=false"],
    "profile-create": ["profile", "create", "lxt-prof"],
}


@pytest.mark.parametrize("situation", sorted(SAME_AS_RECORDED))
def test_texts_and_exit_codes_match_the_recording(server: FakeLxc, situation: str) -> None:
    real = CALLS[situation]
    argv = SAME_AS_RECORDED[situation]
    if situation == "init":
        real = {**real, "stdout": real["stdout"].replace("lxt-rec2", "lxt-rec5")}
    fake = server.run(*argv)
    assert (fake.returncode, fake.stderr) == (real["rc"], real["stderr"])
    if not real["stdout"].startswith(("[", "Description")):
        assert fake.stdout == real["stdout"]


def test_exec_passes_the_remote_exit_status_through(server: FakeLxc) -> None:
    fake = server.run("exec", "lxt-rec1", "--", "sh", "-c", "exit 33")
    assert fake.returncode == CALLS["exec-code"]["rc"] == 33


def test_snapshot_errors_and_profile_device_texts(server: FakeLxc) -> None:
    server.run("snapshot", "lxt-rec1", "snap0")
    again = server.run("snapshot", "lxt-rec1", "snap0")
    assert (again.returncode, again.stderr) == (1, CALLS["snapshot-exists"]["stderr"])
    server.run("profile", "create", "lxt-prof")
    added = server.run(
        "profile", "device", "add", "lxt-prof", "root", "disk", "path=/", "pool=default"
    )
    assert added.stdout == CALLS["profile-device-add"]["stdout"]
    assert server.run("profile", "delete", "lxt-prof").stdout == CALLS["profile-delete"]["stdout"]


def test_cloud_init_status_prints_what_debian_s_cloud_init_printed(server: FakeLxc) -> None:
    stamp = re.compile(r"last_update: .*\n")
    waited = server.run("exec", "lxt-rec1", "--", "cloud-init", "status", "--wait")
    real = CALLS["cloud-init-wait-done"]["stdout"]
    assert waited.stdout == real[real.index("\n") :]  # the dots depend on how long it ran
    long = server.run("exec", "lxt-rec1", "--", "cloud-init", "status", "--long")
    assert stamp.sub("", long.stdout) == stamp.sub("", CALLS["cloud-init-long-done"]["stdout"])
    server.configure(cloud_init_error=["lxt-err"])
    server.run("launch", "labctl-test", "lxt-err")
    failed = server.run("exec", "lxt-err", "--", "cloud-init", "status", "--long")
    assert failed.returncode == CALLS["cloud-init-long-error"]["rc"] == 1
    assert stamp.sub("", failed.stdout) == stamp.sub("", CALLS["cloud-init-long-error"]["stdout"])


def test_status_wait_prints_dots_until_cloud_init_ends(fake_lxc: FakeLxc) -> None:
    fake_lxc.configure(cloud_init_latency=3600)
    fake_lxc.run("launch", "labctl-test", "lxt-slow")
    assert (
        fake_lxc.run("exec", "lxt-slow", "--", "cloud-init", "status").stdout == "status: running\n"
    )
    with subprocess.Popen(
        [str(fake_lxc.executable), "exec", "lxt-slow", "--", "cloud-init", "status", "--wait"],
        env=fake_lxc.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    ) as waiting:
        assert waiting.stdout is not None
        assert waiting.stdout.read(1) == b"."  # still waiting
        fake_lxc.finish_cloud_init("lxt-slow")
        rest = waiting.stdout.read().decode()
        assert waiting.wait(timeout=30) == 0
    assert re.fullmatch(r"\.*\nstatus: done\n", rest)
