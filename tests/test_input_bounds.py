"""Hostile and mistaken input (docs/security.md): files labctl reads are bounded (FIFO, devices,
oversized: exit 2 at once), the `source: path` walk decides what leaves the host, and names the
machine already uses are refused.

The hang tests run labctl as a subprocess with a generous timeout: they check "did not hang",
never a speed (speed is measured in bench/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.config.load import load_lab, parse_lab
from labctl.config.names import HostFacts
from labctl.config.sources import MAX_SOURCE_BYTES, walk_source
from labctl.host.resources import HostResources
from labctl.ops.context import RunOptions
from labctl.ops.validation import check_lab

LAB = "name: demo\ndomain: demo.lab\nvms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
NOT_HANGING = 60  # seconds: generous; a hang is forever


def run_validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    env = {**os.environ, "LABCTL_HOSTS_FILE": str(hosts), "LABCTL_STATE_DIR": str(tmp_path / "s")}
    return subprocess.run(
        [sys.executable, "-m", "labctl", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=NOT_HANGING,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "kind"),
    [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")],
)
def test_device_as_lab_file_is_refused_at_once(tmp_path: Path, target: str, kind: str) -> None:
    result = run_validate(Path(target), tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip() == f"{target}: is {kind}, expected a lab.yaml file (a regular file)"
    )


def test_fifo_as_lab_file_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "lab.yaml"
    os.mkfifo(fifo)
    result = run_validate(fifo, tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{fifo}: is a FIFO (named pipe), expected a lab.yaml file (a regular file)"
    )


def test_socket_as_lab_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lab.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        result = run_validate(path, tmp_path)
    assert result.returncode == 2
    assert "is a socket, expected a lab.yaml file" in result.stderr


def test_oversized_lab_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    with path.open("wb") as handle:  # sparse: 4 GiB that would take long to read
        handle.truncate(4 * 1024**3)
    result = run_validate(path, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: file is {4 * 1024**3} bytes; a lab.yaml over 256 KiB")


@pytest.mark.parametrize("roster", ["fifo", "/dev/zero", "/dev/urandom"])
def test_roster_that_is_not_a_regular_file_is_refused(tmp_path: Path, roster: str) -> None:
    if roster == "fifo":
        os.mkfifo(tmp_path / "students.csv")
        roster = "students.csv"
    path = tmp_path / "lab.yaml"
    path.write_text(
        f"name: demo\nclass: {{roster: '{roster}', domain: '{{student}}.demo.lab'}}\n"
        "vms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
    )
    result = run_validate(path, tmp_path)
    assert result.returncode == 2
    kind = "a FIFO (named pipe)" if roster == "students.csv" else "a character device"
    assert f"{path}:2:9: class.roster: '{roster}': is {kind}, expected a roster" in result.stderr


# --- the source walk ------------------------------------------------------------------------------


def _path_lab(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(
        LAB + f"app: {{source: {{path: ./app{extra}}}, start: {{script: server.js}}}}\n"
    )
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "server.js").write_text("// app\n")
    return path


def test_private_files_stay_home_unless_named(tmp_path: Path) -> None:
    _path_lab(tmp_path)
    app_dir = tmp_path / "app"
    (app_dir / ".env").write_text("TOKEN=1\n")
    (app_dir / ".env.example").write_text("TOKEN=\n")
    (app_dir / ".ssh").mkdir()
    (app_dir / ".ssh" / "id_ed25519").write_text("key\n")
    walk = walk_source(tmp_path, "./app")
    packed = {e.relative for e in walk.entries}
    assert packed == {"", "server.js", ".env.example"}
    assert walk.left_home == (".env", ".ssh")
    walk = walk_source(tmp_path, "./app", [".env"])
    assert ".env" in {e.relative for e in walk.entries} and walk.left_home == (".ssh",)


def test_size_is_counted_while_walking(tmp_path: Path) -> None:
    _path_lab(tmp_path)
    for i in range(3):  # sparse files: the walk counts sizes, it reads nothing
        with (tmp_path / "app" / f"blob{i}").open("wb") as handle:
            handle.truncate(MAX_SOURCE_BYTES // 2)
    walk = walk_source(tmp_path, "./app")
    assert walk.problems == (
        "holds more than 64 MiB of files (stopped counting); an app packed into user-data must be "
        "smaller: leave build output out, or use a git source (node_modules and .git are never "
        "packed)",
    )


def test_hard_links_and_links_out_are_reported_by_validate(tmp_path: Path) -> None:
    path = _path_lab(tmp_path)
    (tmp_path / "secret").write_text("s\n")
    os.link(tmp_path / "secret", tmp_path / "app" / "copy")
    (tmp_path / "app" / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "app" / "pipe")
    result = run_validate(path, tmp_path)
    assert result.returncode == 2
    prefix = f"{path}:6:16: app.source.path: "
    assert result.stderr.splitlines() == [
        prefix + "'copy' is a hard link (2 names for one file); labctl packs only files that live "
        "in the app folder: copy it instead",
        prefix + "'passwd' is a symlink to '/etc/passwd', outside the app folder; labctl never "
        "follows it (copy what the app needs into the folder, or remove the link)",
    ]


def test_source_dir_that_is_a_symlink_out_of_the_lab_folder_is_refused(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (lab_dir / "app").symlink_to(tmp_path / "elsewhere")
    walk = walk_source(lab_dir, "./app")
    assert walk.problems and "outside lab.yaml's folder" in walk.problems[0]


# --- names the machine already uses, warnings ----------------------------------------------------


def test_names_in_the_hosts_file_outside_labctl_and_the_hostname_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.replace("domain: demo.lab", "domain: intranet.corp\naliases: [mybox]"))
    facts = HostFacts("mybox", {"intranet.corp": "10.1.1.1 intranet.corp"})
    found = check_lab(load_lab(path), facts=facts, host=HostResources(8, None, None, "/"))
    assert found.problems == [
        f"{path}:2:1: domain: 'intranet.corp' is already in the hosts file outside labctl's entries "
        "('10.1.1.1 intranet.corp'); labctl will not point a system name at a lab VM: pick another "
        "name or remove that line yourself",
        f"{path}:3:11: aliases[0]: 'mybox' is this machine's own name (mybox); a hosts entry would "
        "point it at a lab VM",
    ]
    assert check_lab(load_lab(path), facts=facts, options=RunOptions(no_hosts=True)).problems == []


def test_hosts_file_block_of_labctl_is_not_a_system_name(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n# BEGIN labctl demo\n10.0.0.2\tdemo.lab\n# END labctl demo\n"
    )
    path = tmp_path / "lab.yaml"
    path.write_text(LAB)
    assert check_lab(load_lab(path), hosts_file=hosts).problems == []
    hosts.write_text("127.0.0.1 localhost\n10.0.0.2 demo.lab  # pasted by hand\n")
    assert check_lab(load_lab(path), hosts_file=hosts).problems


@pytest.mark.parametrize(
    ("domain", "says"),
    [
        ("demo.dev", ".dev is HSTS-preloaded: browsers only connect to it over https"),
        ("demo.app", ".app is HSTS-preloaded"),
        ("demo.local", ".local is multicast DNS (RFC 6762)"),
        ("demo.localhost", "Chrome and Firefox resolve *.localhost to 127.0.0.1 themselves"),
        ("demo.test", ".test is reserved for testing (RFC 6761)"),
    ],
)
def test_special_use_tlds_warn_on_stderr_and_pass(tmp_path: Path, domain: str, says: str) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.replace("demo.lab", domain))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    result = CliRunner().invoke(
        app, ["validate", "-f", str(path)], env={"LABCTL_HOSTS_FILE": str(hosts)}
    )
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:2:1: domain: {domain!r}: " in result.stderr and says in result.stderr


def test_disk_over_the_free_disk_is_a_warning_in_validate(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB + "defaults: {disk: 100G}\n")
    small = HostResources(8, None, 50 * 1024**3, "/var/snap/multipass")
    found = check_lab(load_lab(path), facts=HostFacts(), host=small)
    assert found.problems == []
    assert found.warnings == [
        f"warning: {path}:6:12: defaults.disk: the lab's VM disks add up to 200.0 GiB; 50.0 GiB "
        "free in /var/snap/multipass: `up` refuses to launch new VMs that do not fit (--force "
        "launches anyway)"
    ]


def test_compose_style_extension_keys_are_ignored() -> None:
    lab = parse_lab(
        "x-vm: &vm {roles: [app]}\n"
        + LAB.replace("{name: app1, roles: [app]}", "{<<: *vm, name: app1}")
    )
    assert lab.vms[0].roles == ["app"]
