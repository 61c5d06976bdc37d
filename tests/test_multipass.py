"""The Multipass engine: pure parsers on recorded output, and the adapter with an injected runner."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labctl.engine.base import OPERATION_TIMEOUT, ExecResult, Instance, LaunchSpec, Snapshot, State
from labctl.engine.multipass.adapter import LAUNCH_GRACE, MultipassEngine
from labctl.engine.multipass.errors import MultipassError, classify_failure
from labctl.engine.multipass.parse import (
    VersionInfo,
    launched_name,
    parse_info,
    parse_list,
    parse_snapshots,
    parse_version,
    strip_spinner,
)
from labctl.errors import (
    CommandTimeoutError,
    DaemonUnreachableError,
    EngineNotFoundError,
    InstanceExistsError,
    InstanceNotFoundError,
    LaunchTimeoutError,
    SnapshotsUnsupportedError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "multipass"
MP = "multipass"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def stderr_fixture(name: str) -> str:
    return (FIXTURES / "stderr" / name).read_text()


def done(
    stdout: str = "", stderr: str = "", returncode: int = 0
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(args=[], returncode=returncode, stdout=stdout, stderr=stderr)


@pytest.fixture(autouse=True)
def _no_env_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own LABCTL_MULTIPASS must not leak into argv assertions."""
    monkeypatch.delenv("LABCTL_MULTIPASS", raising=False)


@pytest.fixture
def run(mocker: Any) -> Any:
    return mocker.Mock(return_value=done())


@pytest.fixture
def mp(run: Any) -> MultipassEngine:
    return MultipassEngine(run=run, query_timeout=30.0)


def argv_of(run: Any, call: int = -1) -> list[str]:
    return list(run.call_args_list[call].args[0])


def spec(**fields: Any) -> LaunchSpec:
    values: dict[str, Any] = {"user_data": "{}"}
    values.update(fields)
    return LaunchSpec(**values)


def kwargs_of(run: Any, call: int = -1) -> dict[str, Any]:
    return dict(run.call_args_list[call].kwargs)


# --- parse_list ------------------------------------------------------------------------------


def test_parse_list_recorded_fixture_types() -> None:
    instances = parse_list(fixture("list.json"))
    assert instances == [
        Instance("bogus-instance", State.RUNNING, "Running", ("10.21.124.56",)),
        Instance("bombastic", State.STOPPED, "Stopped", ()),
    ]
    assert isinstance(instances[0].ipv4, tuple)
    assert instances[0].ip == "10.21.124.56"
    assert instances[1].ip is None


def test_parse_list_empty_is_empty() -> None:
    assert parse_list(fixture("list-empty.json")) == []


def test_parse_list_na_ip_and_deleted_instances() -> None:
    by_name = {i.name: i for i in parse_list(fixture("list-na-deleted.json"))}
    assert by_name["web1"].state is State.RUNNING
    assert by_name["web1"].ipv4 == ("N/A",)
    assert by_name["web1"].ip is None
    assert by_name["lb"].ip == "192.168.64.5"  # ipv4[0], not the docker bridge
    assert by_name["old-web"].state is State.DELETED


def test_parse_list_tolerates_1_17_dev_shape() -> None:
    instances = parse_list(fixture("list-1.17-dev.json"))
    assert [(i.name, i.state, i.shown_state, i.ip) for i in instances] == [
        ("web1", State.RUNNING, "Running", "10.21.124.56"),
        ("db1", State.BROKEN, "Unavailable", None),
    ]


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("Running", State.RUNNING),
        ("Delayed Shutdown", State.RUNNING),
        ("Starting", State.STARTING),
        ("Restarting", State.STARTING),
        ("Suspending", State.STARTING),
        ("Stopped", State.STOPPED),
        ("Suspended", State.STOPPED),
        ("Deleted", State.DELETED),
        ("Unknown", State.BROKEN),
        ("Unavailable", State.BROKEN),
        ("Hibernating", State.STARTING),  # a word a newer Multipass may add: wait on it
    ],
)
def test_multipass_states_map_to_labctl_states(word: str, state: State) -> None:
    text = json.dumps({"list": [{"name": "a", "state": word, "ipv4": []}]})
    [instance] = parse_list(text)
    assert (instance.state, instance.shown_state) == (state, word)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("list failed: oops", "not JSON"),
        ("", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"lists": []}', "$.list"),
        ('{"list": [{"state": "Running"}]}', "list[0].name"),
        ('{"list": [{"name": ""}]}', "list[0].name is empty"),
        ('{"list": [{"name": "a", "ipv4": "10.0.0.1"}]}', "list[0].ipv4"),
        ('{"list": [{"name": "a", "ipv4": [1]}]}', "list[0].ipv4 holds a non-string"),
        ('{"list": ["a"]}', "list[0] is not an object"),
    ],
)
def test_parse_list_bad_output_raises(text: str, problem: str) -> None:
    with pytest.raises(MultipassError) as err:
        parse_list(text)
    assert "multipass list --format json" in err.value.message
    assert problem in err.value.message
    assert repr(" ".join(text.split())[:20])[1:-1] in err.value.message  # the excerpt


