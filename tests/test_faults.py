"""Fault matrix: `labctl up` / `status` / `down` against the subprocess fake multipass (plain
backend) with one fault injected at a time.

For every fault: the user sees one clear line naming what happened (plus what was left and what to
do), the exit code is right, there is no traceback, `labctl down` leaks no instance (a foreign one
is left untouched), and once the fault is gone a rerun of `up` converges. With the plain fake
"converges" means `up` gets as far as it can: every stage passes up to `serve` (nothing listens on
the fake LB address, as in test_cli.py), and every lab VM exists exactly once (launched once).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from labctl.cli.main import app
from labctl.ops import logtail, wire
from tests.fake_multipass.fixture import FakeMultipass

# Small waits keep the matrix fast; `check` bounds status's per-VM exec (waits.check).
LAB = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}}
defaults: {memory: 256M, disk: 1G}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 3s, cloud_init: 3s, serve: 1s, check: 2s}
"""
INSTANCES = ["hello-app1", "hello-app2", "hello-lb"]
LB_APPLY = ["/usr/local/sbin/labctl-lb-apply"]
SERVE_STAGE = "serve [lb]: http://hello.lab/: not ready after 1s"
HOSTS_TEXT = "127.0.0.1 localhost\n"


@dataclass
class World:
    fake: FakeMultipass
    lab: Path
    hosts: Path
    state: Path

    def run(self, *args: str) -> Result:
        wait_for_log_tails()
        env = {
            **self.fake.env,
            "LABCTL_MULTIPASS": str(self.fake.executable),
            "LABCTL_HOSTS_FILE": str(self.hosts),
            "LABCTL_STATE_DIR": str(self.state),
        }
        result = CliRunner().invoke(app, [*args, "-f", str(self.lab)], env=env)
        assert "Traceback" not in result.output and "internal error" not in result.output, (
            result.output
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        return result

    def launches(self) -> collections.Counter[str]:
        # Only launches that created an instance: with parallel launches, the call that meets a
        # daemon that went down can be a launch, which creates nothing and is rightly repeated.
        calls = [call for call in self.fake.calls("launch") if call["rc"] == 0]
        return collections.Counter(call["argv"][call["argv"].index("--name") + 1] for call in calls)

    def assert_converges(self) -> Result:
        """Fault gone: up passes every stage the plain fake has and launches nothing twice."""
        result = self.run("up")
        assert result.exit_code == 1, result.output
        assert SERVE_STAGE in result.output, result.output
        assert "✓ lb         lb nginx config applied" in result.output
        assert sorted(self.fake.instances()) == INSTANCES
        assert all(inst["state"] == "Running" for inst in self.fake.instances().values())
        assert set(self.launches()) <= set(INSTANCES)
        assert max(self.launches().values()) == 1, self.launches()
        return result

    def assert_down_leaves(self, *foreign: str) -> None:
        result = self.run("down")
        assert result.exit_code == 0, result.output
        assert sorted(self.fake.instances()) == sorted(foreign)


def wait_for_log_tails() -> None:
    """Let the last command's cloud-init log tails end, as they do when a real labctl exits.

    In process they outlive `up` by one exec: started just before `up` released the lab lock, that
    exec's child holds a copy of the lock's descriptor (the flock with it) until it has started,
    and on a loaded machine the next command was once refused as busy: the tail's first read and
    waits.cloud_init are both due at 3 s here."""
    for thread in threading.enumerate():
        if thread.name.startswith("log-"):
            thread.join(logtail.LOG_TAIL_TIMEOUT + 5)


@pytest.fixture
def world(fake_multipass: FakeMultipass, tmp_path: Path) -> World:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS_TEXT)
    fake_multipass.on_exec("hello-lb", LB_APPLY, stdout="applied\n")
    return World(fake_multipass, lab, hosts, tmp_path / "state")


def one_line(output: str, needle: str) -> str:
    lines = [line for line in output.splitlines() if needle in line]
    assert lines, f"{needle!r} not in:\n{output}"
    return lines[0]


def assert_up_stopped_line(output: str, *, up_continues: bool = True) -> None:
    line = one_line(output, "up stopped:")
    assert "nothing was deleted" in line and "labctl down" in line
    # "up again continues" only when it does (never both down+up and "up continues")
    assert ("`labctl up` again continues" in line) == up_continues, line


