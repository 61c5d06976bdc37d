"""The LXD test infrastructure on a real standalone daemon: the image hands cloud-init its
user-data, services answer from the host, exec runs as root and as the default user, and a
reboot, a snapshot of a running container and its restore bring the services back.

Two containers are launched once for the module (in parallel): `lxt-web` with the user-data in
`cloud-init.user-data`, `lxt-legacy` with it in the legacy `user.user-data` key (the image's
template falls back to it, as LXD's own images do).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.fake_lxc.recordings import RECORDED, calls, recorded, shape
from tests.lxd import guest
from tests.lxd.instances import instance, launch, poll, wait_cloud_init, wait_ipv4
from tests.lxd.server import SERVER_SUBNET, LxdServer

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

WEB, LEGACY = "lxt-web", "lxt-legacy"


@dataclass(frozen=True)
class Guests:
    server: LxdServer
    ips: dict[str, str]
    cloud_init: dict[str, str]


@pytest.fixture(scope="module")
def guests(lxd_server: LxdServer) -> Guests:
    daemon, alias = lxd_server.daemon, lxd_server.image_alias
    configs = {
        WEB: {"cloud-init.user-data": guest.user_data(WEB)},
        LEGACY: {"user.user-data": guest.user_data(LEGACY)},
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(launch, daemon, alias, n, config=c) for n, c in configs.items()]:
            done.result()
        status = dict(
            zip(configs, pool.map(lambda n: wait_cloud_init(daemon, n), configs), strict=True)
        )
    ips = {name: wait_ipv4(daemon, name) for name in configs}
    return Guests(lxd_server, ips, status)


def test_cloud_init_runs_the_user_data_that_the_image_templates_seed(guests: Guests) -> None:
    daemon = guests.server.daemon
    for name in (WEB, LEGACY):
        assert "status: done" in guests.cloud_init[name], guests.cloud_init[name]
        assert "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud-net]" in guests.cloud_init[name]
        assert guest.exec_out(daemon, name, "cat", guest.MARKER_FILE) == f"{name}\n"
        assert guest.exec_out(daemon, name, "hostname").strip() == name
    seed = guest.exec_out(daemon, WEB, "cat", "/var/lib/cloud/seed/nocloud-net/meta-data")
    assert f"instance-id: {WEB}" in seed


def test_services_answer_from_the_host_at_the_bridge_address(guests: Guests) -> None:
    for name, ip in guests.ips.items():
        assert ip in [str(host) for host in SERVER_SUBNET.hosts()]
        guest.wait_serving(ip, name, timeout=30)


def test_exec_runs_as_root_and_as_the_default_user_with_sudo(guests: Guests) -> None:
    daemon = guests.server.daemon
    assert guest.exec_out(daemon, WEB, "whoami") == "root\n"
    as_ubuntu = daemon.lxc(
        "exec",
        WEB,
        "--user",
        "1000",
        "--group",
        "1000",
        "--env",
        "HOME=/home/ubuntu",
        "--",
        "sh",
        "-c",
        "id -un; id -gn; sudo -n id -u",
    )
    assert as_ubuntu.stdout == "ubuntu\nubuntu\n0\n"
    via_sudo = guest.exec_out(
        daemon, WEB, "sudo", "-u", "ubuntu", "-H", "sh", "-c", "whoami; sudo -n whoami"
    )
    assert via_sudo == "ubuntu\nroot\n"
    remote_code = daemon.lxc("exec", WEB, "--", "sh", "-c", "exit 33", check=False)
    assert remote_code.returncode == 33
    missing = daemon.lxc("exec", WEB, "--", "no-such-command", check=False)
    assert (missing.returncode, missing.stderr) == (127, "Error: Command not found\n")


def test_a_reboot_brings_nginx_and_the_node_unit_back(guests: Guests) -> None:
    daemon, ip = guests.server.daemon, guests.ips[WEB]
    guest.wait_serving(ip, WEB, timeout=60)
    guest.exec_out(daemon, WEB, "touch", "/run/before-reboot")  # /run is a tmpfs: gone at boot
    daemon.lxc("exec", WEB, "--", "reboot")
    poll("the reboot to begin", lambda: _rebooted(guests) or None, timeout=120)
    guest.wait_serving(ip, WEB, timeout=120)
    assert guest.exec_out(daemon, WEB, "systemctl", "is-active", "nginx", "smoke-app") == (
        "active\nactive\n"
    )


def _rebooted(guests: Guests) -> bool:
    """The container is up again with a fresh /run (an exec error while it is down is rc 1
    too, so the answer is read from stdout)."""
    probe = guests.server.daemon.lxc(
        "exec",
        WEB,
        "--",
        "sh",
        "-c",
        "test -e /run/before-reboot || echo fresh",
        check=False,
        timeout=30,
    )
    return probe.stdout == "fresh\n"


def test_snapshot_of_a_running_container_and_restore(guests: Guests) -> None:
    daemon, ip = guests.server.daemon, guests.ips[WEB]
    guest.wait_serving(ip, WEB, timeout=60)
    daemon.lxc("snapshot", WEB, "baseline")
    after_snapshot = instance(daemon, WEB)
    assert after_snapshot["status"] == "Running"  # taken without stopping it
    assert [snap["name"] for snap in after_snapshot["snapshots"]] == ["baseline"]
    guest.exec_out(daemon, WEB, "sh", "-c", "systemctl stop nginx smoke-app && touch /root/broken")
    guest.wait_not_serving(ip, WEB)
    daemon.lxc("restore", WEB, "baseline")
    assert instance(daemon, WEB)["status"] == "Running"  # restarted by the restore itself
    guest.wait_serving(ip, WEB, timeout=120)
    gone = daemon.lxc("exec", WEB, "--", "test", "-e", "/root/broken", check=False)
    assert gone.returncode == 1
    daemon.lxc("delete", f"{WEB}/baseline")
    assert instance(daemon, WEB)["snapshots"] in (None, [])


def test_the_fake_s_recordings_still_match_this_daemon(guests: Guests) -> None:
    """The fake lxc is checked against tests/fixtures/lxd; this keeps those recordings true."""
    daemon = guests.server.daemon
    live = instance(daemon, WEB)
    running = next(i for i in recorded("list.json") if i["status"] == "Running")
    # state.disk has the root's usage once the btrfs pool has quotas on, which the first
    # instance with a root size turns on (labctl's all have one): it depends on what ran first
    for record in (live, running):
        record["state"].pop("disk", None)
    assert shape(live) == shape(running)
    assert daemon.lxc("version").stdout == (RECORDED / "version.txt").read_text()
    real = calls()
    for situation in ("exec-missing", "launch-no-image", "launch-target-standalone"):
        argv = real[situation]["argv"]
        again = daemon.lxc(*argv, check=False)
        assert (again.returncode, again.stderr) == (
            real[situation]["rc"],
            real[situation]["stderr"],
        )