def test_parse_list_long_output_excerpt_is_short() -> None:
    with pytest.raises(MultipassError) as err:
        parse_list("x" * 5000)
    assert len(err.value.message) < 300


@pytest.mark.parametrize(
    ("ipv4", "ip"),
    [
        ((), None),
        (("N/A",), None),
        (("UNKNOWN",), None),
        (("fe80::1",), None),
        (("10.0.0.7", "172.17.0.1"), "10.0.0.7"),
    ],
)
def test_instance_ip_is_first_real_ipv4(ipv4: tuple[str, ...], ip: str | None) -> None:
    assert Instance("a", State.RUNNING, "Running", ipv4).ip == ip


# --- parse_info / parse_version / parse_snapshots ---------------------------------------------


def test_parse_info_recorded_fixture() -> None:
    info = parse_info(fixture("info.json"))
    assert set(info) == {"bogus-instance", "bombastic"}
    running = info["bogus-instance"]
    assert running["cpu_count"] == "4"  # strings and integers as printed
    assert running["memory"]["total"] == 1610612736
    assert running["ipv4"] == ["10.21.124.56"]
    assert info["bombastic"]["state"] == "Stopped"


def test_parse_info_empty() -> None:
    assert parse_info(fixture("info-empty.json")) == {}


@pytest.mark.parametrize("text", ["nope", '{"errors": []}', '{"info": {"a": []}}'])
def test_parse_info_bad_output_raises(text: str) -> None:
    with pytest.raises(MultipassError, match="multipass info --format json"):
        parse_info(text)


def test_parse_version_with_daemon() -> None:
    version = parse_version(fixture("version.json"))
    assert version == VersionInfo(client="1.16.3", daemon="1.16.3")
    assert version.daemon_tuple() == (1, 16, 3)


def test_parse_version_daemon_missing_is_none() -> None:
    version = parse_version(fixture("version-no-daemon.json"))
    assert version.daemon is None
    assert version.daemon_tuple() is None
    assert version.client_tuple() == (1, 16, 3)


def test_parse_version_ignores_update_block() -> None:
    version = parse_version(fixture("version-update.json"))
    assert version.client == "Client version"
    assert version.daemon_tuple() is None  # not a version number


@pytest.mark.parametrize(
    ("daemon", "expected"),
    [
        ("1.16.3", (1, 16, 3)),
        ("1.16.3+mac", (1, 16, 3)),
        ("1.16.3+win", (1, 16, 3)),
        ("1.17.0-dev.123+gabc", (1, 17, 0)),
        ("1.12", None),
        (None, None),
    ],
)
def test_version_daemon_tuple(daemon: str | None, expected: tuple[int, int, int] | None) -> None:
    assert VersionInfo(client="1.16.3", daemon=daemon).daemon_tuple() == expected


@pytest.mark.parametrize(
    "text", ["", "{}", '{"multipass": 1}', '{"multipass": "1", "multipassd": 2}']
)
def test_parse_version_bad_output_raises(text: str) -> None:
    with pytest.raises(MultipassError, match="multipass version --format json"):
        parse_version(text)


def test_parse_snapshots_recorded_fixture() -> None:
    assert parse_snapshots(fixture("list-snapshots.json")) == [
        Snapshot("hale-roller", "pristine", "A first snapshot"),
        Snapshot(
            "hale-roller",
            "rocking",
            "A very long comment that should be truncated by the table formatter",
        ),
    ]


def test_parse_snapshots_none() -> None:
    assert parse_snapshots(fixture("info-empty.json")) == []