def test_launch_timeout_leaves_the_instance_and_a_rerun_waits_for_it(world: World) -> None:
    # The daemon gives up on cloud-init (exit 2); cloud-init finishes 1 s later in the background.
    world.fake.configure(launch_timeout={"hello-app2": 1})
    result = world.run("up")
    assert result.exit_code == 1
    line = one_line(result.output, "✗ launch [app2]:")
    assert "launching hello-app2 timed out (cloud-init did not finish)" in line
    assert "multipass left the instance hello-app2 behind" in line
    # the one next step that works: the VM is Running, cloud-init still going
    assert (
        "hello-app2 is Running and still provisioning: `labctl up` again keeps it and waits"
        in result.output
    )
    assert "Remove it with `labctl down`" not in result.output
    assert_up_stopped_line(result.output)
    assert sorted(world.fake.instances()) == INSTANCES  # left behind, as multipass does

    world.fake.configure(launch_timeout=None)
    time.sleep(1.0)
    rerun = world.assert_converges()
    assert "✓ cloud-init app2 done" in rerun.output  # kept and waited for, not relaunched
    world.assert_down_leaves()


def test_client_timeout_exit_5_names_the_instance_left_behind(world: World) -> None:
    world.fake.configure(client_timeout=["hello-app1"])
    result = world.run("up")
    assert result.exit_code == 1
    line = one_line(result.output, "✗ launch [app1]:")
    assert "launching hello-app1 timed out (no `Launched:` within --timeout 3 s)" in line
    assert "multipass left the instance hello-app1 behind" in line
    # the daemon finishes the launch in the background: up again is the way on
    assert "and still provisioning: `labctl up` again keeps it" in result.output
    assert [c["rc"] for c in world.fake.calls("launch") if "hello-app1" in c["argv"]] == [5]

    world.fake.configure(client_timeout=None)
    world.assert_converges()
    world.assert_down_leaves()


def test_daemon_down_mid_up_says_so_once_and_a_rerun_continues(world: World) -> None:
    # version + list + 3 launches go through, then the daemon is gone (cloud-init waits fail).
    world.fake.configure(fail_after_calls=5)
    result = world.run("up")
    assert result.exit_code == 1
    assert "cannot connect to the Multipass daemon" in one_line(result.output, "✗ ")
    assert result.output.count("Is multipassd running?") == 1
    assert_up_stopped_line(result.output)

    world.fake.configure(fail_after_calls=None)
    world.assert_converges()
    world.assert_down_leaves()


def test_cloud_init_error_shows_the_log_and_a_rebuild_recovers(world: World) -> None:
    world.fake.configure(cloud_init_error=["hello-app1"])
    result = world.run("up")
    assert result.exit_code == 1
    assert "✗ cloud-init [app1]: cloud-init failed on hello-app1" in result.output
    assert "last log lines:" in result.output and "runcmd" in result.output
    assert "The instance hello-app1 was left for inspection" in result.output
    assert "then `labctl reset app1 --rebuild` launches it again" in result.output
    assert "`labctl down` + `labctl up`" not in result.output
    assert_up_stopped_line(result.output, up_continues=False)

    world.fake.configure(cloud_init_error=None)
    again = world.run("reset", "app1", "--rebuild")  # what the hint says to do
    assert "app1: rebuilt (--rebuild)" in again.output and SERVE_STAGE in again.output
    assert world.launches() == {"hello-app1": 2, "hello-app2": 1, "hello-lb": 1}
    world.assert_down_leaves()


def test_vm_without_ip_stops_before_the_lb_and_a_rerun_wires_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # up lists the VMs again ADDRESS_POLLS times before it gives up on the IP: the same bound,
    # polled faster (a second apart it was a minute of this test's idle wait)
    monkeypatch.setattr(wire, "ADDRESS_POLL", 0.05)
    world.fake.configure(no_ip=["hello-app2"])
    result = world.run("up")
    assert result.exit_code == 1
    line = one_line(result.output, "✗ ip [app2]:")
    assert "hello-app2 has no IPv4 address (the engine lists: N/A)" in line
    assert world.fake.calls("exec") and not [
        c for c in world.fake.calls("exec") if LB_APPLY[0] in c["argv"]
    ]  # the LB was never pointed at a half-known set of backends
    assert world.hosts.read_text() == HOSTS_TEXT
    assert_up_stopped_line(result.output)
    assert "2 VM(s) ready (app1, lb)" in result.output  # a VM without an IP is not ready

    assert "`labctl exec app2 -- sudo reboot`) and `labctl up` again" in result.output
    world.fake.configure(no_ip=None)
    # The hint's `multipass restart`; the fake's restart keeps the old IP list, stop+start not.
    assert world.fake.run("stop", "hello-app2").returncode == 0
    assert world.fake.run("start", "hello-app2").returncode == 0
    world.assert_converges()
    world.assert_down_leaves()


