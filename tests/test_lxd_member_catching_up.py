"""A cluster member that has just come back (the fake `lxc`, with LXD 5.0.2's texts): for some
seconds the other members have no event connection to it, so operations on its instances fail
with "Missing event connection with target cluster member" and a launch placed there loses its
reply ("Operation not found") although the instance was made. The LXD engine rides that out for
a bounded time; a member that is really down is still reported at once, without retries."""

from __future__ import annotations

import pytest

from labctl.engine.base import LaunchSpec, State
from labctl.engine.lxd import settle
from labctl.engine.lxd.adapter import LxdEngine
from labctl.engine.lxd.commands import LxdTarget
from labctl.errors import DaemonUnreachableError
from tests.fake_lxc.fixture import FakeLxc

CATCHING_UP_FOR = 1.0  # seconds; the engine polls every 0.4 s here, so at least one retry


@pytest.fixture
def engine(fake_lxc: FakeLxc, monkeypatch: pytest.MonkeyPatch) -> LxdEngine:
    monkeypatch.setattr(settle, "SETTLE_POLL", 0.4)
    fake_lxc.make_cluster(["m1", "m2", "m3"])
    fake_lxc.configure(member_down_stall=0)
    return LxdEngine(LxdTarget(), env={**fake_lxc.env, "LABCTL_LXC": str(fake_lxc.executable)})


def spec(name: str, member: str) -> LaunchSpec:
    return LaunchSpec(
        name=name,
        image="labctl-test",
        cpus=1,
        memory="256M",
        disk="3G",
        user_data="#cloud-config\n",
        timeout=60,
        labels={"lab": "cu"},
        target=member,
    )


def commands(fake: FakeLxc, command: str) -> list[list[str]]:
    return [call["argv"] for call in fake.calls(command)]


def test_a_launch_whose_reply_was_lost_is_finished_not_failed(
    engine: LxdEngine, fake_lxc: FakeLxc
) -> None:
    fake_lxc.set_member_catching_up("m3", CATCHING_UP_FOR)
    engine.launch(spec("cu-app", "m3"))
    [made] = [i for i in engine.list() if i.name == "cu-app"]
    assert (made.state, made.location) == (State.RUNNING, "m3")
    assert len(commands(fake_lxc, "launch")) == 1  # it was made: started, not launched again
    assert len(commands(fake_lxc, "start")) >= 2  # refused while catching up, then started


def test_exec_start_stop_and_delete_wait_for_a_member_that_just_came_back(
    engine: LxdEngine, fake_lxc: FakeLxc
) -> None:
    engine.launch(spec("cu-app", "m3"))
    fake_lxc.set_member_catching_up("m3", CATCHING_UP_FOR)
    result = engine.exec("cu-app", ["true"], timeout=30)
    assert result.returncode == 0
    assert len(commands(fake_lxc, "exec")) >= 2  # refused at first, then run
    fake_lxc.set_member_catching_up("m3", CATCHING_UP_FOR)
    engine.stop(["cu-app"], timeout=30)
    fake_lxc.set_member_catching_up("m3", CATCHING_UP_FOR)
    engine.start(["cu-app"], timeout=30)
    fake_lxc.set_member_catching_up("m3", CATCHING_UP_FOR)
    engine.delete(["cu-app"])
    assert [i.name for i in engine.list()] == []


def test_a_member_that_is_down_is_reported_at_once_without_retries(
    engine: LxdEngine, fake_lxc: FakeLxc
) -> None:
    engine.launch(spec("cu-app", "m2"))
    fake_lxc.set_member_down("m2")
    with pytest.raises(DaemonUnreachableError, match="a cluster member does not answer"):
        engine.exec("cu-app", ["true"], timeout=30)
    assert len(commands(fake_lxc, "exec")) == 1
    with pytest.raises(DaemonUnreachableError):
        engine.delete(["cu-app"])
    assert len(commands(fake_lxc, "delete")) == 1


def test_a_member_that_never_catches_up_fails_after_the_bounded_window(
    engine: LxdEngine, fake_lxc: FakeLxc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settle, "SETTLE_WINDOW", 2.0)
    engine.launch(spec("cu-app", "m3"))
    fake_lxc.set_member_catching_up("m3", 600)
    with pytest.raises(DaemonUnreachableError, match="Missing event connection"):
        engine.exec("cu-app", ["true"], timeout=30)
    assert 2 <= len(commands(fake_lxc, "exec")) <= 7
