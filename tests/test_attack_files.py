"""The student as attacker, on files: labctl runs as root in a lab folder students can write.

Each test plants what a clever student would (a symlink, a FIFO, a hard link, a folder or a file
of their own: uid 65534 plays the student) and shows labctl refusing it at its root
(labctl/safefs.py for labctl's own folders and the files it writes, labctl/config/files.py for the
files it reads). They need root to chown; CI runs them as root (LABCTL_REQUIRE_SIM=1 forbids
skipping them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.errors import HostsFileError, UnsafePathError
from labctl.host import hostsfile
from labctl.host.agent import lab_key
from labctl.host.hostsfile import update_hosts
from labctl.host.state import LabState
from labctl.ops.up import up
from labctl.render.userdata import STATUS_AGENT_KEY_PATH
from tests.conftest import skip_or_fail
from tests.fake_multipass.fixture import FakeMultipass

STUDENT = 65534  # nobody: the student who planted it
SECRET = "root:$y$j9T$NotForStudentsEyes0123456789abcdefghij:19000:0:99999:7:::"
LAB = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}}
vms:
  - {name: app1, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 60s, cloud_init: 60s, serve: 1s}
"""


@pytest.fixture(autouse=True)
def _as_root() -> None:
    reason = None if os.geteuid() == 0 else "needs root (files are chowned to play a student)"
    skip_or_fail(reason, "file-attack")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's own tmp_path is root's 0700): whether a student
    could read a file must depend on the file, not on pytest's folder."""
    path = Path(tempfile.mkdtemp(prefix="labctl-attack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lab_dir(open_dir: Path) -> Path:
    """A lab folder the students can write to, with lab.yaml and a scratch hosts file."""
    folder = open_dir / "lab"
    folder.mkdir()
    folder.chmod(0o1777)
    (folder / "lab.yaml").write_text(LAB)
    (folder / "lab.yaml").chmod(0o644)
    (open_dir / "hosts").write_text("127.0.0.1 localhost\n")
    return folder


@pytest.fixture
def run(fake_multipass: FakeMultipass, lab_dir: Path) -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str, **env: str | None) -> Any:
        full: dict[str, str | None] = {
            **fake_multipass.env,
            "LABCTL_MULTIPASS": str(fake_multipass.executable),
            "LABCTL_HOSTS_FILE": str(lab_dir.parent / "hosts"),
            "LABCTL_STATE_DIR": None,  # the default: .labctl/ beside lab.yaml, where students are
            "SUDO_UID": None,
            "SUDO_GID": None,
            **env,
        }
        return runner.invoke(app, [*args, "-f", str(lab_dir / "lab.yaml")], env=full)

    return invoke


def victim(tmp_path: Path) -> Path:
    """A root-only file the student would like labctl to empty or overwrite."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    path.chmod(0o600)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, mode=0o700)
    path.chmod(0o700)
    return path


def bounded(call: Callable[[], Any], *, unblock: Callable[[], None]) -> Any:
    """`call()`'s value or exception; a call still blocked after 30 s fails the test (and is
    released with `unblock`) instead of hanging the suite."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        unblock()
        worker.join(30)
        pytest.fail("labctl blocked on a file a student planted")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# --- 1. the state dir and its files --------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "down", "up"])
@pytest.mark.parametrize("dir_owner", [STUDENT, 0])
def test_a_planted_lock_symlink_empties_nothing(
    run: Callable[..., Any], lab_dir: Path, tmp_path: Path, command: str, dir_owner: int
) -> None:
    """Today's attack: `.labctl/hello/lock` -> any file; `check`, `up` or `down` emptied it."""
    target = victim(tmp_path)
    state = lab_dir / ".labctl" / "hello"
    state.mkdir(parents=True)
    (state / "lock").symlink_to(target)
    if dir_owner == STUDENT:  # the student made the state dir before the first run
        for path in (state, state.parent):
            os.chown(path, STUDENT, STUDENT)
            path.chmod(0o777)
    else:  # a root-owned dir with a link left inside from before
        for path in (state, state.parent):
            path.chmod(0o700)
    result = run(command)
    assert target.read_text() == "precious\n"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    [line] = result.output.strip().splitlines()  # one line, saying how to fix it
    assert "rm " in line or "chmod 700" in line, line