def test_exec_hang_in_cloud_init_wait_is_bounded_and_names_the_vm(world: World) -> None:
    world.fake.configure(exec_hang=["hello-app2"])
    started = time.monotonic()
    result = world.run("up")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 15, f"up hung for {elapsed:.0f} s"
    line = one_line(result.output, "✗ cloud-init [app2]:")
    assert "cloud-init on hello-app2 did not finish within 3 s (waits.cloud_init)" in line
    assert "hello-app2 was left running" in line
    assert "`labctl up` again keeps the VM and waits again" in result.output
    assert "multipassd may be wedged" not in result.output

    world.fake.configure(exec_hang=None)
    world.assert_converges()
    world.assert_down_leaves()


def test_exec_hang_in_status_is_bounded_and_names_the_vm(world: World) -> None:
    world.run("up")
    world.fake.configure(exec_hang=["hello-app2"])
    started = time.monotonic()
    result = world.run("status")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 15, f"status hung for {elapsed:.0f} s"
    line = one_line(result.output, "- app2: health check hung")
    assert "no answer within 2 s (waits.check)" in line
    assert "restart it, or `labctl reset app2` puts it back to its baseline" in line
    assert "app1: health check hung" not in result.output

    world.fake.configure(exec_hang=None)
    assert "health check hung" not in world.run("status").output
    world.assert_converges()
    world.assert_down_leaves()


def test_foreign_instance_is_refused_and_never_touched(world: World) -> None:
    world.fake.add_instance("hello-app1", state="Running")
    result = world.run("up")
    assert result.exit_code == 1
    line = one_line(result.output, "error:")
    assert "already used by something that is not lab 'hello': hello-app1 (Running)" in line
    assert "labctl never touches instances it did not create" in result.output
    assert world.fake.calls("launch") == []

    down = world.run("down")
    assert down.exit_code == 0 and "left alone (not this lab's): hello-app1" in down.output
    assert sorted(world.fake.instances()) == ["hello-app1"]
    assert world.fake.instance("hello-app1")["state"] == "Running"
    # Only ever read: the ownership check cats labctl's marker file (absent here).
    touched = [c["argv"] for c in world.fake.calls() if "hello-app1" in c["argv"]]
    assert touched and all(
        argv == ["exec", "hello-app1", "--", "cat", "/etc/labctl/instance.json"] for argv in touched
    ), touched

    # The user removes it, as the hint says; then up converges.
    assert world.fake.run("delete", "--purge", "hello-app1").returncode == 0
    world.assert_converges()
    world.assert_down_leaves()


# --- disk full while writing the hosts file ------------------------------------------------------


@contextlib.contextmanager
def full_filesystem(directory: Path) -> Iterator[str]:
    """A 64 KiB tmpfs at `directory`, filled up (root only); yields how ENOSPC is produced."""
    directory.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if os.geteuid() != 0 or mount.returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _assert_hosts_disk_full(world: World) -> None:
    result = world.run("up")
    assert result.exit_code == 1
    line = one_line(result.output, "✗ hosts:")
    assert f"cannot write {world.hosts}: No space left on device" in line
    assert "the VMs are up and nginx points at them, only the hosts entry is missing" in line
    assert "run `labctl up` again, or add this line" in result.output
    assert world.hosts.read_text() == HOSTS_TEXT  # untouched
    assert (
        sorted(p.name for p in world.hosts.parent.iterdir() if p.name.startswith(".labctl")) == []
    )


def test_disk_full_while_writing_the_hosts_file_tmpfs(world: World, tmp_path: Path) -> None:
    with full_filesystem(tmp_path / "etc"):
        world.hosts = tmp_path / "etc" / "hosts"
        world.hosts.write_text(HOSTS_TEXT)
        world.hosts.chmod(0o644)
        filler = _fill(world.hosts.parent)
        _assert_hosts_disk_full(world)

        filler.unlink()  # space is back
        world.assert_converges()
        text = world.hosts.read_text()
        assert text.startswith(HOSTS_TEXT) and "# BEGIN labctl hello\n" in text
        assert world.hosts.stat().st_mode & 0o777 == 0o644
        world.assert_down_leaves()
        assert world.hosts.read_text() == HOSTS_TEXT


def test_disk_full_while_writing_the_hosts_file_injected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same fault without root: the hosts writer's fsync reports ENOSPC (where a full disk shows)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(world.hosts.parent / ".labctl-hosts")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)  # the os module labctl.host.hostsfile writes through
    _assert_hosts_disk_full(world)
    monkeypatch.undo()
    world.assert_converges()
    world.assert_down_leaves()
    assert world.hosts.read_text() == HOSTS_TEXT
