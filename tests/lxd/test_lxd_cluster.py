"""The LXD test cluster (3 member daemons on loopback addresses, containers on a host bridge
standing in for the classroom LAN): `--target` places a container on each member, `location`
says where, the host reaches every container at its LAN address, and a member that stops
takes only its own containers down (a member whose daemon dies leaves them serving).

One container per member is launched once for the module, in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.lxd import guest
from tests.lxd.cluster import LAN_SUBNET, LxdCluster
from tests.lxd.instances import instance, launch, poll, wait_cloud_init, wait_ipv4

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

MEMBER_DOWN_EXEC_ERROR = "Error: Missing event connection with target cluster member\n"


@dataclass(frozen=True)
class Placed:
    cluster: LxdCluster
    where: dict[str, str]  # container -> member
    ips: dict[str, str]


def _container(member: str) -> str:
    return f"lxt-on-{member}"


@pytest.fixture(scope="module")
def placed(lxd_cluster: LxdCluster) -> Placed:
    client, alias = lxd_cluster.client(), lxd_cluster.image_alias
    where = {_container(member): member for member in lxd_cluster.names}

    def bring_up(name: str) -> str:
        launch(client, alias, name, user_data=guest.user_data(name), target=where[name])
        return wait_cloud_init(client, name)

    with ThreadPoolExecutor(max_workers=len(where)) as pool:
        status = dict(zip(where, pool.map(bring_up, where), strict=True))
    for name, output in status.items():
        assert "status: done" in output, f"{name}: {output}"
    return Placed(lxd_cluster, where, {name: wait_ipv4(client, name) for name in where})


def test_target_places_a_container_on_each_member_and_location_says_so(placed: Placed) -> None:
    members = placed.cluster.client().lxc_json("cluster", "list")
    assert sorted(m["server_name"] for m in members) == sorted(placed.cluster.names)
    assert {m["status"] for m in members} == {"Online"}
    for member in placed.cluster.members:  # every member gives the same answer
        located = {i["name"]: i["location"] for i in member.lxc_json("list")}
        assert located == placed.where


def test_the_host_reaches_every_member_s_container_at_its_lan_address(placed: Placed) -> None:
    for name, ip in placed.ips.items():
        assert ip in [str(host) for host in LAN_SUBNET.hosts()]
        guest.wait_serving(ip, name, timeout=30)


def test_a_stopped_member_takes_only_its_own_containers_down(placed: Placed) -> None:
    cluster, stopped = placed.cluster, placed.cluster.names[1]
    victim = _container(stopped)
    others = [name for name in placed.where if name != victim]
    cluster.stop_member(stopped)
    try:
        client = cluster.client(avoid=stopped)
        assert instance(client, victim)["status"] == "Error"
        guest.wait_not_serving(placed.ips[victim], victim)
        refused = client.lxc("exec", victim, "--", "true", check=False, timeout=60)
        assert (refused.returncode, refused.stderr) == (1, MEMBER_DOWN_EXEC_ERROR)
        for name in others:
            assert instance(client, name)["status"] == "Running"
            assert guest.serving(placed.ips[name], name)
            assert guest.exec_out(client, name, "hostname") == f"{name}\n"
    finally:
        cluster.start_member(stopped)
    # back: the member restarts the containers it was running when it went down
    poll(
        f"{victim} to run again",
        lambda: instance(client, victim)["status"] == "Running" or None,
        timeout=120,
    )
    guest.wait_serving(placed.ips[victim], victim, timeout=120)


def test_a_killed_member_daemon_leaves_its_containers_serving(placed: Placed) -> None:
    cluster, killed = placed.cluster, placed.cluster.names[2]
    victim = _container(killed)
    cluster.kill_member(killed)
    try:
        client = cluster.client(avoid=killed)
        assert instance(client, victim)["status"] == "Error"  # unmanageable ...
        assert guest.serving(placed.ips[victim], victim)  # ... but still serving
    finally:
        cluster.start_member(killed)
    poll(
        f"{victim} to be managed again",
        lambda: instance(client, victim)["status"] == "Running" or None,
        timeout=120,
    )
