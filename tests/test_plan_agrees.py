"""`plan` promises what `up` does: both run on the same labs, and the engine commands plan shows
are exactly the ones up then runs (every stage, a partial lab, a class student, --no-hosts, a
lab larger than its launch slots)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.engine.base import Engine, ExecResult, LaunchSpec
from labctl.engine.proxy import EngineProxy
from labctl.host.state import LabState
from labctl.ops.classroom.contexts import ClassContext, HostRef
from labctl.ops.context import LabContext, RunOptions
from labctl.ops.plan import plan
from labctl.ops.up import up
from labctl.render.userdata import CLOUD_INIT_LOG_COMMAND, INSTANCE_MARKER_PATH
from tests.lab_world import StandInLb, hosts_file_resolver
from tests.memory_engine import MemoryEngine

# Reads that are not part of what up does to the lab: the ownership marker plan asks for real, and
# the cloud-init log lines shown while waiting (a courtesy that depends on timing).
_NOT_PLANNED = (["cat", INSTANCE_MARKER_PATH], CLOUD_INIT_LOG_COMMAND(1))


class CallLog(EngineProxy):
    """Writes down the command line of every engine call up makes, as plan's recording does."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.argv: list[tuple[str, ...]] = []

    def _log(self, argv: Sequence[str]) -> None:
        self.argv.append(tuple(argv))

    def ready(self) -> str:
        self._log(self.inner.version_argv())
        return super().ready()

    def list(self) -> list:  # type: ignore[type-arg]
        self._log(self.inner.list_argv())
        return super().list()

    def exec(
        self, name: str, argv: Sequence[str], *, stdin: str | None = None, timeout: float,
        check: bool = False,
    ) -> ExecResult:  # fmt: skip
        if list(argv) not in _NOT_PLANNED:
            self._log(self.inner.exec_argv(name, argv))
        return super().exec(name, argv, stdin=stdin, timeout=timeout, check=check)

    def launch(self, spec: LaunchSpec) -> None:
        self._log(self.inner.launch_argv(spec))
        super().launch(spec)

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        self._log(self.inner.start_argv(names, timeout=timeout))
        super().start(names, timeout=timeout)

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        self._log(self.inner.stop_argv(names, force=force, timeout=timeout))
        super().stop(names, force=force, timeout=timeout)

    def recover(self, names: Sequence[str]) -> None:
        self._log(self.inner.recover_argv(names))
        super().recover(names)

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        self._log(self.inner.snapshot_argv(name, snapshot, comment=comment))
        super().snapshot(name, snapshot, comment=comment)


def planned(ctx: LabContext) -> Counter[tuple[str, ...]]:
    steps = plan(ctx).steps
    return Counter(tuple(step.argv) for step in steps if step.argv and not _excluded(step.argv))


def _excluded(argv: Sequence[str]) -> bool:
    command = list(argv[argv.index("--") + 1 :]) if "--" in argv else []
    return command in _NOT_PLANNED


def ran(ctx: LabContext) -> tuple[Counter[tuple[str, ...]], bool]:
    log = CallLog(ctx.engine)
    result = up(replace(ctx, engine=log))
    return Counter(log.argv), result.ok