@pytest.mark.parametrize("linked", [".labctl", ".labctl/hello"])
def test_a_symlinked_state_dir_gets_nothing_written_where_it_points(
    run: Callable[..., Any], lab_dir: Path, tmp_path: Path, linked: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if linked == ".labctl/hello":
        (lab_dir / ".labctl").mkdir(mode=0o700)
    (lab_dir / linked).symlink_to(elsewhere)
    result = run("up")
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output and "rm " in result.output
    assert list(elsewhere.iterdir()) == []  # no state, no key, no lock written through the link


def test_a_state_dir_a_student_owns_is_refused_saying_how_to_fix_it(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    state = lab_dir / ".labctl" / "hello"
    state.mkdir(parents=True, mode=0o700)
    state.parent.chmod(0o700)
    os.chown(state, STUDENT, STUDENT)
    result = run("status")
    assert result.exit_code == 2, result.output
    assert f"belongs to uid {STUDENT}" in result.output
    assert f"rm -r {state}" in result.output
    assert list(state.iterdir()) == []


def test_a_parent_a_student_owns_is_refused_even_when_the_state_dir_is_root_s(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    """Whoever owns `.labctl/` can rename the entries in it: the parent is checked too."""
    state = private_dir(lab_dir / ".labctl" / "hello")
    os.chown(state.parent, STUDENT, STUDENT)
    state.parent.chmod(0o700)
    result = run("status")
    assert result.exit_code == 2 and f"{state.parent}: it belongs to uid {STUDENT}" in result.output


def test_a_world_writable_state_dir_is_refused_until_chmod_700_and_modes_are_enforced(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    state = lab_dir / ".labctl" / "hello"
    state.mkdir(parents=True)
    state.parent.chmod(0o755)
    state.chmod(0o777)
    refused = run("status")
    assert refused.exit_code == 2 and f"chmod 700 {state}" in refused.output
    state.chmod(0o755)  # not writable by others: accepted, and made private
    LabState(state).record("hello-app1", "app1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "state.json").stat().st_mode) == 0o600


def test_a_fifo_planted_as_a_state_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    fifo = state / "state.json"
    os.mkfifo(fifo)

    def release() -> None:  # what the old code waited for: a writer on the FIFO
        with open(fifo, "w"):
            pass

    with pytest.raises(UnsafePathError, match="FIFO"):
        bounded(lambda: LabState(state).owned(), unblock=release)


def test_a_state_file_linked_to_a_student_s_file_is_not_read(tmp_path: Path) -> None:
    """A state.json that says another lab's VMs are this lab's (`down` would delete them)."""
    state = private_dir(tmp_path / "state")
    forged = tmp_path / "forged.json"
    forged.write_text('{"instances": {"hello-app1": {"vm": "app1"}}}')
    os.chown(forged, STUDENT, STUDENT)
    (state / "state.json").symlink_to(forged)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        LabState(state).owned()
    (state / "state.json").unlink()
    forged.rename(state / "state.json")  # the student's own file, left in the dir
    with pytest.raises(UnsafePathError, match=f"belongs to uid {STUDENT}"):
        LabState(state).owned()


def test_a_hard_linked_lock_empties_nothing(tmp_path: Path) -> None:
    target = victim(tmp_path)
    state = private_dir(tmp_path / "state")
    os.link(target, state / "lock")
    with pytest.raises(UnsafePathError, match="2 hard links"), LabState(state).lock("hello", "up"):
        pass
    assert target.read_text() == "precious\n"


def test_a_dangling_state_lock_link_creates_nothing_where_it_points(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    chosen = tmp_path / "chosen-by-student"
    (state / ".state.lock").symlink_to(chosen)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        LabState(state).record("hello-app1", "app1")
    assert not chosen.exists() and not chosen.is_symlink()


def test_a_directory_planted_as_a_state_file_is_a_clear_refusal(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    (state / "class.json").mkdir()
    with pytest.raises(UnsafePathError, match=r"is a directory.*rm -r"):
        LabState(state).record_placements({"alice": "local"})


def test_hosts_backup_is_written_inside_the_checked_state_dir(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    target = victim(tmp_path)
    (state / "hosts.bak").symlink_to(target)
    block = "# BEGIN labctl demo\n10.0.0.2\tdemo.lab\n# END labctl demo\n"
    assert update_hosts(hosts, "demo", block, backup=LabState(state).save_hosts_backup)
    assert target.read_text() == "precious\n"
    assert (state / "hosts.bak").read_text() == "127.0.0.1 localhost\n"
    assert not (state / "hosts.bak").is_symlink()


# --- 6. LABCTL_STATE_DIR that is not a directory -------------------------------------------------


def test_labctl_state_dir_naming_a_regular_file_is_one_clear_line(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "state-file"
    not_a_dir.write_text("")
    result = run("status", LABCTL_STATE_DIR=str(not_a_dir))
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert f"LABCTL_STATE_DIR {not_a_dir}: is a regular file, not a directory" in line
    assert "point LABCTL_STATE_DIR at a directory" in line


# --- 2. the status-agent key ---------------------------------------------------------------------

KEY_HEX = "ab" * 32


def _plant_owned(path: Path) -> None:
    path.write_text(KEY_HEX + "\n")
    path.chmod(0o600)
    os.chown(path, STUDENT, STUDENT)


def _plant_readable(path: Path) -> None:
    path.write_text(KEY_HEX + "\n")
    path.chmod(0o644)


def _plant_link(path: Path) -> None:
    target = path.parent.parent / "key-elsewhere"
    target.write_text(KEY_HEX + "\n")
    target.chmod(0o600)
    path.symlink_to(target)


def _plant_hard_link(path: Path) -> None:
    target = path.parent.parent / "key-elsewhere"
    target.write_text(KEY_HEX + "\n")
    target.chmod(0o600)
    os.link(target, path)


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (_plant_owned, f"belongs to uid {STUDENT}"),
        (_plant_readable, "has mode 0644"),
        (_plant_link, "symbolic link"),
        (_plant_hard_link, "2 hard links"),
    ],
)
def test_a_key_planted_before_the_first_up_is_replaced_and_up_says_so(
    make_world: Callable[..., Any], plant: Callable[[Path], None], why: str
) -> None:
    world = make_world()
    directory = private_dir(world.ctx.lab_state.directory)
    plant(directory / "status-agent.key")
    assert up(world.ctx).ok
    key = lab_key(directory, create=False)
    assert key is not None and key != bytes.fromhex(KEY_HEX)
    for vm in world.mp.vms.values():
        data = yaml.safe_load(vm.user_data)
        [entry] = [f for f in data["write_files"] if f["path"] == STATUS_AGENT_KEY_PATH]
        assert KEY_HEX not in entry["content"]
    said = [e.message for e in world.events if "status-agent.key" in e.message]
    assert len(said) == 1 and why in said[0] and "made a new key" in said[0], said
    kept = directory / "status-agent.key"
    assert not kept.is_symlink() and kept.stat().st_nlink == 1
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.stat().st_uid == os.geteuid()
    elsewhere = directory.parent / "key-elsewhere"
    assert not elsewhere.exists() or elsewhere.read_text() == KEY_HEX + "\n"  # not written through


def test_a_key_labctl_did_not_make_is_never_used_by_status(tmp_path: Path) -> None:
    directory = private_dir(tmp_path / "state")
    _plant_owned(directory / "status-agent.key")
    told: list[str] = []
    assert lab_key(directory, create=False, on_distrust=told.append) is None
    assert len(told) == 1 and "not used" in told[0]


# --- 3. the hosts-file lock ----------------------------------------------------------------------


@pytest.fixture
def holder() -> Iterator[Callable[..., int]]:
    """Start a process that holds an flock on a file (as `user`, after writing `text` to it)."""
    started: list[int] = []

    def start(path: Path, *, user: int | None = None, text: str = "") -> int:
        ready, tell = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only system calls, then _exit
            try:
                if user is not None:
                    os.setgroups([])
                    os.setgid(user)
                    os.setuid(user)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, text.encode())
                os.write(tell, b"held")
                time.sleep(120)
            finally:
                os._exit(0)
        os.close(tell)
        started.append(pid)
        assert os.read(ready, 4) == b"held"
        os.close(ready)
        return pid

    yield start
    for pid in started:
        stop(pid)


def stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_student_holding_a_lock_in_the_shared_temp_dir_cannot_block_hosts_updates(
    tmp_path: Path, holder: Callable[..., int]
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    digest = hashlib.sha256(str(hosts.resolve()).encode()).hexdigest()[:16]
    predictable = Path(tempfile.gettempdir()) / f"labctl-hosts-{digest}.lock"
    student = holder(predictable, user=STUDENT)  # any local user can make and flock it
    block = "# BEGIN labctl demo\n10.0.0.2\tdemo.lab\n# END labctl demo\n"
    try:
        assert bounded(lambda: update_hosts(hosts, "demo", block), unblock=lambda: stop(student))
    finally:
        predictable.unlink(missing_ok=True)
    assert "demo.lab" in hosts.read_text()
    lock_dir = hostsfile.hosts_lock_dir()
    info = lock_dir.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700


def test_a_held_hosts_lock_is_waited_for_a_bounded_time_and_names_its_holder(
    tmp_path: Path, holder: Callable[..., int]
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    digest = hashlib.sha256(str(hosts.resolve()).encode()).hexdigest()[:16]
    lock = hostsfile.hosts_lock_dir() / f"hosts-{digest}.lock"
    update_hosts(hosts, "demo", None)  # makes the lock dir and file
    other = holder(lock, text='{"pid": 4242, "command": "lab other", "since": 0}')
    with pytest.raises(HostsFileError) as err:
        update_hosts(hosts, "demo", "# BEGIN labctl demo\n# END labctl demo\n", lock_wait=0.2)
    assert "PID 4242 (lab other" in err.value.message and "nothing was changed" in err.value.message
    assert "kill 4242" in str(err.value)
    assert hosts.read_text() == "127.0.0.1 localhost\n"
    stop(other)
    assert update_hosts(hosts, "demo", "# BEGIN labctl demo\n# END labctl demo\n", lock_wait=0.2)


def test_a_user_keeps_the_hosts_lock_in_their_own_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run-1000"))
    assert hostsfile.hosts_lock_dir() == tmp_path / "run-1000" / "labctl"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hostsfile.hosts_lock_dir() == tmp_path / "home" / ".cache" / "labctl"


# --- 4. files labctl writes where the user says ----------------------------------------------------


@pytest.mark.parametrize("where", ["missing-dir/results.xml", "a-dir"])
def test_junit_to_an_unwritable_path_is_refused_before_any_check_runs(
    run: Callable[..., Any], fake_multipass: FakeMultipass, tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-dir").mkdir()
    result = run("check", "--junit", str(tmp_path / where))
    assert result.exit_code == 2, result.output
    assert "no check was run" in result.output
    assert fake_multipass.calls() == []  # nothing was asked of Multipass: no check ran


def test_junit_replaces_a_planted_symlink_instead_of_writing_through_it(
    run: Callable[..., Any], lab_dir: Path, tmp_path: Path
) -> None:
    target = victim(tmp_path)
    results = lab_dir / "results.xml"
    results.symlink_to(target)
    result = run("check", "--junit", str(results))
    assert result.exit_code == 1, result.output  # the lab is not up: checks fail, XML written
    assert target.read_text() == "precious\n"
    assert not results.is_symlink() and results.read_text().startswith("<?xml")


def test_init_never_writes_through_a_planted_link(
    run: Callable[..., Any], lab_dir: Path, tmp_path: Path
) -> None:
    (lab_dir / "lab.yaml").unlink()
    chosen = tmp_path / "cron-like" / "job"  # where the student wants root to write
    chosen.parent.mkdir()
    (lab_dir / "lab.yaml").symlink_to(chosen)
    refused = run("init")
    assert refused.exit_code == 2 and "exists already" in refused.output
    assert not chosen.exists()
    target = victim(tmp_path)
    (lab_dir / "lab.schema.json").symlink_to(target)
    done = run("init", "--force")
    assert done.exit_code == 0, done.output
    assert not chosen.exists() and target.read_text() == "precious\n"
    for name in ("lab.yaml", "lab.schema.json"):
        assert not (lab_dir / name).is_symlink() and (lab_dir / name).stat().st_size > 0


def test_outputs_under_sudo_belong_to_the_user_who_ran_sudo(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    (lab_dir / "lab.yaml").unlink()
    result = run("init", SUDO_UID=str(STUDENT), SUDO_GID=str(STUDENT))
    assert result.exit_code == 0, result.output
    for name in ("lab.yaml", "lab.schema.json"):
        info = (lab_dir / name).stat()
        assert (info.st_uid, info.st_gid) == (STUDENT, STUDENT), name


# --- 5. files labctl reads -----------------------------------------------------------------------


@pytest.fixture
def root_only(open_dir: Path) -> Path:
    """A file only root may read (think /etc/shadow), in a folder anyone may enter."""
    path = open_dir / "shadow"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def test_a_lab_yaml_a_student_linked_to_a_root_only_file_is_refused_unquoted(
    run: Callable[..., Any], lab_dir: Path, root_only: Path
) -> None:
    (lab_dir / "lab.yaml").unlink()
    (lab_dir / "lab.yaml").symlink_to(root_only)
    os.lchown(lab_dir / "lab.yaml", STUDENT, STUDENT)
    result = run("validate")
    assert result.exit_code == 2, result.output
    assert f"uid {STUDENT}" in result.output and "cannot read" in result.output
    assert "NotForStudents" not in result.output


def test_a_link_to_a_file_its_owner_may_read_is_read(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    (lab_dir / "real.yaml").write_text(LAB)
    (lab_dir / "real.yaml").chmod(0o644)
    (lab_dir / "lab.yaml").unlink()
    (lab_dir / "lab.yaml").symlink_to(lab_dir / "real.yaml")
    os.lchown(lab_dir / "lab.yaml", STUDENT, STUDENT)
    assert run("validate").exit_code == 0


def test_under_sudo_a_link_to_a_file_the_user_cannot_read_is_refused(
    run: Callable[..., Any], lab_dir: Path, root_only: Path
) -> None:
    (lab_dir / "lab.yaml").unlink()
    (lab_dir / "lab.yaml").symlink_to(root_only)  # root's own link: only sudo's user is asked
    result = run("validate", SUDO_UID=str(STUDENT), SUDO_GID=str(STUDENT))
    assert result.exit_code == 2 and "who ran sudo" in result.output
    assert "NotForStudents" not in result.output


CLASS_LAB = """\
name: cls
domain: class.invalid
app: {{name: hello, source: {{builtin: hello}}}}
vms:
  - {{name: app1, roles: [app]}}
  - {{name: lb, roles: [lb]}}
class:
  roster: {roster}
  domain: "{{student}}.cls.lab"
"""


@pytest.mark.parametrize("how", ["link", "named"])
def test_a_roster_a_student_points_at_a_root_only_file_is_refused_unquoted(
    run: Callable[..., Any], lab_dir: Path, root_only: Path, how: str
) -> None:
    lab = lab_dir / "lab.yaml"
    if how == "link":  # roster.csv -> the root-only file
        lab.write_text(CLASS_LAB.format(roster="roster.csv"))
        (lab_dir / "roster.csv").symlink_to(root_only)
        os.lchown(lab_dir / "roster.csv", STUDENT, STUDENT)
    else:  # the student's lab.yaml names the root-only file itself
        lab.write_text(CLASS_LAB.format(roster=root_only))
        os.chown(lab, STUDENT, STUDENT)
    result = run("validate")
    assert result.exit_code == 2, result.output
    assert "class.roster" in result.output and "cannot read" in result.output
    assert "NotForStudents" not in result.output


def test_roster_problems_quote_values_cut_short_and_only_so_many(
    run: Callable[..., Any], lab_dir: Path
) -> None:
    garbage = [f"{i}:" + "x" * 300 for i in range(200)]  # any file named as a roster
    (lab_dir / "roster.csv").write_text("\n".join(garbage) + "\n")
    (lab_dir / "lab.yaml").write_text(CLASS_LAB.format(roster="roster.csv"))
    result = run("validate")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 12, len(lines)
    assert all("x" * 41 not in line for line in lines)
    assert "190 more entries" in result.output


def test_concurrent_hosts_updates_lose_no_block_and_leave_no_lock_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    labs = [f"lab{i}" for i in range(8)]
    failures: list[BaseException] = []

    def add(lab: str) -> None:
        try:
            for _ in range(5):
                block = f"# BEGIN labctl {lab}\n10.0.0.2\t{lab}.lab\n# END labctl {lab}\n"
                update_hosts(hosts, lab, block)
                update_hosts(hosts, lab, None)
            update_hosts(
                hosts, lab, f"# BEGIN labctl {lab}\n10.0.0.2\t{lab}.lab\n# END labctl {lab}\n"
            )
        except BaseException as exc:  # handed to the test
            failures.append(exc)

    workers = [threading.Thread(target=add, args=(lab,)) for lab in labs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not failures and all(not w.is_alive() for w in workers)
    text = hosts.read_text()
    assert all(text.count(f"{lab}.lab") == 1 for lab in labs), text
    digest = hashlib.sha256(str(hosts.resolve()).encode()).hexdigest()[:16]
    assert not (hostsfile.hosts_lock_dir() / f"hosts-{digest}.lock").exists()


def test_a_state_file_replaced_while_it_is_read_is_still_labctls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads of one `up` rewrite snapshots.json while others read it: a reader's descriptor then
    names a file with no link left (renamed over), which is labctl's own old copy, not an attack."""
    from labctl import safefs

    state = LabState(tmp_path / "state")
    state.set_note("stage", "lb")
    real_fstat = os.fstat
    replaced: list[bool] = []

    def fstat_after_a_rewrite(fd: int) -> os.stat_result:
        if not replaced and stat.S_ISREG(real_fstat(fd).st_mode):
            replaced.append(True)
            state.set_note("other", "x")  # renames a new snapshots.json over the open one
        return real_fstat(fd)

    monkeypatch.setattr(safefs.os, "fstat", fstat_after_a_rewrite)
    assert state.note("stage") == "lb"
    assert replaced