@pytest.mark.parametrize(
    "text", ["x", '{"info": {"a": []}}', '{"info": {"a": {"s": {"parent": 1}}}}']
)
def test_parse_snapshots_bad_output_raises(text: str) -> None:
    with pytest.raises(MultipassError, match="multipass list --snapshots --format json"):
        parse_snapshots(text)


# --- launch stdout ---------------------------------------------------------------------------


def test_strip_spinner_leaves_one_clean_line_per_message() -> None:
    clean = strip_spinner(fixture("launch-stdout-with-spinner.txt"))
    assert clean.splitlines() == [
        "Creating web1",
        "Retrieving image: 3%",
        "Retrieving image: 56%",
        "Verifying image:",
        "Preparing image for web1",
        "Configuring web1",
        "Starting web1",
        "Waiting for initialization to complete",
        "Launched: web1",
    ]
    assert "\x1b" not in clean
    assert "\b" not in clean


def test_launched_name_through_spinner() -> None:
    assert launched_name(fixture("launch-stdout-with-spinner.txt")) == "web1"
    assert launched_name("Launched: lb\n") == "lb"


def test_launched_name_absent() -> None:
    assert launched_name(fixture("launch-stdout-no-launched.txt")) is None
    assert launched_name("") is None


# --- adapter: argv, kwargs ---------------------------------------------------------------------


def test_run_kwargs_capture_text_devnull_env_no_shell(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("list.json"))
    mp.list()
    kwargs = kwargs_of(run)
    assert argv_of(run) == [MP, "list", "--format", "json"]
    assert kwargs["capture_output"] is True
    assert kwargs["text"] is True
    assert kwargs["timeout"] == 30.0
    assert kwargs["stdin"] is subprocess.DEVNULL  # multipass would wait on a prompt otherwise
    assert "input" not in kwargs
    assert "shell" not in kwargs
    assert kwargs["env"]["PATH"] == os.environ["PATH"]


def test_env_extra_vars_merged_over_os_environ(run: Any) -> None:
    mp = MultipassEngine(run=run, env={"MULTIPASS_SERVER_ADDRESS": "localhost:50051"})
    run.return_value = done(fixture("list-empty.json"))
    mp.list()
    env = kwargs_of(run)["env"]
    assert env["MULTIPASS_SERVER_ADDRESS"] == "localhost:50051"
    assert env["PATH"] == os.environ["PATH"]


