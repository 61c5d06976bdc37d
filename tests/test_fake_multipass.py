"""The fake multipass behaves like multipass 1.16.3 as docs/engines/multipass.md describes it.

Every test runs the ``multipass`` wrapper as a real subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fake_multipass.fixture import FakeMultipass

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CLOUD_CONFIG = """#cloud-config
write_files:
  - path: /etc/lab/app.env
    content: |
      PORT=3000
runcmd:
  - [npm, start]
"""


@pytest.fixture
def fmp(tmp_path: Path) -> FakeMultipass:
    return FakeMultipass(tmp_path / "fmp")


def run(fmp: FakeMultipass, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return fmp.run(*args, **kw)


def launch(fmp: FakeMultipass, name: str, *extra: str, **kw: Any) -> None:
    res = run(fmp, "launch", "-n", name, *extra, **kw)
    assert res.returncode == 0, res.stderr
    assert f"Launched: {name}\n" in res.stdout


def list_json(fmp: FakeMultipass, **kw: Any) -> dict[str, dict[str, Any]]:
    res = run(fmp, "list", "--format", "json", **kw)
    assert res.returncode == 0, res.stderr
    return {item["name"]: item for item in json.loads(res.stdout)["list"]}


def info_json(fmp: FakeMultipass, *names: str) -> dict[str, Any]:
    res = run(fmp, "info", "--format", "json", *names)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def assert_qt_layout(text: str) -> None:
    """4-space indent, keys sorted at every level, empty containers split, trailing newline."""
    assert text.endswith("}\n") and "\t" not in text
    assert re.search(r"\[\]|\{\}", text) is None
    assert all((len(line) - len(line.lstrip(" "))) % 4 == 0 for line in text.splitlines())

    def check_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys), keys
        return dict(pairs)

    json.loads(text, object_pairs_hook=check_sorted)


# ---- process contract -------------------------------------------------------------------


def test_version_and_daemon_down(fmp: FakeMultipass) -> None:
    res = run(fmp, "version")
    assert (res.returncode, res.stdout) == (0, "multipass   1.16.3\nmultipassd  1.16.3\n")
    fmp.configure(daemon_down=True, version="1.16.3+mac")
    res = run(fmp, "version", "--format", "json")
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"multipass": "1.16.3+mac"}
    assert run(fmp, "version").stdout == "multipass   1.16.3+mac\n"
    for argv in (["list"], ["info", "x"], ["launch", "-n", "x"], ["exec", "x", "--", "true"]):
        res = run(fmp, *argv)
        assert res.returncode == 2
        assert res.stderr == f"{argv[0]} failed: cannot connect to the multipass socket\n"


def test_parse_level_errors(fmp: FakeMultipass, tmp_path: Path) -> None:
    res = run(fmp)
    assert res.returncode == 2 and res.stdout.startswith("Usage: multipass")
    assert run(fmp, "--help").returncode == 0
    assert run(fmp, "launch", "--help").stdout.startswith("Usage: multipass launch")
    res = run(fmp, "foo")
    assert res.returncode == 1
    assert res.stdout == (
        'Error: Unknown command or alias \'foo\' (try "multipass help" or "multipass aliases")\n'
    )
    res = run(fmp, "list", "--bogus")
    assert (res.returncode, res.stderr) == (1, "Unknown option 'bogus'.\n")
    res = run(fmp, "list", "--format", "xml")
    assert (res.returncode, res.stderr) == (1, "Invalid format type given.\n")
    res = run(fmp, "list", "extra")
    assert (res.returncode, res.stderr) == (1, "This command takes no arguments\n")
    res = run(fmp, "launch", "--name")
    assert (res.returncode, res.stderr) == (1, "Missing value after '--name'.\n")
    res = run(fmp, "stop", "a", "--all")
    assert (res.returncode, res.stderr) == (1, "Cannot specify name when --all option set\n")
    env = {k: v for k, v in os.environ.items() if k != "FAKE_MULTIPASS_HOME"}
    res = subprocess.run(
        [str(fmp.executable), "list"], env=env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 2 and "FAKE_MULTIPASS_HOME" in res.stderr


def test_empty_list_exact_text(fmp: FakeMultipass) -> None:
    assert run(fmp, "list", "--format", "json").stdout == '{\n    "list": [\n    ]\n}\n'
    assert run(fmp, "list").stdout == "No instances found.\n"
    res = run(fmp, "info", "--format", "json")
    assert res.stdout == '{\n    "errors": [\n    ],\n    "info": {\n    }\n}\n'


# ---- launch ------------------------------------------------------------------------------


def test_launch_stdout_list_and_info_shapes(fmp: FakeMultipass) -> None:
    res = run(
        fmp, "launch", "-n", "web1", "-c", "2", "-m", "2G", "--cloud-init", "-", input=CLOUD_CONFIG
    )
    assert res.returncode == 0, res.stderr
    assert "\x1b[2K\x1b[0A\x1b[0E" in res.stdout and "\b/" in res.stdout
    assert "Starting web1" in res.stdout
    assert "Waiting for initialization to complete" in res.stdout
    assert res.stdout.endswith("\x1b[2K\x1b[0A\x1b[0ELaunched: web1\n")
    assert fmp.calls("launch")[-1]["cloud_init"] == CLOUD_CONFIG

    text = run(fmp, "list", "--format", "json").stdout
    assert_qt_layout(text)
    item = json.loads(text)["list"][0]
    assert item == {
        "ipv4": ["127.80.0.1"],
        "name": "web1",
        "release": "Ubuntu 24.04 LTS",
        "state": "Running",
    }
    text = run(fmp, "info", "--format", "json", "web1").stdout
    assert_qt_layout(text)
    doc = json.loads(text)
    assert doc["errors"] == []
    info = doc["info"]["web1"]
    assert info["cpu_count"] == "2" and info["snapshot_count"] == "0"
    assert info["image_release"] == "24.04 LTS" and info["release"].startswith("Ubuntu 24.04")
    assert isinstance(info["memory"]["total"], int) and isinstance(info["memory"]["used"], int)
    assert info["memory"]["total"] < 2 * 1024**3
    assert isinstance(info["disks"]["sda1"]["total"], str)
    assert int(info["disks"]["sda1"]["total"]) == 5136297984
    assert len(info["load"]) == 3 and all(isinstance(x, float) for x in info["load"])
    assert info["ipv4"] == ["127.80.0.1"] and info["state"] == "Running"
    assert run(fmp, "ls").stdout.splitlines()[1].split()[:3] == ["web1", "Running", "127.80.0.1"]


def test_stopped_instance_info_is_empty_runtime(fmp: FakeMultipass) -> None:
    fmp.add_instance("old", state="Stopped")
    text = run(fmp, "info", "--format", "json", "old").stdout
    assert '"ipv4": [\n            ],' in text and '"load": [\n            ],' in text
    info = json.loads(text)["info"]["old"]
    assert info["cpu_count"] == "" and info["release"] == "" and info["memory"] == {}
    assert info["disks"] == {"sda1": {}} and info["ipv4"] == [] and info["state"] == "Stopped"
    assert list_json(fmp)["old"]["ipv4"] == []


@pytest.mark.parametrize("bad", ["1nvalid-name", "invalid.name", "invalid$name", "invalid-name-"])
def test_launch_invalid_name(fmp: FakeMultipass, bad: str) -> None:
    res = run(fmp, "launch", "-n", bad)
    assert res.returncode == 2
    assert res.stderr == (
        f"launch failed: Invalid arguments supplied\nInvalid instance name supplied: {bad}\n"
    )


def test_launch_validation_errors(fmp: FakeMultipass, tmp_path: Path) -> None:
    res = run(fmp, "launch", "-n", "a", "-m", "1CiG")
    assert res.returncode == 1
    assert re.fullmatch(
        r"\[[^\]]+\] \[error\] \[client\] Caught an unhandled exception: 1CiG is not a valid "
        r"memory size - need .*\(e\.g\. 1234B, 42MiB, 0\.5G\)\n",
        res.stderr,
    )
    res = run(fmp, "launch", "-n", "a", "-m", "64M", "-d", "100M")
    assert res.returncode == 2
    assert res.stderr.endswith(
        "Invalid memory size value supplied: 64M.\nInvalid disk size value supplied: 100M.\n"
    )
    res = run(fmp, "launch", "-n", "a", "-c", "abc")
    assert (res.returncode, res.stderr) == (
        1,
        "Error: invalid CPU count 'abc', need a positive integer value.\n",
    )
    res = run(fmp, "launch", "-n", "a", "--timeout", "0")
    assert (res.returncode, res.stderr) == (
        1,
        "error: --timeout value has to be a positive integer\n",
    )
    assert run(fmp, "launch", "a", "b").stderr == "Too many arguments supplied\n"
    res = run(fmp, "launch", "nosuch", "-n", "a")
    assert res.returncode == 2
    assert res.stderr == 'launch failed: Unable to find an image matching "nosuch" in remote "".\n'
    res = run(fmp, "launch", "-n", "a", "--cloud-init", "-", input="a: [1\nb: 2\n")
    assert res.returncode == 1
    assert res.stderr.startswith("Could not load cloud-init configuration: ")
    res = run(fmp, "launch", "-n", "a", "--cloud-init", str(tmp_path / "missing.yaml"))
    assert res.returncode == 1
    assert "Please ensure that Multipass can read it." in res.stderr
    res = run(fmp, "launch", "-n", "a", "--cloud-init", "-", input="#!/bin/bash\necho hi\n")
    assert res.returncode == 2 and res.stderr.startswith("launch failed: ")
    assert fmp.instances() == {}
    launch(fmp, "m", "-m", "1.5G", "jammy")
    inst = fmp.instance("m")
    assert inst["memory"] == 1536 * 1024**2 and inst["image"] == "22.04"
    assert list_json(fmp)["m"]["release"] == "Ubuntu 22.04 LTS"


def test_name_collision_live_deleted_and_foreign(fmp: FakeMultipass) -> None:
    fmp.add_instance("lb", foreign=True)
    launch(fmp, "web1")
    assert run(fmp, "delete", "web1").returncode == 0
    for name in ("lb", "web1"):
        res = run(fmp, "launch", "-n", name)
        assert (res.returncode, res.stderr) == (
            2,
            f'launch failed: instance "{name}" already exists\n',
        )


# ---- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_stop_start_suspend_delete_recover_purge(fmp: FakeMultipass) -> None:
    launch(fmp, "a")
    launch(fmp, "b")
    res = run(fmp, "stop", "a")
    assert res.returncode == 0 and "Stopping a" in res.stdout
    assert list_json(fmp)["a"] == {
        "ipv4": [],
        "name": "a",
        "release": "Ubuntu 24.04 LTS",
        "state": "Stopped",
    }
    res = run(fmp, "restart", "a")
    assert res.returncode == 2
    assert res.stderr == (
        "restart failed: Instance 'a' is already running, but in an unknown state.\n"
        "Try to stop and start it instead.\n"
    )
    assert run(fmp, "start", "a").returncode == 0
    assert list_json(fmp)["a"]["ipv4"] == ["127.80.0.1"]
    assert run(fmp, "suspend", "b").returncode == 0
    assert list_json(fmp)["b"]["state"] == "Suspended"
    assert run(fmp, "delete", "a").returncode == 0
    listed = run(fmp, "list", "--format", "json").stdout
    items = json.loads(listed)["list"]
    assert [i["state"] for i in items] == ["Suspended", "Deleted"]  # operative first
    res = run(fmp, "start", "a")
    assert res.returncode == 2
    assert "Instance 'a' is deleted. Use 'recover' to recover it or 'purge'" in res.stderr
    res = run(fmp, "exec", "a", "--", "true")
    assert res.stderr == 'exec failed: The following errors occurred:\ninstance "a" is deleted\n'
    assert run(fmp, "delete", "a").returncode == 0  # deleting again is fine
    assert run(fmp, "recover", "a").returncode == 0
    assert list_json(fmp)["a"]["state"] == "Stopped"
    assert run(fmp, "delete", "--all").returncode == 0
    assert {i["state"] for i in list_json(fmp).values()} == {"Deleted"}
    assert run(fmp, "purge").returncode == 0
    assert list_json(fmp) == {}
    launch(fmp, "a")  # the name is free again
    assert run(fmp, "delete", "--purge", "a").returncode == 0
    assert fmp.instances() == {}


def test_missing_instance_errors(fmp: FakeMultipass) -> None:
    for cmd in ("stop", "suspend", "restart", "delete", "recover", "info", "exec"):
        argv = [cmd, "ghost"] + (["--", "true"] if cmd == "exec" else [])
        res = run(fmp, *argv)
        assert res.returncode == 2, cmd
        assert res.stderr == (
            f'{cmd} failed: The following errors occurred:\ninstance "ghost" does not exist\n'
        )
    res = run(fmp, "start", "ghost")
    assert res.returncode == 2
    assert res.stderr.startswith(
        "start failed: instance(s) missing\nInstance 'ghost' does not exist.\n"
    )
    for cmd in ("snapshot", "restore"):
        res = run(
            fmp,
            cmd,
            "ghost" if cmd == "snapshot" else "ghost.s1",
            *(["-d"] if cmd == "restore" else []),
        )
        assert (res.returncode, res.stderr) == (
            2,
            f'{cmd} failed: instance "ghost" does not exist\n',
        )


# ---- exec / transfer ---------------------------------------------------------------------


def test_exec_exit_codes_files_and_canned(fmp: FakeMultipass) -> None:
    launch(fmp, "web1", "--cloud-init", "-", input=CLOUD_CONFIG)
    res = run(fmp, "exec", "web1", "--", "sudo", "cat", "/etc/lab/app.env")
    assert (res.returncode, res.stdout) == (0, "PORT=3000\n")
    assert run(fmp, "exec", "web1", "--", "test", "-f", "/etc/lab/app.env").returncode == 0
    assert run(fmp, "exec", "web1", "--", "test", "-f", "/etc/nope").returncode == 1
    assert run(fmp, "exec", "web1", "--", "exit", "33").returncode == 33
    res = run(fmp, "exec", "web1", "--", "pm2", "jlist")
    assert (res.returncode, res.stderr) == (127, "bash: line 1: pm2: command not found\n")
    fmp.on_exec("web1", ["pm2", "jlist"], stdout="[]\n", rc=0)
    fmp.on_exec("*", ["curl"], stderr="refused\n", rc=7)
    assert run(fmp, "exec", "web1", "--", "sudo", "pm2", "jlist").stdout == "[]\n"
    res = run(fmp, "exec", "web1", "--", "curl", "-s", "localhost")
    assert (res.returncode, res.stderr) == (7, "refused\n")
    res = run(fmp, "exec", "web1", "ls", "-la")
    assert res.returncode == 1
    assert res.stderr == (
        "Unknown options: l, a.\n"
        'Options to the inner command should come after "--", like this:\n'
        "multipass exec <instance> -- <command>\n"
    )
    assert run(fmp, "exec", "web1").stderr == "Wrong number of arguments\n"


def test_start_of_several_instances_boots_them_all_in_one_call(fmp: FakeMultipass) -> None:
    """multipassd starts every named instance, then waits for all: the fake boots them in
    threads (on real VMs a boot takes tens of seconds), each recorded in the one state file."""
    names = ["a", "b", "c", "d"]
    for name in names:
        launch(fmp, name, "--cloud-init", "-", input=CLOUD_CONFIG)
    before = {name: fmp.instance(name)["boot_id"] for name in names}
    assert run(fmp, "stop", *names).returncode == 0
    res = run(fmp, "start", *names)
    assert res.returncode == 0, res.stderr
    listed = list_json(fmp)
    assert {name: listed[name]["state"] for name in names} == dict.fromkeys(names, "Running")
    assert len({listed[name]["ipv4"][0] for name in names}) == 4  # each kept its own address
    assert {name: fmp.instance(name)["boot_id"] for name in names} == {
        name: boot + 1 for name, boot in before.items()
    }


def test_exec_autostarts_stopped_instance(fmp: FakeMultipass) -> None:
    launch(fmp, "web1")
    assert run(fmp, "stop", "web1").returncode == 0
    res = run(fmp, "exec", "web1", "--", "hostname")
    assert res.returncode == 0
    assert "Starting web1" in res.stdout and res.stdout.endswith("web1\n")
    assert list_json(fmp)["web1"]["state"] == "Running"


def test_transfer(fmp: FakeMultipass, tmp_path: Path) -> None:
    launch(fmp, "web1")
    assert run(fmp, "transfer", "-", "web1:/srv/app.js", input="console.log(1)\n").returncode == 0
    assert run(fmp, "exec", "web1", "--", "cat", "/srv/app.js").stdout == "console.log(1)\n"
    res = run(fmp, "transfer", "web1:/srv/app.js", "-")
    assert (res.returncode, res.stdout) == (0, "console.log(1)\n")
    assert run(fmp, "transfer", "-", "-").stderr == "Only one '-' allowed\n"
    assert run(fmp, "transfer", "-", str(tmp_path)).stderr == "Target must be inside an instance\n"
    assert run(fmp, "transfer", "x").stderr == "Not enough arguments given\n"
    assert run(fmp, "stop", "web1").returncode == 0
    res = run(fmp, "transfer", "-", "web1:/x", input="y")
    assert (res.returncode, res.stderr) == (2, 'transfer failed: instance "web1" is not running\n')


# ---- snapshots ---------------------------------------------------------------------------


def test_snapshots(fmp: FakeMultipass) -> None:
    launch(fmp, "web1")
    res = run(fmp, "snapshot", "web1")
    assert (res.returncode, res.stderr) == (
        2,
        "snapshot failed: Multipass can only take snapshots of stopped instances.\n",
    )
    run(fmp, "stop", "web1")
    res = run(fmp, "snapshot", "web1")
    assert res.returncode == 0 and res.stdout.endswith("Snapshot taken: web1.snapshot1\n")
    res = run(fmp, "snapshot", "-n", "pristine", "-c", "clean", "web1")
    assert res.stdout.endswith("Snapshot taken: web1.pristine\n")
    res = run(fmp, "snapshot", "-n", "pristine", "web1")
    assert res.stderr == "snapshot failed: Snapshot already exists: web1.pristine\n"
    res = run(fmp, "snapshot", "-n", "bad.name", "web1")
    assert res.stderr == 'snapshot failed: Invalid snapshot name: "bad.name".\n'
    text = run(fmp, "list", "--snapshots", "--format", "json").stdout
    assert_qt_layout(text)
    assert json.loads(text) == {
        "errors": [],
        "info": {
            "web1": {
                "pristine": {"comment": "clean", "parent": "snapshot1"},
                "snapshot1": {"comment": "", "parent": ""},
            }
        },
    }
    snaps = info_json(fmp, "--snapshots", "web1")["info"]["web1"]["snapshots"]
    assert (
        snaps["snapshot1"]["children"] == ["pristine"]
        and snaps["pristine"]["parent"] == "snapshot1"
    )
    assert snaps["pristine"]["cpu_count"] == "1" and snaps["pristine"]["memory_size"] == "1GiB"
    assert info_json(fmp, "web1")["info"]["web1"]["snapshot_count"] == "2"
    res = run(fmp, "restore", "web1.snapshot1")
    assert res.returncode == 1
    assert res.stderr.rstrip().endswith(
        "Unable to query client for confirmation. Use '--destructive' to automatically discard "
        "current machine state."
    )
    res = run(fmp, "restore", "--destructive", "web1.snapshot1")
    assert res.returncode == 0 and res.stdout.endswith("Snapshot restored: web1.snapshot1\n")
    assert (
        run(fmp, "restore", "-d", "web1.nope").stderr
        == "restore failed: No such snapshot: web1.nope\n"
    )
    assert run(fmp, "restore", "web1").returncode == 1
    run(fmp, "start", "web1")
    res = run(fmp, "restore", "-d", "web1.snapshot1")
    assert (
        res.stderr == "restore failed: Multipass can only restore snapshots of stopped instances.\n"
    )


def test_snapshots_unsupported(fmp: FakeMultipass) -> None:
    fmp.configure(snapshots_unsupported=True)
    fmp.add_instance("web1", state="Stopped")
    res = run(fmp, "snapshot", "web1")
    assert (res.returncode, res.stderr) == (
        2,
        "snapshot failed: The snapshots feature is not implemented on this backend.\n",
    )
    assert "snapshot_count" not in info_json(fmp, "web1")["info"]["web1"]


# ---- faults ------------------------------------------------------------------------------


def test_launch_timeout_leaves_instance_running(fmp: FakeMultipass) -> None:
    fmp.configure(launch_timeout=["web2"])
    launch(fmp, "web1")
    res = run(fmp, "launch", "-n", "web2")
    assert res.returncode == 2
    assert res.stderr == (
        "launch failed: The following errors occurred:\n"
        "timed out waiting for initialization to complete\n"
    )
    assert list_json(fmp)["web2"]["state"] == "Running"
    res = run(fmp, "exec", "web2", "--", "cloud-init", "status")
    assert (res.returncode, res.stdout) == (0, "status: running\n")
    assert (
        run(fmp, "launch", "-n", "web2").stderr == 'launch failed: instance "web2" already exists\n'
    )


def test_ssh_timeout_leaves_unknown(fmp: FakeMultipass) -> None:
    fmp.configure(ssh_timeout={"web1": True})
    res = run(fmp, "launch", "-n", "web1")
    assert res.returncode == 2
    assert res.stderr == (
        "launch failed: The following errors occurred:\nweb1: timed out waiting for response\n"
    )
    assert list_json(fmp)["web1"] == {
        "ipv4": [],
        "name": "web1",
        "release": "Ubuntu 24.04 LTS",
        "state": "Unknown",
    }
    res = run(fmp, "exec", "web1", "--", "true")
    assert (res.returncode, res.stderr) == (
        2,
        "exec failed: Cannot retrieve credentials in unknown state\n",
    )


def test_client_timeout_and_background_completion(fmp: FakeMultipass) -> None:
    fmp.configure(client_timeout=True)
    res = run(fmp, "launch", "-n", "web1")
    assert (res.returncode, res.stderr) == (5, "Timed out waiting for instance launch.\n")
    assert list_json(fmp)["web1"]["state"] == "Running"
    # --timeout covers the whole command; the daemon keeps initialising in the background
    fmp.configure(client_timeout=None, launch_latency=0.2, cloud_init_latency={"web2": 1.3})
    start = time.monotonic()
    res = run(fmp, "launch", "-n", "web2", "--timeout", "1")
    assert (res.returncode, res.stderr) == (5, "Timed out waiting for instance launch.\n")
    assert "Launched" not in res.stdout
    assert 0.9 < time.monotonic() - start < 1.4
    assert list_json(fmp)["web2"]["state"] == "Running"
    res = run(fmp, "exec", "web2", "--", "cloud-init", "status", "--wait")
    assert res.stdout.endswith("status: done\n") and time.monotonic() - start >= 1.5


def test_cloud_init_error_and_degraded(fmp: FakeMultipass) -> None:
    fmp.configure(cloud_init_error=["bad"], cloud_init_degraded=["meh"])
    launch(fmp, "bad", "--cloud-init", "-", input=CLOUD_CONFIG)  # boot-finished semantics
    launch(fmp, "meh")
    launch(fmp, "ok")
    res = run(fmp, "exec", "bad", "--", "cloud-init", "status", "--wait")
    assert (res.returncode, res.stdout) == (1, "status: error\n")
    res = run(fmp, "exec", "bad", "--", "sudo", "tail", "-n", "5", "/var/log/cloud-init-output.log")
    assert (
        "npm: command not found" in res.stdout and "Failed to run module scripts_user" in res.stdout
    )
    res = run(fmp, "exec", "meh", "--", "cloud-init", "status", "--format", "json")
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert doc["status"] == "done" and doc["extended_status"] == "degraded done"
    assert doc["recoverable_errors"] and doc["errors"] == []
    res = run(fmp, "exec", "ok", "--", "cloud-init", "status", "--long")
    assert res.returncode == 0 and res.stdout.startswith("status: done\nextended_status: done\n")


def test_no_ip_and_exec_hang(fmp: FakeMultipass) -> None:
    fmp.configure(no_ip=True, exec_hang=["web1"])
    launch(fmp, "web1")
    assert list_json(fmp)["web1"]["ipv4"] == ["N/A"]
    assert info_json(fmp, "web1")["info"]["web1"]["ipv4"] == []
    proc = subprocess.Popen(
        [str(fmp.executable), "exec", "web1", "--", "true"],
        env=fmp.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # 2 s, not less: a SIGTERM that lands before the fake has started (Python start-up on a
    # machine busy with other tests) ends it unlogged, and the assertions below read its log
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)
    proc.terminate()
    assert proc.wait(timeout=5) != 0
    hung = fmp.calls("exec")[-1]
    assert hung["rc"] == 143 and hung["end_mono"] - hung["start_mono"] > 0.2


def test_fail_after_calls(fmp: FakeMultipass) -> None:
    fmp.configure(fail_after_calls=2)
    launch(fmp, "web1")
    assert run(fmp, "list").returncode == 0
    res = run(fmp, "launch", "-n", "web2")
    assert (res.returncode, res.stderr) == (
        2,
        "launch failed: cannot connect to the multipass socket\n",
    )
    assert run(fmp, "version").returncode == 0


# ---- timing / concurrency / daemons ------------------------------------------------------


def test_cloud_init_latency_running_before_done(fmp: FakeMultipass) -> None:
    # Long enough that the checks below land inside it on a loaded machine (each is a process).
    fmp.configure(cloud_init_latency=4.0)
    proc = subprocess.Popen(
        [str(fmp.executable), "launch", "-n", "web1"],
        env=fmp.environ(),
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 5
    while fmp.instances().get("web1", {}).get("state") != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.poll() is None  # still waiting for initialization
    res = run(fmp, "exec", "web1", "--", "cloud-init", "status")
    assert res.stdout == "status: running\n"
    assert (
        run(
            fmp, "exec", "web1", "--", "test", "-e", "/var/lib/cloud/instance/boot-finished"
        ).returncode
        == 1
    )
    res = run(fmp, "exec", "web1", "--", "cloud-init", "status", "--wait")
    assert res.returncode == 0 and res.stdout.endswith("status: done\n") and "." in res.stdout
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0 and out.endswith("Launched: web1\n")


def test_concurrent_launches_overlap(fmp: FakeMultipass) -> None:
    fmp.configure(launch_latency=0.3, cloud_init_latency=0.2)
    procs = [
        subprocess.Popen(
            [str(fmp.executable), "launch", "-n", f"web{i}"],
            env=fmp.environ(),
            stdout=subprocess.DEVNULL,
        )
        for i in (1, 2, 3)
    ]
    assert [p.wait(timeout=10) for p in procs] == [0, 0, 0]
    assert fmp.max_concurrent("launch") >= 2  # they ran side by side, not one after another
    ips = sorted(i["ipv4"][0] for i in list_json(fmp).values())
    assert ips == ["127.80.0.1", "127.80.0.2", "127.80.0.3"]


def test_daemons_are_separate(fmp: FakeMultipass) -> None:
    other = "unix:/tmp/other_multipass_socket"
    launch(fmp, "web1")
    launch(fmp, "web1", server_address=other)  # same name, other daemon: no collision
    assert list_json(fmp)["web1"]["ipv4"] == ["127.80.0.1"]
    assert list_json(fmp, server_address=other)["web1"]["ipv4"] == ["127.80.1.1"]
    run(fmp, "delete", "--purge", "web1", server_address=other)
    assert list_json(fmp, server_address=other) == {}
    assert "web1" in list_json(fmp)
    fmp.configure(daemon_down={other: True})
    assert run(fmp, "list", server_address=other).returncode == 2
    assert run(fmp, "list").returncode == 0
    assert {c["server_address"] for c in fmp.calls()} == {
        "unix:/var/snap/multipass/common/multipass_socket",
        other,
    }
