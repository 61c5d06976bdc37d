"""Progress during long waits: a live view on a terminal, plain lines elsewhere.

The terminal tests run the real `labctl` in a pseudo-terminal (python's pty module) against the
fake multipass with latencies, so launch and cloud-init take seconds and the view has something
to show: spinner rows per VM, stage, elapsed time and the cloud-init log's last line.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from labctl.cli.progress import LAB_ROW, ProgressView, _LiveState, elapsed, plain_line
from labctl.ops.context import Event
from labctl.ops.up import up
from tests.fake_multipass.fixture import FakeMultipass
from tests.lab_world import with_options
from tests.test_lifecycle import make

LAB = """\
name: hello
domain: hello.lab
app: {name: hello, source: {builtin: hello}}
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 60s, cloud_init: 60s, serve: 1s}
"""
LABCTL = [sys.executable, "-m", "labctl"]
ESCAPE = "\x1b"
LOG_LINE = "Cloud-init v. 25.2-0ubuntu1~24.04.1 running 'modules:final'"  # the fake's log


@pytest.fixture
def world(fake_multipass: FakeMultipass, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "lab.yaml").write_text(LAB)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    # launch blocks until cloud-init's boot-finished (docs/engines/multipass.md): ~5 s, so the log tail
    # (every 3 s) has something to show
    fake_multipass.configure(launch_latency=1, cloud_init_latency=4)
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    env = {
        **os.environ,
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(tmp_path / "hosts"),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": "120",
        "TERM": "xterm-256color",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.pop("NO_COLOR", None)
    return tmp_path, env


def _in_pty(args: list[str], cwd: Path, env: dict[str, str], limit: float = 90) -> tuple[int, str]:
    """Run labctl with stdin/stdout/stderr on a pseudo-terminal; its whole output and exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes labctl
        os.chdir(cwd)
        os.execve(LABCTL[0], [*LABCTL, *args], env)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def test_up_on_a_terminal_shows_live_rows_with_spinner_stage_elapsed_and_log(world) -> None:
    cwd, env = world
    code, out = _in_pty(["up"], cwd, env)
    assert code == 1  # the plain fake has no nginx: up stops at serve (tests/test_cli.py)
    assert "\x1b[?25l" in out  # the live view hides the cursor while it redraws
    frames = set(re.findall(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", out))
    assert len(frames) >= 3  # the spinner moved
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    for vm in ("app1", "app2", "lb"):
        assert re.search(rf"{vm}\s+launch\s+0:0\d\s+launching hello-{vm}", plain), vm
    assert re.search(r"app1\s+launch\s+0:0\d\s+" + re.escape(LOG_LINE), plain)  # the log tail
    assert re.search(r"lab\s+serve\s+0:0\d\s+waiting for http://hello.lab/", plain)
    assert re.search(r"up: 0:\d\d elapsed", plain)
    assert "✗ serve [lb]" in plain  # the summary still follows the view


def test_down_on_a_terminal_shows_one_live_row_per_vm(fake_multipass, world) -> None:
    cwd, env = world
    subprocess.run(
        [*LABCTL, "up", "--quiet"], cwd=cwd, env=env, capture_output=True, timeout=90
    )  # leaves the three VMs (the plain fake stops at serve)
    assert len(fake_multipass.instances()) == 3
    code, out = _in_pty(["down"], cwd, env)
    assert code == 0, out
    assert "\x1b[?25l" in out  # the live view, not plain timestamped lines
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert not re.search(r"\d\d:\d\d:\d\d [✓…]", plain)
    for vm in ("app1", "app2", "lb"):
        assert re.search(rf"✓ {vm}\s+delete\s+\d:\d\d\s+deleted hello-{vm}", plain), plain
    assert re.search(r"down: \d:\d\d elapsed", plain)
    assert plain.count("deleted: hello-app1, hello-app2, hello-lb") == 1  # the summary, once
    assert fake_multipass.instances() == {}


def test_up_piped_prints_plain_timestamped_lines_without_escape_codes(world) -> None:
    cwd, env = world
    proc = subprocess.run(
        [*LABCTL, "up"], cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 1
    assert ESCAPE not in proc.stdout and ESCAPE not in proc.stderr
    lines = proc.stderr.splitlines()
    stamp = r"\d\d:\d\d:\d\d"
    assert any(re.fullmatch(rf"{stamp} … launch     app1 launching hello-app1", ln) for ln in lines)
    assert any(re.fullmatch(rf"{stamp} ✓ launch     app1 hello-app1 launched", ln) for ln in lines)
    assert any(
        re.fullmatch(rf"{stamp} \| launch     app1 {re.escape(LOG_LINE)}.*", ln) for ln in lines
    )


def test_no_color_on_a_terminal_and_quiet(world) -> None:
    cwd, env = world
    code, out = _in_pty(["up"], cwd, {**env, "NO_COLOR": "1"})
    assert code == 1 and ESCAPE + "[?25l" not in out
    assert re.search(r"\d\d:\d\d:\d\d ✓ launch     app2 hello-app2 launched", out)
    quiet = subprocess.run(
        [*LABCTL, "up", "--quiet"], cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )
    assert quiet.returncode == 1
    assert "launch " not in quiet.stderr and "✗ serve [lb]" in quiet.stderr  # errors still


def test_no_progress_flag_means_plain_lines_on_a_terminal(world) -> None:
    cwd, env = world
    code, out = _in_pty(["up", "--no-progress", "--max-parallel", "3"], cwd, env)
    assert code == 1 and "\x1b[?25l" not in out
    assert re.search(r"\d\d:\d\d:\d\d … preflight  checking multipass", out)


def _render(state: _LiveState) -> str:
    console = Console(width=100, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(state.render())
    return console.export_text()


def test_class_view_has_one_row_per_student_and_a_counter() -> None:
    state = _LiveState("up", ["ann", "bob", "cy"])
    assert "0/3 up, 0 failed" in _render(state)
    state.add(Event("launch", "start", "launching cls-ann-app1", vm="ann:app1"))
    state.add(Event("launch", "done", "cls-ann-app1 launched", vm="ann:app1"))
    state.add(Event("cloud-init", "log", "npm ci", vm="ann:app1"))
    shown = _render(state)
    assert re.search(r"ann\s+launch\s+0:00\s+app1: npm ci", shown)  # one VM done: ann is not
    assert re.search(r"bob\s+waiting", shown)
    state.add(Event("up", "done", "up", vm="ann"))
    state.add(Event("up", "fail", "failed at cloud-init", vm="bob"))
    state.add(Event("serve", "done", "late", vm="ann"))  # after its end: the end stands
    shown = _render(state)
    assert "1/3 up, 1 failed" in shown
    assert re.search(r"✓ ann\s+up", shown) and re.search(r"✗ bob\s+up\s+0:00\s+failed at", shown)
    assert len([line for line in shown.splitlines() if line.strip()]) == 4  # 3 students + counter


def test_a_class_check_view_shows_each_students_current_check_and_counts_no_ups() -> None:
    state = _LiveState("check", ["ann", "bob"])
    state.add(Event("check", "start", "failover", vm="ann"))
    state.add(Event("check", "fail", "failover: app2 carries everything", vm="bob"))
    shown = _render(state)
    assert re.search(r"ann\s+check\s+0:00\s+failover", shown)
    assert re.search(r"bob\s+check\s+0:00\s+failover: app2 carries", shown)  # not bob's end
    assert "class check: 2 student(s)" in shown and " up," not in shown


def test_lab_level_events_share_one_row_and_the_clock_restarts_per_stage() -> None:
    state = _LiveState("up", None)
    state.add(Event("preflight", "start", "checking multipass"))
    state.rows[LAB_ROW].since -= 65  # as if preflight had taken 65 s
    assert re.search(r"lab\s+preflight\s+1:05\s+checking multipass", _render(state))
    state.add(Event("serve", "start", "waiting for http://hello.lab/"))
    assert re.search(r"lab\s+serve\s+0:00\s+waiting for", _render(state))
    assert elapsed(3723) == "1:02:03" and elapsed(7) == "0:07"


def test_the_last_frame_after_up_shows_each_vms_last_stage_the_lbs_baseline_too(
    make_world,
) -> None:
    """After serving, the LB stops for its baseline snapshot and the wiring is checked again
    (`lb` once more on its row): the last frame must still say the LB took its baseline."""
    world = make(make_world)
    assert up(with_options(world.ctx, max_parallel=1)).ok  # apps snapshot early, the LB last
    assert [e.stage for e in world.events if e.vm == "lb"][-3:] == ["snapshot", "lb", "lb"]
    state = _LiveState("up", None)
    for event in world.events:
        state.add(event)
    state.finish()
    frame = _render(state)
    for vm in ("app1", "app2", "app3"):
        assert re.search(rf"✓ {vm}\s+baseline\s+\d:\d\d\s+took baseline", frame), frame
    assert re.search(r"✓ lb\s+snapshot\s+\d:\d\d\s+took baseline", frame), frame


def test_a_repeated_stage_that_fails_is_the_rows_last_word() -> None:
    state = _LiveState("up", None)
    for stage in ("lb", "snapshot"):
        state.add(Event(stage, "start", f"{stage} begins", vm="lb"))
        state.add(Event(stage, "done", f"{stage} ended", vm="lb"))
    state.add(Event("lb", "start", "pointing nginx at 2 backend(s)", vm="lb"))
    assert re.search(r"lb\s+lb\s+0:00\s+pointing nginx", _render(state))  # shown while it runs
    state.add(Event("lb", "fail", "nginx -t failed", vm="lb"))
    state.finish()
    assert re.search(r"✗ lb\s+lb\s+0:00\s+nginx -t failed", _render(state))


def test_plain_mode_class_counter_and_ctrl_c_drops_failures_it_caused() -> None:
    console = Console(file=open(os.devnull, "w"), record=True, width=200)  # noqa: SIM115
    view = ProgressView(console)
    with view.showing("up", students=["ann", "bob"]):
        view.on_event(Event("up", "done", "up", vm="ann"))
        view._interrupt()  # what the SIGINT handler does
        view.on_event(Event("launch", "fail", "exec failed: killed", vm="bob:app1"))
        view.on_event(Event("launch", "info", "stopping", vm="bob:app1"))
    text = console.export_text()
    assert re.search(r"\d\d:\d\d:\d\d ✓ up         ann up \(1/2 up, 0 failed\)", text)
    assert "killed" not in text and "stopping" in text
    assert plain_line(Event("lb", "done", "applied", vm="lb"), 0).endswith(
        "✓ lb         lb applied"
    )


CLASS_LAB = """\
name: cls
class:
  students: [ann, bob]
  domain: "{student}.lab"
app: {name: hello, source: {builtin: hello}}
vms:
  - {name: app1, roles: [app]}
  - {name: lb, roles: [lb]}
waits: {launch: 60s, cloud_init: 60s, serve: 1s}
"""


def test_class_up_piped_counts_students_and_words_each_way_on(
    fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from labctl.cli.main import app

    (tmp_path / "lab.yaml").write_text(CLASS_LAB)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    fake_multipass.on_exec("*", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    fake_multipass.configure(cloud_init_error=["cls-ann-app1"])
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(tmp_path / "hosts"),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    result = CliRunner().invoke(app, ["up", "-f", str(tmp_path / "lab.yaml")], env=env)
    assert result.exit_code == 1 and ESCAPE not in result.output
    counters = re.findall(
        r"^\d\d:\d\d:\d\d ✗ up +(\w+) .*\((\d)/2 up, (\d) failed\)$", result.output, re.M
    )
    assert sorted(c[0] for c in counters) == ["ann", "bob"]
    assert sorted(c[2] for c in counters) == ["1", "2"]  # the counter counts
    # ann's cloud-init failed (a rebuild is the way on); bob only stopped at serve (up continues)
    assert "`labctl reset app1 --rebuild --student ann` launches it again" in result.output
    assert "`labctl up` again continues bob (the others are left as they are)" in result.output
    assert "ann: follow the hint printed for that student above." in result.output