def test_executable_from_env_var(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_MULTIPASS", "/opt/mp/bin/multipass")
    run.return_value = done(fixture("list-empty.json"))
    MultipassEngine(run=run).list()
    assert argv_of(run)[0] == "/opt/mp/bin/multipass"


def test_explicit_executable_beats_env_var(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_MULTIPASS", "/opt/mp/bin/multipass")
    assert (
        MultipassEngine("/usr/local/bin/multipass", run=run).executable
        == "/usr/local/bin/multipass"
    )
    assert MultipassEngine(run=run).executable == "/opt/mp/bin/multipass"


def test_executable_defaults_to_path_lookup(run: Any) -> None:
    assert MultipassEngine(run=run).executable == "multipass"


def test_version_argv_and_daemon_down(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("version-no-daemon.json"))
    assert mp.version() == VersionInfo(client="1.16.3", daemon=None)
    assert argv_of(run) == [MP, "version", "--format", "json"]


def test_info_argv(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("info.json"))
    assert "bombastic" in mp.info(["bogus-instance", "bombastic"])
    assert argv_of(run) == [MP, "info", "--format", "json", "bogus-instance", "bombastic"]
    assert kwargs_of(run)["timeout"] == 30.0


def test_get_is_raw_and_stripped(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("qemu\n")
    assert mp.get("local.driver") == "qemu"
    assert argv_of(run) == [MP, "get", "--raw", "local.driver"]
    assert kwargs_of(run)["timeout"] == 30.0


def test_get_unknown_key_raises(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(stderr="Unrecognized settings key: 'local.nope'\n", returncode=1)
    with pytest.raises(MultipassError):
        mp.get("local.nope")


def test_list_snapshots_argv(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("list-snapshots.json"))
    assert len(mp.list_snapshots()) == 2
    assert argv_of(run) == [MP, "list", "--snapshots", "--format", "json"]


def test_launch_argv_is_exact(mp: MultipassEngine) -> None:
    argv = mp.launch_argv(
        spec(name="web1", image="24.04", cpus=2, memory="2G", disk="10G", timeout=600)
    )
    assert argv == [
        MP, "launch", "--name", "web1", "--cpus", "2", "--memory", "2G", "--disk", "10G",
        "--timeout", "600", "--cloud-init", "-", "24.04",
    ]  # fmt: skip


def test_launch_timeout_rounds_up_to_whole_seconds(mp: MultipassEngine) -> None:
    argv = mp.launch_argv(spec(name="a", image="lts", cpus=1, memory="1G", disk="5G", timeout=90.2))
    assert argv[argv.index("--timeout") + 1] == "91"


def test_launch_sends_cloud_init_on_stdin(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("launch-stdout-with-spinner.txt"))
    user_data = "#cloud-config\npackages: [nginx]\n"
    mp.launch(spec(name="web1", image="24.04", cpus=2, memory="2G", disk="10G", user_data=user_data,
        timeout=600,))  # fmt: skip
    kwargs = kwargs_of(run)
    assert argv_of(run) == mp.launch_argv(
        spec(name="web1", image="24.04", cpus=2, memory="2G", disk="10G", timeout=600)
    )
    assert kwargs["input"] == user_data
    assert "stdin" not in kwargs
    assert kwargs["timeout"] == 600 + LAUNCH_GRACE  # the client's own timer fires first


def test_launch_without_launched_line_raises(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(fixture("launch-stdout-no-launched.txt"))
    with pytest.raises(MultipassError, match="did not report `Launched: web1`"):
        mp.launch(
            spec(
                name="web1", image="lts", cpus=1, memory="1G", disk="5G", user_data="{}", timeout=60
            )
        )


def test_launch_never_logs_cloud_init(
    run: Any, mp: MultipassEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="labctl.engine.multipass.adapter")
    run.return_value = done("Launched: web1\n")
    mp.launch(spec(name="web1", image="lts", cpus=1, memory="1G", disk="5G",
        user_data="password: hunter2-secret", timeout=60,))  # fmt: skip
    assert "multipass launch --name web1" in caplog.text
    assert "hunter2-secret" not in caplog.text


def test_exec_argv_has_double_dash(mp: MultipassEngine) -> None:
    assert mp.exec_argv("web1", ["ls", "-la"]) == [MP, "exec", "web1", "--", "ls", "-la"]


def test_exec_returns_remote_code_without_raising(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("out", "err", 33)
    result = mp.exec("web1", ["sh", "-c", "exit 33"], timeout=12)
    assert result == ExecResult(33, "out", "err")
    assert argv_of(run) == [MP, "exec", "web1", "--", "sh", "-c", "exit 33"]
    assert kwargs_of(run)["timeout"] == 12
    assert kwargs_of(run)["stdin"] is subprocess.DEVNULL


def test_exec_stdin_goes_to_input_and_is_not_logged(
    run: Any, mp: MultipassEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="labctl.engine.multipass.adapter")
    mp.exec("web1", ["tee", "/etc/app.env"], stdin="TOKEN=s3cr3t", timeout=5)
    assert kwargs_of(run)["input"] == "TOKEN=s3cr3t"
    assert "stdin" not in kwargs_of(run)
    assert "s3cr3t" not in caplog.text


def test_exec_check_remote_failure_raises_with_tail(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", "curl: (7) Failed to connect\n", 7)
    with pytest.raises(MultipassError) as err:
        mp.exec("web1", ["curl", "-f", "localhost"], timeout=5, check=True)
    assert type(err.value) is MultipassError
    assert err.value.message == "`curl -f localhost` in web1 exited 7: curl: (7) Failed to connect"
    assert err.value.returncode == 7
    assert err.value.stderr == "curl: (7) Failed to connect"


def test_exec_check_multipass_own_error_is_classified(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", stderr_fixture("exec-deleted.txt"), 2)
    with pytest.raises(MultipassError) as err:
        mp.exec("web1", ["true"], timeout=5, check=True)
    assert 'instance "web1" is deleted' in err.value.message
    assert "multipass recover" in str(err.value)


def test_exec_check_daemon_down(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", "exec failed: cannot connect to the multipass socket\n", 2)
    with pytest.raises(DaemonUnreachableError):
        mp.exec("web1", ["true"], timeout=5, check=True)


def test_exec_own_errors_raise_even_without_check(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", stderr_fixture("exec-deleted.txt"), 2)
    with pytest.raises(MultipassError, match='instance "web1" is deleted'):
        mp.exec("web1", ["cloud-init", "status", "--wait"], timeout=5)


def test_exec_remote_exit_2_is_a_result_not_an_error(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("status: degraded done\n", "", 2)  # cloud-init's recoverable error
    result = mp.exec("web1", ["cloud-init", "status", "--wait"], timeout=5)
    assert (result.returncode, result.stdout) == (2, "status: degraded done\n")


def test_start_several_names_with_timeout(run: Any, mp: MultipassEngine) -> None:
    mp.start(["web1", "web2"], timeout=120)
    assert argv_of(run) == [MP, "start", "--timeout", "120", "web1", "web2"]
    assert kwargs_of(run)["timeout"] == 120 + LAUNCH_GRACE


def test_stop_several_names(run: Any, mp: MultipassEngine) -> None:
    mp.stop(["web1", "web2"], timeout=90)
    assert argv_of(run) == [MP, "stop", "web1", "web2"]
    assert kwargs_of(run)["timeout"] == 90
    mp.stop(["web1"], force=True, timeout=30)
    assert argv_of(run) == [MP, "stop", "--force", "web1"]


def test_delete_purges(run: Any, mp: MultipassEngine) -> None:
    mp.delete(["web1", "web2"])
    assert argv_of(run) == [MP, "delete", "--purge", "web1", "web2"]
    assert kwargs_of(run)["timeout"] == OPERATION_TIMEOUT


@pytest.mark.parametrize("method", ["start", "stop", "delete", "recover"])
def test_no_names_never_reaches_multipass(run: Any, mp: MultipassEngine, method: str) -> None:
    # Without names these act on the "primary" instance; start would even launch it.
    kwargs: dict[str, Any] = {"timeout": 5} if method in ("start", "stop") else {}
    getattr(mp, method)([], **kwargs)
    run.assert_not_called()


def test_delete_already_gone_is_quiet(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", stderr_fixture("delete-does-not-exist.txt"), 2)
    mp.delete(["web2"])
    assert run.call_count == 1


def test_delete_retries_without_the_missing_names(mp: MultipassEngine, run: Any) -> None:
    run.side_effect = [done("", stderr_fixture("delete-does-not-exist.txt"), 2), done()]
    mp.delete(["web1", "web2", "lb"])
    assert argv_of(run, 0) == [MP, "delete", "--purge", "web1", "web2", "lb"]
    assert argv_of(run, 1) == [MP, "delete", "--purge", "web1", "lb"]


def test_delete_falls_back_to_one_by_one(mp: MultipassEngine, run: Any) -> None:
    gone = 'delete failed: The following errors occurred:\ninstance "zz" does not exist\n'
    run.side_effect = [done("", gone, 2), done("", gone, 2), done()]
    mp.delete(["a", "b"])
    assert [argv_of(run, i)[3:] for i in range(3)] == [["a", "b"], ["a"], ["b"]]


def test_delete_other_failures_still_raise(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", "delete failed: something broke\n", 2)
    with pytest.raises(MultipassError, match="something broke"):
        mp.delete(["web1"])


def test_stop_missing_instance_raises(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done("", stderr_fixture("stop-does-not-exist.txt"), 2)
    with pytest.raises(InstanceNotFoundError, match='instance "web1" does not exist'):
        mp.stop(["web1"], timeout=5)


def test_recover_argv(run: Any, mp: MultipassEngine) -> None:
    mp.recover(["web1", "web2"])
    assert argv_of(run) == [MP, "recover", "web1", "web2"]


def test_snapshot_argv(run: Any, mp: MultipassEngine) -> None:
    mp.snapshot("web1", "base", comment="after up")
    assert argv_of(run) == [MP, "snapshot", "--name", "base", "--comment", "after up", "web1"]
    mp.snapshot("web1", "base")
    assert argv_of(run) == [MP, "snapshot", "--name", "base", "web1"]
    assert kwargs_of(run)["timeout"] == OPERATION_TIMEOUT


def test_restore_is_destructive(run: Any, mp: MultipassEngine) -> None:
    mp.restore("web1", "base")
    assert argv_of(run) == [MP, "restore", "--destructive", "web1.base"]


def test_delete_snapshot_purges(run: Any, mp: MultipassEngine) -> None:
    mp.delete_snapshot("web1", "base")
    assert argv_of(run) == [MP, "delete", "--purge", "web1.base"]


def test_interactive_inherits_terminal(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(returncode=130)
    assert mp.interactive("web1") == 130
    assert argv_of(run) == [MP, "shell", "web1"]
    kwargs = kwargs_of(run)
    for key in ("capture_output", "stdout", "stderr", "stdin", "input", "timeout", "shell"):
        assert key not in kwargs


def test_no_call_uses_a_shell(mp: MultipassEngine, run: Any) -> None:
    outputs = {
        "version": fixture("version.json"),
        "list": fixture("list.json"),
        "info": fixture("info.json"),
        "launch": "Launched: a\n",
    }
    run.side_effect = lambda argv, **_: done(outputs.get(argv[1], fixture("list-snapshots.json")))
    mp.version()
    mp.list()
    mp.info(["a"])
    mp.list_snapshots()
    mp.launch(spec(name="a", image="lts", cpus=1, memory="1G", disk="5G", user_data="", timeout=9))
    mp.exec("a", ["true"], timeout=1)
    mp.start(["a"], timeout=1)
    mp.stop(["a"], timeout=1)
    mp.delete(["a"])
    mp.recover(["a"])
    mp.snapshot("a", "s")
    mp.restore("a", "s")
    mp.delete_snapshot("a", "s")
    mp.interactive("a")
    assert run.call_count == 14
    for call in run.call_args_list:
        assert isinstance(call.args[0], list)
        assert call.kwargs.get("shell", False) is False


# --- adapter: process-level failures ---------------------------------------------------------


@pytest.mark.parametrize("exc", [FileNotFoundError(2, "No such file"), PermissionError(13, "No")])
def test_missing_executable_gives_install_hint(run: Any, mp: MultipassEngine, exc: OSError) -> None:
    run.side_effect = exc
    with pytest.raises(EngineNotFoundError) as err:
        mp.list()
    text = str(err.value)
    assert "cannot run multipass ('multipass')" in err.value.message
    for needle in (
        "sudo snap install multipass",
        "brew install --cask multipass",
        "winget install Canonical.Multipass",
        "LABCTL_MULTIPASS",
    ):
        assert needle in text


def test_missing_executable_interactive(run: Any, mp: MultipassEngine) -> None:
    run.side_effect = FileNotFoundError(2, "No such file")
    with pytest.raises(EngineNotFoundError):
        mp.interactive("web1")


def test_query_timeout_names_command_and_wedged_daemon(run: Any, mp: MultipassEngine) -> None:
    run.side_effect = subprocess.TimeoutExpired(["multipass", "list"], 30.0)
    with pytest.raises(CommandTimeoutError) as err:
        mp.list()
    assert not isinstance(err.value, LaunchTimeoutError)
    assert err.value.message == "`multipass list --format json` did not answer within 30 s"
    assert "#5080" in str(err.value)
    assert "sudo snap restart multipass" in str(err.value)


def test_launch_subprocess_timeout_is_a_launch_timeout(run: Any, mp: MultipassEngine) -> None:
    run.side_effect = subprocess.TimeoutExpired(["multipass"], 660.0, stderr=b"late\n")
    with pytest.raises(LaunchTimeoutError) as err:
        mp.launch(
            spec(
                name="web1", image="lts", cpus=1, memory="1G", disk="5G", user_data="", timeout=600
            )
        )
    assert "left the instance web1 behind" in err.value.message
    assert "multipass delete --purge web1" in str(err.value)
    assert err.value.stderr == "late"


def test_unknown_command_on_stdout_is_classified(run: Any, mp: MultipassEngine) -> None:
    run.return_value = done(
        "Error: Unknown command or alias 'snapshot' "
        '(try "multipass help" or "multipass aliases")\n',
        "",
        1,
    )
    with pytest.raises(MultipassError, match="does not know `snapshot`") as err:
        mp.snapshot("web1", "base")
    assert "1.13" in str(err.value)


# --- classify_failure: every stderr text of docs/engines/multipass.md ----------------------------------

LAUNCH = [MP, "launch", "--name", "web1", "--cpus", "1", "--memory", "1G", "--disk", "5G",
          "--timeout", "300", "--cloud-init", "-", "24.04"]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "code", "stderr_file", "cls", "needles"),
    [
        ([MP, "list", "--format", "json"], 2, "list-daemon-down.txt", DaemonUnreachableError,
         ["cannot connect to the Multipass daemon", "sudo snap restart multipass",
          "/var/snap/multipass/common/multipass_socket"]),
        ([MP, "list", "--format", "json"], 2, "list-daemon-down-pre-1.12.txt",
         DaemonUnreachableError, ["multipassd running"]),
        ([MP, "list", "--format", "json"], 2, "list-socket-access-denied.txt",
         DaemonUnreachableError, ["socket access denied", "multipass authenticate"]),
        (LAUNCH, 2, "launch-already-exists.txt", InstanceExistsError,
         ["name is taken", 'instance "web1" already exists', "delete --purge"]),
        (LAUNCH, 2, "launch-being-prepared.txt", InstanceExistsError, ["is being prepared"]),
        ([MP, "info", "--format", "json", "x", "y"], 2, "info-does-not-exist.txt",
         InstanceNotFoundError, ['instance "x" does not exist; instance "y" does not exist']),
        ([MP, "stop", "web1"], 2, "stop-does-not-exist.txt", InstanceNotFoundError,
         ['`multipass stop web1`: instance "web1" does not exist']),
        ([MP, "snapshot", "--name", "s", "web1"], 2, "snapshot-does-not-exist.txt",
         InstanceNotFoundError, ['instance "web1" does not exist']),
        ([MP, "start", "--timeout", "60", "web1"], 2, "start-does-not-exist.txt",
         InstanceNotFoundError, ["Instance 'web1' does not exist."]),
        ([MP, "start", "--timeout", "60", "web1"], 2, "start-deleted.txt", MultipassError,
         ["Instance 'web1' is deleted", "multipass recover"]),
        ([MP, "exec", "web1", "--", "true"], 2, "exec-deleted.txt", MultipassError,
         ['instance "web1" is deleted']),
        ([MP, "exec", "web1", "--", "true"], 2, "exec-ssh-timeout.txt", MultipassError,
         ["ssh connection failed", "exit 2"]),
        (LAUNCH, 2, "launch-invalid-name.txt", MultipassError,
         ["Invalid arguments supplied: Invalid instance name supplied: 1nvalid-name"]),
        (LAUNCH, 2, "launch-memory-too-small.txt", MultipassError,
         ["Invalid memory size value supplied: 64M."]),
        (LAUNCH, 2, "launch-timeout-ssh.txt", LaunchTimeoutError,
         ["launching web1 timed out", "SSH never came up", "left the instance web1 behind",
          "labctl down", "multipass delete --purge web1", "#2911"]),
        (LAUNCH, 2, "launch-timeout-init.txt", LaunchTimeoutError,
         ["launching web1 timed out", "cloud-init did not finish", "left the instance web1 behind",
          "labctl down", "multipass delete --purge web1", "cloud-init status"]),
        (LAUNCH, 5, "launch-client-timeout.txt", LaunchTimeoutError,
         ["launching web1 timed out", "--timeout 300 s", "left the instance web1 behind",
          "labctl down", "multipass delete --purge web1"]),
        ([MP, "start", "--timeout", "60", "web1"], 5, "start-client-timeout.txt", MultipassError,
         ["timed out", "Timed out waiting for instance to start.", "#5080"]),
        ([MP, "start", "--timeout", "60", "web1"], 2, "launch-timeout-ssh.txt", MultipassError,
         ["timed out waiting for response"]),
        ([MP, "snapshot", "--name", "s", "web1"], 2, "snapshot-running.txt", MultipassError,
         ["can only take snapshots of stopped instances", "Stop the instance first"]),
        ([MP, "restore", "--destructive", "web1.s"], 2, "restore-running.txt", MultipassError,
         ["can only restore snapshots of stopped instances", "Stop the instance first"]),
        ([MP, "snapshot", "--name", "base", "web1"], 2, "snapshot-duplicate.txt",
         MultipassError, ["Snapshot already exists: web1.base", "another snapshot name"]),
        ([MP, "snapshot", "--name", "base", "web1"], 2, "snapshot-unsupported.txt",
         SnapshotsUnsupportedError, ["cannot take snapshots", "qemu"]),
        ([MP, "restore", "--destructive", "web1.base"], 2, "restore-no-such-snapshot.txt",
         MultipassError, ["No such snapshot: web1.base"]),
        (LAUNCH, 1, "launch-bad-memory.txt", MultipassError,
         ["usage error", "1CiG is not a valid memory size", "labctl bug"]),
        (LAUNCH, 1, "launch-timeout-bad.txt", MultipassError,
         ["usage error", "--timeout value has to be a positive integer", "labctl bug"]),
        (LAUNCH, 2, "launch-unknown-image.txt", MultipassError,
         ['Unable to find an image matching "nobel"', "multipass find"]),
        (LAUNCH, 2, "launch-remote-unreachable.txt", MultipassError,
         ['Remote "" is unknown or unreachable', "wait a minute"]),
        (LAUNCH, 1, "launch-cloud-init-bad.txt", MultipassError,
         ["could not load the cloud-init user-data", "end of map not found", "#2047"]),
        ([MP, "transfer", "-", "web1:/x"], 2, "transfer-not-running.txt", MultipassError,
         ['failed (exit 2): instance "web1" is not running']),
    ],
)  # fmt: skip
def test_classify_failure(
    argv: list[str], code: int, stderr_file: str, cls: type, needles: list[str]
) -> None:
    stderr = stderr_fixture(stderr_file)
    err = classify_failure(argv, code, stderr)
    assert type(err) is cls
    assert err.argv == argv
    assert err.returncode == code
    assert err.stderr == stderr.strip()
    assert "\n" not in err.message
    for needle in needles:
        assert needle in str(err)


def test_classify_exit_1_crash_is_not_blamed_on_labctl() -> None:
    stderr = (
        "[2025-01-01T00:00:00.000] [error] [client] Caught an unhandled exception: failed to open "
        "file '/var/snap/multipass/common/data/multipassd/multipass_root_cert.pem': "
        "No such file or directory(2)\n"
    )
    err = classify_failure([MP, "list", "--format", "json"], 1, stderr)
    assert "crashed" in err.message
    assert "multipass_root_cert.pem" in err.message
    assert "labctl bug" not in str(err)


def test_classify_keeps_last_ten_lines_and_first_meaningful_in_message() -> None:
    stderr = "\n".join(
        ["", "*** Warning! Blueprints are deprecated and will be removed in a future release. ***"]
        + ["launch failed: disk exploded"]
        + [f"detail {i}" for i in range(20)]
    )
    err = classify_failure(LAUNCH, 2, stderr)
    assert err.stderr.splitlines() == [f"detail {i}" for i in range(10, 20)]
    assert err.message.endswith("failed (exit 2): disk exploded")
    assert "Traceback" not in str(err)


def test_classify_empty_stderr() -> None:
    err = classify_failure([MP, "stop", "a"], 2, "")
    assert err.message == "`multipass stop a` failed (exit 2): (no error output)"


# --- health: doctor's lines about Multipass ---------------------------------------------------


def _health(run: Any, mp: MultipassEngine, daemon: str | None, driver: str) -> dict[str, str]:
    version = {"multipass": "1.16.3", **({"multipassd": daemon} if daemon else {})}

    def answer(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if argv[1] == "version":
            return done(json.dumps(version))
        return done(driver + "\n")

    run.side_effect = answer
    return {line.name: line.status for line in mp.health()}


def test_health_all_good(run: Any, mp: MultipassEngine) -> None:
    assert _health(run, mp, "1.16.3", "qemu") == {
        "multipass": "ok",
        "daemon": "ok",
        "driver": "ok",
        "snapshots": "ok",
    }


def test_health_daemon_down_old_multipass_lxd(run: Any, mp: MultipassEngine) -> None:
    status = _health(run, mp, None, "qemu")
    assert status["daemon"] == "fail" and status["driver"] == "skip"
    status = _health(run, mp, "1.12.0", "qemu")
    assert status["daemon"] == "ok" and status["snapshots"] == "warn"
    assert _health(run, mp, "1.11.0", "qemu")["daemon"] == "fail"
    assert _health(run, mp, "1.16.3", "lxd")["driver"] == "warn"
    assert _health(run, mp, "1.16.3", "lxd")["snapshots"] == "warn"


def test_snapshots_unavailable_by_version_and_driver(run: Any, mp: MultipassEngine) -> None:
    _health(run, mp, "1.12.0", "qemu")
    assert "1.13.0 or newer" in (mp.snapshots_unavailable() or "")
    _health(run, mp, "1.16.3", "libvirt")
    assert "libvirt driver cannot take snapshots" in (mp.snapshots_unavailable() or "")
    _health(run, mp, "1.16.3", "qemu")
    assert mp.snapshots_unavailable() is None
