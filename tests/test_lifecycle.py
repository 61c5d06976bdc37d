"""Use cases snapshot / reset / up's baseline, preflight, lock and interruption, on the in-memory world."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.engine.multipass.errors import MultipassError
from labctl.errors import ConfigError, LabBusyError
from labctl.host.resources import HostResources
from labctl.ops.doctor import PreflightError
from labctl.ops.reset import reset
from labctl.ops.snapshot import (
    SnapshotsUnavailableError,
    delete,
    list_snapshots,
    restore,
    save,
)
from labctl.ops.up import UpInterruptedError, up
from tests.lab_world import World, lab_text, with_options
from tests.test_drill import wire_backends

BIG_HOST = HostResources(
    cpus=64, memory_available=512 * 1024**3, disk_free=10 * 1024**4, disk_path="/"
)


def with_lab(world: World, extra: str = "", **kwargs: object) -> World:
    text = lab_text(world.lb.port, **kwargs) + extra  # type: ignore[arg-type]
    world.ctx.lab_file = LabFile(parse_lab(text), world.ctx.lab_file.path, "1" * 64)
    return world


def make(make_world, *, baseline: bool = True) -> World:
    world = make_world()
    world.ctx.host = lambda: BIG_HOST
    if not baseline:
        with_lab(world, "snapshots: {baseline: false}\n")
    return world


def verbs_after(world: World, start: int) -> list[str]:
    return [c[0] for c in world.mp.calls[start:]]


# --- baseline on up ------------------------------------------------------------------------------


def test_first_healthy_up_takes_the_baseline_once(make_world) -> None:
    world = make(make_world)
    result = up(world.ctx)
    assert result.ok, result.failures
    assert result.baseline == "taken"
    assert all(set(vm.snapshots) == {"baseline"} for vm in world.mp.vms.values())
    verbs = [c[0] for c in world.mp.calls]
    first_snapshot = verbs.index("snapshot")
    assert verbs.index("stop") < first_snapshot < len(verbs) - 1 - verbs[::-1].index("start")
    assert all(vm.state == "Running" for vm in world.mp.vms.values())
    manifest = world.ctx.lab_state.snapshots()["baseline"]
    assert manifest["lab_digest"] == "0" * 64 and sorted(manifest["vms"]) == [
        "app1",
        "app2",
        "app3",
        "lb",
    ]
    world.mp.calls.clear()
    again = up(world.ctx)
    assert again.ok and again.baseline == "exists"
    assert world.mp.calls_of("snapshot") == [] and world.mp.calls_of("stop") == []


def test_baseline_off_takes_nothing(make_world) -> None:
    world = make(make_world, baseline=False)
    result = up(world.ctx)
    assert result.ok and result.baseline == "off"
    assert world.mp.calls_of("snapshot") == [] and world.mp.calls_of("stop") == []


def test_baseline_skipped_visibly_on_multipass_older_than_1_13(make_world) -> None:
    world = make(make_world)
    world.mp.daemon = "1.12.2"
    result = up(world.ctx)
    assert result.ok and result.baseline.startswith("skipped: Multipass 1.12.2 has no snapshots")
    assert world.mp.calls_of("stop") == []
    assert any(e.stage == "baseline" and e.kind == "skip" for e in world.events)


def test_baseline_skipped_when_the_driver_has_no_snapshots_and_not_retried(make_world) -> None:
    world = make(make_world)
    world.mp.snapshots_unsupported = True
    result = up(world.ctx)
    assert result.ok, result.failures
    assert result.baseline.startswith("skipped:") and "cannot take snapshots" in result.baseline
    assert all(vm.state == "Running" for vm in world.mp.vms.values())  # started again
    assert len(world.mp.calls_of("snapshot")) == 1  # stopped at the first VM
    world.mp.calls.clear()
    assert up(world.ctx).baseline.startswith("skipped:")
    assert world.mp.calls_of("stop") == []


def test_baseline_skipped_for_the_lxd_driver_without_stopping(make_world) -> None:
    world = make(make_world)
    world.mp.driver = "lxd"
    result = up(world.ctx)
    assert result.ok and "lxd driver cannot take snapshots" in result.baseline
    assert world.mp.calls_of("stop") == []


# --- snapshot save / restore / list / delete -------------------------------------------------------


def test_save_stops_snapshots_every_vm_starts_and_serves(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    mark = len(world.mp.calls)
    outcome = save(world.ctx, "before-lab3")
    assert outcome.ok, outcome
    assert sorted(outcome.done) == ["app1", "app2", "app3", "lb"]
    verbs = verbs_after(world, mark)
    assert verbs.index("stop") < verbs.index("snapshot")
    assert max(i for i, v in enumerate(verbs) if v == "snapshot") < verbs.index("start")
    assert outcome.wiring is not None and outcome.wiring.check is not None
    assert all(vm.state == "Running" for vm in world.mp.vms.values())
    entry = world.ctx.lab_state.snapshots()["before-lab3"]
    assert entry["lab_digest"] == "1" * 64 and entry["created"].endswith("Z")


def test_save_partial_failure_names_who_has_it_and_leaves_the_lab_serving(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    world.mp.fail_snapshot["hello-app2"] = MultipassError("snapshot failed: disk full")
    outcome = save(world.ctx, "s1")
    assert not outcome.ok
    assert sorted(outcome.done) == ["app1", "app3", "lb"]
    assert list(outcome.failed) == ["app2"] and "disk full" in outcome.failed["app2"]
    assert outcome.wiring is not None and outcome.wiring.ok
    assert all(vm.state == "Running" for vm in world.mp.vms.values())
    [entry] = list_snapshots(world.ctx).entries
    assert entry.present == ["app1", "app3", "lb"] and entry.missing == ["app2"]


@pytest.mark.parametrize("name", ["1st", "with.dot", "trailing-", "a b", ""])
def test_bad_snapshot_names_are_refused_before_anything(make_world, name: str) -> None:
    world = make(make_world, baseline=False)
    with pytest.raises(ConfigError) as err:
        save(world.ctx, name)
    assert err.value.exit_code == 2 and "is not valid" in err.value.message
    assert world.mp.calls == []


def test_duplicate_name_refused_with_exit_2_and_nothing_stopped(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    assert save(world.ctx, "s1").ok
    world.mp.calls.clear()
    with pytest.raises(ConfigError) as err:
        save(world.ctx, "s1")
    assert "already exists on app1, app2, app3, lb" in err.value.message
    assert world.mp.calls_of("stop") == []


def test_snapshot_on_old_multipass_is_a_clear_error(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    world.mp.daemon = "1.12.0"
    world.mp.calls.clear()
    with pytest.raises(SnapshotsUnavailableError) as err:
        save(world.ctx, "s1")
    assert "1.13" in err.value.message and "nothing was changed" in err.value.message
    assert world.mp.calls_of("stop") == []


def test_restore_brings_back_the_saved_state_and_resyncs_new_ips(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    world.mp.vms["hello-app1"].files["/srv/app/config"] = "good"
    assert save(world.ctx, "s1").ok
    world.mp.vms["hello-app1"].files["/srv/app/config"] = "broken by the student"
    world.mp.ips["hello-app1"] = "10.77.0.21"  # a new lease after the restart
    outcome = restore(world.ctx, "s1")
    assert outcome.ok, outcome
    assert world.mp.vms["hello-app1"].files["/srv/app/config"] == "good"
    assert "server 10.77.0.21:3000" in world.mp.vms["hello-lb"].site
    assert outcome.wiring is not None and outcome.wiring.check is not None
    assert "10.77.0.21:3000" in outcome.wiring.check.backends_seen


def test_restore_unknown_name_is_bad_input(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    with pytest.raises(ConfigError) as err:
        restore(world.ctx, "nope")
    assert "no snapshot named 'nope'" in err.value.message and "baseline" in err.value.message


def test_restore_refuses_when_a_vm_lacks_the_snapshot(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    assert save(world.ctx, "s1").ok
    del world.mp.vms["hello-app3"].snapshots["s1"]
    world.mp.calls.clear()
    with pytest.raises(Exception) as err:
        restore(world.ctx, "s1")
    assert "no snapshot 's1' on app3" in str(err.value) and world.mp.calls_of("stop") == []


def test_list_warns_when_lab_yaml_changed_and_delete_removes_it(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    [entry] = list_snapshots(world.ctx).entries
    assert entry.name == "baseline" and not entry.config_changed
    with_lab(world, "snapshots: {baseline: true}\n")  # a different digest
    world.ctx.lab_file = LabFile(world.ctx.lab, world.ctx.lab_file.path, "2" * 64)
    assert list_snapshots(world.ctx).entries[0].config_changed
    outcome = delete(world.ctx, "baseline")
    assert outcome.ok and sorted(outcome.done) == ["app1", "app2", "app3", "lb"]
    assert list_snapshots(world.ctx).entries == []
    assert all(vm.snapshots == {} for vm in world.mp.vms.values())


# --- reset -------------------------------------------------------------------------------------------


class Traffic:
    """Bounded background GETs through the stand-in LB, counting answers by status."""

    def __init__(self, world: World) -> None:
        self.port = world.lb.port
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and len(self.statuses) < 5000 and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": "hello.lab"})
                self.statuses.append(conn.getresponse().status)
            except OSError:
                self.statuses.append(0)
            finally:
                conn.close()
            time.sleep(0.002)

    def __enter__(self) -> Traffic:
        self.thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_reset_one_vm_restores_its_baseline_while_the_others_serve(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    wire_backends(world)  # a stopped VM is dead for the stand-in LB, which routes around it
    world.mp.vms["hello-app2"].files["/etc/nginx/broken"] = "yes"
    world.mp.calls.clear()
    real_restore = world.mp.restore

    def slow_restore(name: str, snapshot: str) -> None:
        time.sleep(0.3)  # let traffic flow while app2 is down
        real_restore(name, snapshot)

    world.mp.restore = slow_restore  # type: ignore[method-assign]
    with Traffic(world) as traffic:
        result = reset(world.ctx, ["app2"])
    assert result.ok, result.failures
    assert [(v.vm, v.how) for v in result.vms] == [("app2", "restored")]
    assert world.mp.calls_of("stop") == [("stop", "hello-app2")]
    assert world.mp.vms["hello-app2"].files == {}
    assert len(traffic.statuses) > 20
    assert set(traffic.statuses) == {200}, {
        s: traffic.statuses.count(s) for s in set(traffic.statuses)
    }


def test_reset_without_baseline_rebuilds(make_world) -> None:
    world = make(make_world, baseline=False)
    assert up(world.ctx).ok
    world.mp.calls.clear()
    result = reset(world.ctx, ["app2"])
    assert result.ok, result.failures
    assert [(v.vm, v.how, v.why) for v in result.vms] == [
        ("app2", "rebuilt", "no baseline snapshot")
    ]
    assert world.mp.calls_of("delete") == [("delete", "hello-app2")]
    assert world.mp.calls_of("launch") == [("launch", "hello-app2")]


def test_reset_rebuild_relaunches_and_retakes_its_baseline(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    world.mp.calls.clear()
    result = reset(world.ctx, ["app3"], rebuild=True)
    assert result.ok, result.failures
    assert result.baseline == "retaken" and result.vms[0].how == "rebuilt"
    assert world.mp.calls_of("launch") == [("launch", "hello-app3")]
    assert world.mp.calls_of("snapshot") == [("snapshot", "hello-app3", "baseline")]
    assert world.mp.calls_of("stop") == [("stop", "hello-app3")]
    assert "app3" in world.ctx.lab_state.snapshots()["baseline"]["vms"]


def test_reset_rebuilds_an_unknown_instance(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    world.mp.vms["hello-app1"].state = "Unknown"
    result = reset(world.ctx, ["app1"])
    assert result.ok, result.failures
    assert [(v.how, v.why) for v in result.vms] == [("rebuilt", "state Unknown")]


def test_reset_whole_lab_restores_every_vm(make_world) -> None:
    world = make(make_world)
    assert up(world.ctx).ok
    world.mp.calls.clear()
    result = reset(world.ctx)
    assert result.ok and sorted(v.vm for v in result.vms) == ["app1", "app2", "app3", "lb"]
    assert len(world.mp.calls_of("restore")) == 4 and world.mp.calls_of("launch") == []


def test_reset_unknown_vm_is_bad_input_and_touches_nothing(make_world) -> None:
    world = make(make_world)
    with pytest.raises(ConfigError) as err:
        reset(world.ctx, ["web9"])
    assert "no VM named 'web9'" in err.value.message and world.mp.calls == []


# --- preflight -----------------------------------------------------------------------------------------


def test_up_refuses_before_launching_what_cannot_fit_unless_forced(make_world) -> None:
    world = make(make_world, baseline=False)
    world.ctx.host = lambda: HostResources(2, 2 * 1024**3, 500 * 1024**3, "/", 3 * 1024**3)
    with pytest.raises(PreflightError) as err:
        up(world.ctx)
    assert (
        "memory: 4 VM(s) to start need 4.0 GiB; this host has 3.0 GiB in all" in err.value.message
    )
    assert "--force" in (err.value.hint or "")
    assert world.mp.calls_of("launch") == []
    assert up(with_options(world.ctx, force=True)).ok


def test_up_refuses_disks_larger_than_the_free_disk_unless_forced(make_world) -> None:
    """Mistaken input: 4 VMs of 5G on 15 GiB free is refused (it used to pass above a 3 GiB/VM floor)."""
    world = make(make_world, baseline=False)
    world.ctx.host = lambda: HostResources(64, 512 * 1024**3, 15 * 1024**3, "/var/snap/multipass")
    with pytest.raises(PreflightError) as err:
        up(world.ctx)
    assert (
        "disk: 4 new VM(s) ask for 20.0 GiB of disk; 15.0 GiB free in /var/snap/multipass"
        in err.value.message
    )
    assert world.mp.calls_of("launch") == []
    assert up(with_options(world.ctx, force=True)).ok


def test_up_refuses_a_domain_another_lab_claims(make_world) -> None:
    world = make(make_world, baseline=False)
    world.hosts.write_text(
        "127.0.0.1 localhost\n# BEGIN labctl other\n10.1.1.1\thello.lab\n# END labctl other\n"
    )
    with pytest.raises(PreflightError) as err:
        up(world.ctx)
    assert "hello.lab already claimed by lab 'other'" in err.value.message
    assert world.mp.calls_of("launch") == []


# --- lock, interruption, hosts backup --------------------------------------------------------------------

HOLD = """
import fcntl, json, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); json.dump({"pid": os.getpid(), "command": "up", "since": time.time()}, f); f.flush()
print("held", flush=True)
time.sleep(30)
"""


def test_a_second_labctl_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(
    make_world,
) -> None:
    world = make(make_world, baseline=False)
    lock = world.ctx.lab_state.lock_path
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for attempt in (
            lambda: up(world.ctx),
            lambda: reset(world.ctx),
            lambda: save(world.ctx, "x"),
        ):
            with pytest.raises(LabBusyError) as err:
                attempt()
            assert f"PID {holder.pid}" in err.value.message and "`labctl up`" in err.value.message
        assert world.mp.calls_of("launch") == []
    finally:
        holder.kill()
        holder.wait(10)
    # killed: the kernel dropped the flock; its PID is still written in the file
    assert up(world.ctx).ok
    assert any(
        e.stage == "lock" and f"PID {holder.pid}" in e.message and "no longer running" in e.message
        for e in world.events
    )
    assert lock.read_text() == ""  # a clean release leaves no holder


def test_ctrl_c_mid_launch_says_what_exists_and_a_rerun_converges(make_world) -> None:
    world = make(make_world, baseline=False)
    world.hosts.write_text("127.0.0.1 localhost\r\n# a comment, kept\r\n10.0.0.1  router\n")
    before = world.hosts.read_bytes()

    def interrupt(name: str) -> None:
        raise KeyboardInterrupt

    world.mp.launch_hook = interrupt
    with pytest.raises(UpInterruptedError) as err:
        up(with_options(world.ctx, max_parallel=1))
    assert err.value.exit_code == 130
    [launched] = [c[1] for c in world.mp.calls_of("launch")]  # nothing more was launched
    assert f"{launched} (Starting)" in err.value.message and "not launched:" in err.value.message
    world.mp.launch_hook = None
    result = up(with_options(world.ctx, max_parallel=1))
    assert result.ok, result.failures
    launches = [c[1] for c in world.mp.calls_of("launch")]
    assert sorted(launches) == sorted(set(launches)) and len(world.mp.vms) == 4
    assert up(world.ctx).ok
    text = world.hosts.read_bytes()
    assert text.startswith(before) and text.count(b"hello.lab") == 1
    assert world.ctx.lab_state.hosts_backup.read_bytes() == before


def test_down_keeps_a_hosts_backup_and_every_foreign_byte(make_world) -> None:
    world = make(make_world, baseline=False)
    original = b"127.0.0.1 localhost\n\n#   odd   spacing\t\n::1 ip6-localhost\n"
    world.hosts.write_bytes(original)
    assert up(world.ctx).ok
    with_block = world.hosts.read_bytes()
    from labctl.ops.down import down

    down(world.ctx)
    assert world.hosts.read_bytes() == original
    assert world.ctx.lab_state.hosts_backup.read_bytes() == with_block
    assert world.ctx.lab_state.snapshots() == {}
    assert os.access(world.hosts, os.R_OK)
