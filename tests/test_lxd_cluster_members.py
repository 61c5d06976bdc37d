"""What the LXD engine learns from the cluster itself: its members (online or not, even one that
holds no instance) and what each member has (measured there by LXD), read from the fake `lxc`
with the recorded member shape, and from odd answers that must not crash."""

from __future__ import annotations

import pytest

from labctl.engine.base import ClusterMember, ClusterMembers, MemberCapacity
from labctl.engine.lxd.adapter import LxdEngine
from labctl.engine.lxd.cluster import parse_capacity, parse_members
from labctl.errors import EngineError
from tests.fake_lxc import shapes
from tests.fake_lxc.fixture import FakeLxc

GIB = 1024**3


@pytest.fixture
def engine(fake_lxc: FakeLxc) -> LxdEngine:
    return LxdEngine(env={**fake_lxc.env, "LABCTL_LXC": str(fake_lxc.executable)})


def test_the_lxd_engine_answers_for_its_cluster(engine: LxdEngine) -> None:
    assert isinstance(engine, ClusterMembers)


def test_members_in_the_clusters_order_all_online(fake_lxc: FakeLxc, engine: LxdEngine) -> None:
    fake_lxc.make_cluster(["m1", "m2", "m3"])
    assert engine.members() == [
        ClusterMember("m1", True, "Online: Fully operational"),
        ClusterMember("m2", True, "Online: Fully operational"),
        ClusterMember("m3", True, "Online: Fully operational"),
    ]


def test_a_member_that_stopped_answering_is_offline_with_the_clusters_words(
    fake_lxc: FakeLxc, engine: LxdEngine
) -> None:
    fake_lxc.make_cluster(["m1", "m2"])
    fake_lxc.set_member_down("m2")  # holds no instance: only the member list can tell
    m1, m2 = engine.members()
    assert m1.online and m1.name == "m1"
    assert not m2.online and m2.name == "m2"
    assert m2.detail.startswith("Offline: No heartbeat for ")


def test_a_server_that_is_no_cluster_has_no_members(engine: LxdEngine) -> None:
    assert engine.members() == []


def test_capacity_is_what_the_member_measured_including_the_root_pools_free_space(
    fake_lxc: FakeLxc, engine: LxdEngine
) -> None:
    fake_lxc.make_cluster(["m1", "m2"])
    fake_lxc.configure(
        member_resources={
            "m2": {
                "cpus": 8,
                "memory_total": 32 * GIB,
                "memory_used": 5 * GIB,
                "pool_total": 200 * GIB,
                "pool_used": 50 * GIB,
            }
        }
    )
    assert engine.member_capacity("m2") == MemberCapacity(
        8, 32 * GIB, 5 * GIB, 150 * GIB, "default"
    )
    assert engine.member_capacity("m1") == MemberCapacity(4, 16 * GIB, 2 * GIB, 90 * GIB, "default")
    asked = [c["argv"][-1] for c in fake_lxc.calls("query")]
    assert "local:/1.0/resources?target=m2" in asked
    assert "local:/1.0/storage-pools/default/resources?target=m2" in asked


def test_a_member_that_is_down_cannot_be_measured(fake_lxc: FakeLxc, engine: LxdEngine) -> None:
    fake_lxc.make_cluster(["m1", "m2"])
    fake_lxc.set_member_down("m2")
    with pytest.raises(EngineError, match=r"127\.0\.1\.2:8443"):
        engine.member_capacity("m2")


def test_the_recorded_member_shape_reads_as_members() -> None:
    rows = [
        shapes.cluster_member("m1", "127.0.1.1:8443", ["database-leader"], None),
        shapes.cluster_member("m2", "127.0.1.2:8443", ["database-standby"], 42.0),
        shapes.cluster_member("m3", "127.0.1.3:8443", [], None) | {"status": "Evacuated"},
    ]
    found = parse_members(rows)
    assert [(m.name, m.online) for m in found] == [("m1", True), ("m2", False), ("m3", False)]
    assert found[2].detail == "Evacuated: Fully operational"


@pytest.mark.parametrize(
    "document",
    [None, {}, "text", [{"status": "Online"}], [{"server_name": 3}], [7, "m1"]],
)
def test_odd_member_answers_name_no_member_and_do_not_crash(document: object) -> None:
    assert parse_members(document) == []


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "cpu.total"),
        ({"cpu": {"total": 2}}, "memory.total"),
        ({"cpu": {"total": 2}, "memory": {"total": 4 * GIB}}, "memory.used"),
        ({"cpu": {"total": True}, "memory": {"total": 1, "used": 0}}, "cpu.total"),
        ({"cpu": {"total": 2}, "memory": {"total": -1, "used": 0}}, "memory.total"),
    ],
)
def test_resources_without_a_figure_are_an_engine_error_naming_it(
    document: object, field: str
) -> None:
    with pytest.raises(EngineError, match=f"no {field} in it"):
        parse_capacity(document)


def test_a_pool_that_says_nothing_leaves_the_disk_unknown_not_zero() -> None:
    resources = {"cpu": {"total": 2}, "memory": {"total": 4 * GIB, "used": GIB}}
    assert parse_capacity(resources, "default", {"space": {}}) == MemberCapacity(
        2, 4 * GIB, GIB, None, ""
    )
    assert parse_capacity(resources).disk_free is None