def lab(port: int, extra: str = "", *, vms: int = 2) -> str:
    apps = "".join(f"  - {{name: app{i}, roles: [app]}}\n" for i in range(1, vms + 1))
    return (
        "name: hello\ndomain: hello.lab\n"
        "app: {name: hello, source: {builtin: hello}, port: 3000}\n"
        f"vms:\n{apps}  - {{name: lb, roles: [lb]}}\n"
        f"lb: {{port: {port}}}\nwaits: {{launch: 60s, cloud_init: 60s, serve: 5s}}\n" + extra
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator:
    stand_ins: list[StandInLb] = []

    def make(
        extra: str = "", *, vms: int = 2, options: RunOptions | None = None
    ) -> tuple[LabContext, MemoryEngine]:
        ips = {f"hello-app{i}": f"10.77.0.{10 + i}" for i in range(1, vms + 1)}
        engine = MemoryEngine(ips={**ips, "hello-lb": "127.0.0.1"}, launch_delay=0.05)
        stand_in = StandInLb(engine, "hello-lb")  # the LB's nginx: only loopback is contacted
        stand_ins.append(stand_in)
        where = tmp_path / f"lab{len(stand_ins)}"
        where.mkdir()
        hosts = where / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        ctx = LabContext(
            lab_file=LabFile(
                parse_lab(lab(stand_in.port, extra, vms=vms)), where / "lab.yaml", "0" * 64
            ),
            engine=engine,
            options=options or RunOptions(),
            hosts_file=hosts,
            resolver=hosts_file_resolver(hosts),
            sleep=lambda seconds: None,
            probe_interval=0.05,
            state=LabState(where / "state"),
            status_agent=None,
        )
        return ctx, engine

    yield make
    for stand_in in stand_ins:
        stand_in.close()


def assert_agree(ctx: LabContext) -> Counter[tuple[str, ...]]:
    promised = planned(ctx)
    did, ok = ran(ctx)
    assert ok
    assert promised == did, f"plan only: {promised - did}; up only: {did - promised}"
    return did


@pytest.mark.parametrize("stage", ["app", "proxy", "lb"])
def test_plan_and_up_agree_at_every_stage(world, stage: str) -> None:
    ctx, _ = world(f"stage: {stage}\n")
    did = assert_agree(ctx)
    assert sum(argv[1] == "launch" for argv in did) == 3
    applies = [argv for argv in did if "labctl-lb-apply" in " ".join(argv)]
    assert bool(applies) == (stage != "app")  # stage app leaves nginx to the student


def test_plan_launches_nothing_and_leaves_no_state(world) -> None:
    ctx, engine = world()
    plan(ctx)
    assert engine.vms == {} and not any(call[0] in ("launch", "start") for call in engine.calls)
    assert not ctx.lab_state.path.exists()
    assert "hello.lab" not in ctx.hosts_file.read_text()


def test_plan_and_up_agree_on_a_partial_lab(world) -> None:
    ctx, engine = world()
    assert up(ctx).ok
    engine.stop(["hello-app2"], timeout=5)
    engine.vms.pop("hello-lb")  # deleted behind labctl's back
    did = assert_agree(ctx)
    assert ("mem", "start", "hello-app2", "--timeout=60") in did
    assert sum(argv[1] == "launch" for argv in did) == 1


def test_plan_and_up_agree_without_the_hosts_file(world) -> None:
    ctx, _ = world(options=RunOptions(no_hosts=True))
    assert_agree(ctx)
    assert "hello.lab" not in ctx.hosts_file.read_text()


def test_plan_and_up_agree_when_vms_wait_for_launch_slots(world) -> None:
    """Four VMs, one slot: the three that are done while others wait take the early baseline."""
    ctx, _ = world(vms=3, options=RunOptions(max_parallel=1))
    did = assert_agree(ctx)
    assert did[("mem", "stop", "hello-app1")] == 1  # its own early cycle
    assert did[("mem", "stop", "hello-lb")] == 1  # the last one, after serving


def test_plan_and_up_agree_for_a_class_student(tmp_path: Path) -> None:
    engine = MemoryEngine(ips={"web-ann-app1": "10.77.0.21", "web-ann-lb": "127.0.0.1"})
    stand_in = StandInLb(engine, "web-ann-lb")
    try:
        text = (
            "name: web\nclass: {students: [ann, bob], domain: '{student}.lab'}\n"
            "vms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
            f"lb: {{port: {stand_in.port}}}\nwaits: {{launch: 60s, cloud_init: 60s, serve: 5s}}\n"
        )
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        cctx = ClassContext(
            lab_file=LabFile(parse_lab(text), tmp_path / "lab.yaml", "0" * 64),
            hosts_file=hosts,
            resolver=hosts_file_resolver(hosts),
            sleep=lambda seconds: None,
            probe_interval=0.05,
            engine_for=lambda address: engine,
            state_root=tmp_path / "state",
            status_agent=None,
        )
        ctx = cctx.student_context("ann", HostRef("local"))
        did = assert_agree(ctx)
        launched = sorted(argv[2] for argv in did if argv[1] == "launch")
        assert launched == ["web-ann-app1", "web-ann-lb"]
        assert engine.labels["web-ann-app1"]["labctl.student"] == "ann"
    finally:
        stand_in.close()
