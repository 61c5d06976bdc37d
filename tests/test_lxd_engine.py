"""The LXD engine with an injected runner: exact command lines, parsers on outputs recorded from a
real LXD 5.0.2 (tests/fixtures/lxd/), and how each recorded failure is classified."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labctl.engine.base import OPERATION_TIMEOUT, Engine, LaunchSpec, State
from labctl.engine.lxd.adapter import LxdEngine
from labctl.engine.lxd.commands import AS_USER_SCRIPT, LxdTarget, lxd_size
from labctl.engine.lxd.errors import LxdError
from labctl.engine.lxd.parse import parse_list, parse_server, parse_snapshots
from labctl.engine.process import CAPTURE_LIMIT
from labctl.errors import (
    CommandTimeoutError,
    DaemonUnreachableError,
    EngineError,
    EngineNotFoundError,
    InstanceExistsError,
    InstanceNotFoundError,
    LaunchTimeoutError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "lxd"
CALLS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "calls.json").read_text())
TARGET = LxdTarget(remote="class", project="labs")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def done(
    stdout: str = "", stderr: str = "", returncode: int = 0
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(args=[], returncode=returncode, stdout=stdout, stderr=stderr)


def recorded(name: str) -> subprocess.CompletedProcess[str]:
    call = CALLS[name]
    return done(call["stdout"], call["stderr"], call["rc"])


@pytest.fixture(autouse=True)
def _no_env_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCTL_LXC", raising=False)


@pytest.fixture
def run(mocker: Any) -> Any:
    return mocker.Mock(return_value=done("[]"))


@pytest.fixture
def lxd(run: Any) -> LxdEngine:
    return LxdEngine(TARGET, run=run, query_timeout=30.0)


def argv_of(run: Any) -> list[str]:
    return list(run.call_args.args[0])


def kwargs_of(run: Any) -> dict[str, Any]:
    return dict(run.call_args.kwargs)


def spec(**fields: Any) -> LaunchSpec:
    values: dict[str, Any] = {
        "name": "web-ann-app1",
        "image": "labctl-debian12",
        "cpus": 2,
        "memory": "1536M",
        "disk": "5G",
        "user_data": "#cloud-config\n{}\n",
        "timeout": 600,
        "labels": {"labctl.lab": "web-ann", "labctl.vm": "app1", "labctl.student": "ann"},
    }
    values.update(fields)
    return LaunchSpec(**values)


def test_it_is_an_engine(lxd: LxdEngine) -> None:
    engine: Engine = lxd  # mypy checks the whole interface; this checks it at run time too
    assert isinstance(engine, Engine)
    assert not engine.capabilities.snapshot_needs_stop and engine.capabilities.keeps_labels


# --- parsers on recorded output --------------------------------------------------------------


def test_list_recorded_single_server() -> None:
    running, stopped = parse_list(fixture("list.json"))
    assert (running.name, running.state, running.shown_state) == (
        "lxt-rec1",
        State.RUNNING,
        "Running",
    )
    assert running.ip == "10.252.0.47" and running.location == ""  # "none" off a cluster
    assert running.labels == {"labctl.lab": "rec", "labctl.vm": "app1"}
    assert (stopped.state, stopped.ipv4) == (State.STOPPED, ())  # state.network is null


def test_list_recorded_cluster_with_a_member_down() -> None:
    by_name = {i.name: i for i in parse_list(fixture("cluster-list-member-down.json"))}
    assert by_name["lxt-k1"].location == "m1" and by_name["lxt-k1"].state is State.RUNNING
    assert (by_name["lxt-k2"].state, by_name["lxt-k2"].shown_state) == (State.BROKEN, "Error")


def test_frozen_is_startable() -> None:
    [frozen] = parse_list(fixture("list-frozen.json"))
    assert (frozen.state, frozen.shown_state) == (State.STOPPED, "Frozen")
    assert CALLS["start-frozen"]["rc"] == 0  # `lxc start` resumed it on the real daemon


def test_snapshots_recorded() -> None:
    snaps = parse_snapshots(fixture("list-snapshots.json"))
    assert [(s.instance, s.name) for s in snaps] == [("lxt-rec1", "snap0")]
    assert parse_snapshots(fixture("list.json")) == []  # "snapshots": null


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not JSON"),
        ("{}", "not a JSON list"),
        ('[{"name": ""}]', "[0].name is empty"),
        ('[{"name": "a", "status": 3}]', "[0].status"),
        ('[{"name": "a", "state": {"network": []}}]', "[0].state.network"),
        ("[" * 5000 + "]" * 5000, "not JSON"),
    ],
)
def test_bad_list_output_is_an_engine_error(text: str, problem: str) -> None:
    with pytest.raises(EngineError) as err:
        parse_list(text)
    assert problem in err.value.message and len(err.value.message) < 400


def test_server_document() -> None:
    info = parse_server(
        json.dumps(
            {
                "api_extensions": ["cloud_init", "clustering"],
                "environment": {
                    "server_version": "5.0.2",
                    "server_clustered": True,
                    "server_name": "m1",
                },
            }
        )
    )
    assert (info.version, info.clustered, info.server_name) == ("5.0.2", True, "m1")
    assert "cloud_init" in info.extensions


# --- command lines ---------------------------------------------------------------------------


def test_launch_carries_remote_project_sizes_and_a_document_on_stdin(
    run: Any, lxd: LxdEngine
) -> None:
    lxd.launch(spec(target="m2"))
    assert argv_of(run) == [
        "lxc", "launch", "class:labctl-debian12", "class:web-ann-app1", "--profile", "default",
        "--device", "root,size=5120MiB", "--target", "m2", "--project", "labs",
    ]  # fmt: skip
    document = json.loads(kwargs_of(run)["input"])["config"]
    assert document["cloud-init.user-data"] == "#cloud-config\n{}\n"
    assert document["limits.memory"] == "1536MiB" and document["limits.cpu"] == "2"
    assert document["user.labctl.student"] == "ann"
    assert kwargs_of(run)["timeout"] > 600  # the subprocess outlives the launch's own limit


def test_user_data_never_reaches_argv_or_the_debug_log(
    run: Any, lxd: LxdEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="labctl.engine.lxd.adapter")
    lxd.launch(spec(user_data="password: hunter2-secret"))
    assert "hunter2-secret" not in " ".join(argv_of(run)) + caplog.text


def test_every_call_but_launch_and_stdin_execs_gets_devnull(run: Any, lxd: LxdEngine) -> None:
    lxd.list()
    assert kwargs_of(run)["stdin"] is subprocess.DEVNULL  # lxc would read a document from a pipe
    lxd.exec("web-ann-lb", ["true"], timeout=5)
    assert kwargs_of(run)["stdin"] is subprocess.DEVNULL


def test_exec_runs_as_the_default_user_through_a_fixed_script(run: Any, lxd: LxdEngine) -> None:
    run.return_value = done("hi\n")
    result = lxd.exec("web-ann-lb", ["pm2", "stop", "app; rm -rf /"], timeout=5)
    assert result.stdout == "hi\n"
    assert argv_of(run) == [
        "lxc", "exec", "class:web-ann-lb", "--project", "labs", "--", "sh", "-c", AS_USER_SCRIPT,
        "labctl-exec", "ubuntu", "pm2", "stop", "app; rm -rf /",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "args", "argv"),
    [
        ("start", (["a", "b"],), ["lxc", "start", "class:a", "class:b", "--project", "labs"]),
        ("delete", (["a"],), ["lxc", "delete", "class:a", "--force", "--project", "labs"]),
        ("snapshot", ("a", "baseline"), ["lxc", "snapshot", "class:a", "baseline", "--project", "labs"]),
        ("restore", ("a", "baseline"), ["lxc", "restore", "class:a", "baseline", "--project", "labs"]),
        ("delete_snapshot", ("a", "baseline"), ["lxc", "delete", "class:a/baseline", "--project", "labs"]),
    ],
)  # fmt: skip
def test_lifecycle_argv(
    run: Any, lxd: LxdEngine, method: str, args: tuple[Any, ...], argv: list[str]
) -> None:
    kwargs = {"timeout": 30.0} if method == "start" else {}
    getattr(lxd, method)(*args, **kwargs)
    assert argv_of(run) == argv


def test_stop_always_has_a_timeout_or_force(run: Any, lxd: LxdEngine) -> None:
    lxd.stop(["a"], timeout=30.2)
    assert argv_of(run)[3:5] == ["--timeout", "31"]  # without it lxc waits forever
    lxd.stop(["a"], force=True, timeout=30)
    assert "--force" in argv_of(run)
    assert kwargs_of(run)["timeout"] > 30


def test_incus_and_an_environment_override(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    LxdEngine(LxdTarget(cli="incus"), run=run).list()
    assert argv_of(run)[0] == "incus"
    monkeypatch.setenv("LABCTL_LXC", "/opt/lxc")
    LxdEngine(run=run).list()
    assert argv_of(run)[:3] == ["/opt/lxc", "list", "local:"]


def test_sizes_are_binary_mebibytes() -> None:
    assert (lxd_size("1G"), lxd_size("512M"), lxd_size("1.5G")) == ("1024MiB", "512MiB", "1536MiB")


def test_no_snapshot_cycle_and_no_recover(run: Any, lxd: LxdEngine) -> None:
    assert lxd.snapshots_unavailable() is None
    with pytest.raises(LxdError, match="nothing to recover"):
        lxd.recover(["a"])


# --- recorded failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recording", "method", "args", "error", "words"),
    [
        ("daemon-unreachable-list", "list", (), DaemonUnreachableError, "does not answer"),
        ("launch-exists", "launch", (spec(),), InstanceExistsError, "name is taken"),
        ("launch-no-image", "launch", (spec(),), LxdError, "Image not found"),
        ("stop-missing", "start", (["nosuch"],), InstanceNotFoundError, "Instance not found"),
        ("student-other-project", "list", (), LxdError, "not trusted"),
        ("quota-instances", "launch", (spec(),), LxdError, "maximum number of instances"),
    ],
)
def test_recorded_failures_are_classified(
    run: Any, lxd: LxdEngine, recording: str, method: str, args: tuple[Any, ...],
    error: type[EngineError], words: str,
) -> None:  # fmt: skip
    run.return_value = recorded(recording)
    kwargs = {"timeout": 30.0} if method == "start" else {}
    with pytest.raises(error) as err:
        getattr(lxd, method)(*args, **kwargs)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("recording", "code"),
    [("exec-code", 33), ("exec-not-found", 127), ("exec-not-executable", 126)],
)
def test_exec_passes_the_remote_code_through(
    run: Any, lxd: LxdEngine, recording: str, code: int
) -> None:
    run.return_value = recorded(recording)
    assert lxd.exec("lxt-rec1", ["x"], timeout=5).returncode == code


@pytest.mark.parametrize(
    ("recording", "error"),
    [
        ("exec-missing", InstanceNotFoundError),
        ("exec-stopped", LxdError),
        ("cluster-exec-member-down", DaemonUnreachableError),
    ],
)
def test_exec_failures_of_lxd_itself_raise(
    run: Any, lxd: LxdEngine, recording: str, error: type[EngineError]
) -> None:
    run.return_value = recorded(recording)
    with pytest.raises(error):
        lxd.exec("lxt-rec1", ["true"], timeout=5)


def test_a_remote_command_that_prints_error_is_not_mistaken_for_lxd(
    run: Any, lxd: LxdEngine
) -> None:
    run.return_value = done(stderr="Error: my app could not start\n", returncode=1)
    assert lxd.exec("a", ["myapp"], timeout=5).returncode == 1


def test_delete_of_a_missing_instance_goes_on_one_by_one(run: Any, lxd: LxdEngine) -> None:
    missing = recorded("delete-missing")
    run.side_effect = [missing, done(), missing]
    lxd.delete(["a", "gone"])
    assert [c.args[0][2] for c in run.call_args_list] == ["class:a", "class:a", "class:gone"]
    assert run.call_args_list[1].kwargs["timeout"] == OPERATION_TIMEOUT


def test_timeouts_and_a_missing_cli(run: Any, lxd: LxdEngine) -> None:
    run.side_effect = subprocess.TimeoutExpired(["lxc"], 30)
    with pytest.raises(CommandTimeoutError, match="did not answer within 30 s"):
        lxd.list()
    with pytest.raises(LaunchTimeoutError, match="left class:web-ann-app1 behind"):
        lxd.launch(spec())
    run.side_effect = FileNotFoundError(2, "No such file")
    with pytest.raises(EngineNotFoundError, match="apt-get install lxd"):
        lxd.list()


def test_an_instance_on_a_member_that_is_down_is_listed_unreachable_with_the_reason() -> None:
    """Recorded from a real cluster with member m2 stopped: its container is `Error` with a null
    config; a Stopped or Running one on a live member is reachable."""
    listed = {i.name: i for i in parse_list(CALLS["cluster-list-member-down"]["stdout"])}
    down = listed["lxt-k2"]
    assert (down.state, down.location) == (State.BROKEN, "m2")
    assert down.unreachable == "cluster member m2 does not answer (it is down or cut off)"
    assert listed["lxt-k1"].unreachable == listed["lxt-k4"].unreachable == ""
    healthy = parse_list(CALLS["cluster-list-instances"]["stdout"])
    assert healthy and not any(i.unreachable for i in healthy)


def test_a_broken_instance_that_keeps_its_config_is_not_called_unreachable() -> None:
    broken = json.dumps(
        [{"name": "web-lb", "status": "Error", "location": "m1", "config": {}, "state": None}]
    )
    [inst] = parse_list(broken)
    assert inst.state is State.BROKEN and inst.unreachable == ""


def test_a_class_sized_listing_is_read_whole_past_the_guests_output_bound(tmp_path: Path) -> None:
    """`lxc list --format json` carries every instance's user-data twice (config and expanded
    config): 72 containers of a 24-student class are megabytes, past the 1 MiB kept of a
    guest's output. Read through the real bounded runner, every instance must come back."""
    [template, *_] = json.loads(fixture("list.json"))
    user_data = "#cloud-config\n" + "# padding\n" * 3000  # ~30 KB, as a lab's real user-data
    instances = []
    for n in range(72):
        item = json.loads(json.dumps(template))
        item["name"] = f"cls-s{n:02d}-app"
        for key in ("config", "expanded_config"):
            item[key]["cloud-init.user-data"] = user_data
        instances.append(item)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(instances))
    assert listing.stat().st_size > 2 * CAPTURE_LIMIT
    stub = tmp_path / "lxc"
    stub.write_text(f"#!/bin/sh\nexec cat {listing}\n")
    stub.chmod(0o755)
    listed = LxdEngine(LxdTarget(cli=str(stub))).list()
    assert [i.name for i in listed] == [f"cls-s{n:02d}-app" for n in range(72)]
