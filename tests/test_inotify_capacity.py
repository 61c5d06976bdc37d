"""System containers share the host's kernel: every unprivileged container's root is the same
host user, so they all draw on one fs.inotify.max_user_instances. Past it, systemd stalls in the
newest containers and their cloud-init never finishes (a class on LXD hung that way at 128), so
`up`'s capacity preflight and `doctor` refuse a class that needs more, with the sysctl to run."""

from __future__ import annotations

from pathlib import Path

from labctl.config.load import LabFile, parse_lab
from labctl.engine.lxd.adapter import CAPABILITIES as LXD_CAPABILITIES
from labctl.host.resources import HostResources, inotify_limit
from labctl.host.state import LabState
from labctl.ops.context import LabContext
from labctl.ops.doctor import INOTIFY_PER_CONTAINER, Check, capacity_checks
from tests.memory_engine import MemoryEngine

GIB = 1024**3


def lab_context(tmp_path: Path, engine_lines: str, vms: int, *, on_lxd: bool = True) -> LabContext:
    app_vms = "".join(f"  - {{name: app{n}, roles: [app]}}\n" for n in range(1, vms))
    lab = parse_lab(
        f"name: big\ndomain: big.lab\n{engine_lines}"
        "app: {name: hello, source: {builtin: hello}}\n"
        "defaults: {cpus: 1, memory: 128M, disk: 1G}\n"
        f"vms:\n{app_vms}  - {{name: lb, roles: [lb]}}\n"
    )
    engine = MemoryEngine(capabilities=LXD_CAPABILITIES) if on_lxd else MemoryEngine()
    return LabContext(
        lab_file=LabFile(lab, tmp_path / "lab.yaml", "0" * 64),
        engine=engine,
        state=LabState(tmp_path / "state"),
    )


def host(limit: int | None) -> HostResources:
    return HostResources(64, 512 * GIB, 4096 * GIB, "/", 512 * GIB, limit)


def inotify(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.name == "inotify"]


def test_more_containers_than_the_limit_allows_is_refused_with_the_sysctl(tmp_path: Path) -> None:
    ctx = lab_context(tmp_path, "engine: {name: lxd}\n", vms=30)
    [check] = inotify(capacity_checks(ctx, ctx.lab.vms, ctx.lab.vms, host=host(128)))
    assert check.status == "fail"
    assert (
        f"30 containers need about {30 * INOTIFY_PER_CONTAINER} inotify instances" in check.detail
    )
    assert "this host allows 128 for all of them together" in check.detail
    assert "sudo sysctl -w fs.inotify.max_user_instances=1024" in check.hint


def test_a_lab_within_the_limit_a_vm_lab_and_an_unknown_limit_get_no_line(tmp_path: Path) -> None:
    small = lab_context(tmp_path, "engine: {name: lxd}\n", vms=3)
    assert not inotify(capacity_checks(small, small.lab.vms, small.lab.vms, host=host(128)))
    vms = lab_context(tmp_path, "engine: {name: lxd, type: vm}\n", vms=30)
    assert not inotify(capacity_checks(vms, vms.lab.vms, vms.lab.vms, host=host(128)))
    multipass = lab_context(tmp_path, "", vms=30, on_lxd=False)
    assert not inotify(capacity_checks(multipass, multipass.lab.vms, [], host=host(128)))
    unknown = lab_context(tmp_path, "engine: {name: lxd}\n", vms=30)
    assert not inotify(capacity_checks(unknown, unknown.lab.vms, [], host=host(None)))


def test_the_limit_is_read_from_proc_and_unreadable_means_unknown(tmp_path: Path) -> None:
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    assert inotify_limit(limit) == 128
    assert inotify_limit(tmp_path / "missing") is None
    limit.write_text("lots\n")
    assert inotify_limit(limit) is None
