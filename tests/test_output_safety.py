"""A student with root in their VMs tries to drive the instructor's terminal through labctl.

Every VM answer here is hostile: pm2 names and states, cloud-init's status and log, nginx's
errors, a custom check's output, multipass's error text, a VM's state, the multipass driver name.
Each carries an OSC 52 clipboard write, a clear screen, a bidi override, C1 and DEL bytes, a
zero-width space, rich markup and an emoji code, and ends in carriage-return/backspace redraws.
labctl runs for real (typer's CliRunner on the real app; in-memory Multipass, loopback only) and
its whole output must show each of them, tagged by the field it came through, and obey none.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import socket
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import tests.test_progress as progress_tests
from labctl.cli import app as app_module
from labctl.cli import jsonout
from labctl.cli import labs as cli_labs
from labctl.cli.main import app
from labctl.cli.printers import grades
from labctl.cli.progress import ProgressView, _LiveState
from labctl.cli.terminal import SafeConsole, log_line, one_line, tidy_log, visible, xml_text
from labctl.config.load import LabFile, parse_lab
from labctl.engine.base import ExecResult
from labctl.engine.multipass.errors import MultipassError
from labctl.host.resources import HostResources
from labctl.host.state import LabState
from labctl.ops.checks.base import CheckResult, LabChecks
from labctl.ops.classroom.contexts import ClassContext
from labctl.ops.classroom.fanout import StudentRun
from labctl.ops.context import Event, LabContext, RunOptions
from labctl.render.userdata import VM_STATUS_COMMAND
from tests.cli_world import WorldContexts
from tests.fake_multipass.fixture import FakeMultipass
from tests.lab_world import hosts_file_resolver
from tests.memory_engine import MemoryEngine, MemoryVm

# What a student writes into a field: the part every output must show, escaped...
CORE = (
    "\x1b]52;c;aGk=\x07"  # OSC 52: overwrite the instructor's clipboard
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\u202eevil\u2066"  # bidi override and isolate: the line reads backwards
    "\x9b1m\x7f\u200b"  # C1 CSI, DEL, zero-width space
    "[red]R[/]:x:[link=h]L[/link]"  # rich markup and an emoji code
)
# ...and redraws (NEL, line separator, CR, backspace) that may end a line where it goes.
TAIL = "\x85\u2028\rX\b"
SHOWN = (
    r"\x1b]52;c;aGk=\x07\x1b[2J\x1b[H\u202eevil\u2066\x9b1m\x7f\u200b"
    + "[red]R[/]:x:[link=h]L[/link]"
)
# None of these may reach the terminal as they are.
RAW = ["\x1b", "\x07", "\u202e", "\u2066", "\x9b", "\x7f", "\u200b", "\x85", "\u2028", "\r", "\b"]


def hostile(tag: str, *, tail: bool = True) -> str:
    return f"{tag}-{CORE}" + (TAIL if tail else "")


def shown(tag: str) -> str:
    return f"{tag}-{SHOWN}"


def assert_safe(text: str, *tags: str) -> None:
    """Nothing hostile got through raw, no markup or emoji was interpreted, and each tagged
    field is there, visible."""
    for raw in RAW:
        assert raw not in text, f"raw {raw!r} reached the output"
    assert "❌" not in text  # the emoji code stayed text
    for tag in tags:
        assert shown(tag) in text, f"{tag}: not shown as text"


# --- the design: one console, no way around it -------------------------------------------------

CLI = Path(__file__).resolve().parent.parent / "labctl" / "cli"


def test_the_cli_prints_only_through_the_safe_console() -> None:
    """No plain rich Console, no markup switched on, no print or write beside the console."""
    paths = sorted(CLI.rglob("*.py"))  # the command modules and printers too
    assert len(paths) > 25
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "rich.markup", f"{path.name}: escaping by hand"
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            attr = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            assert name not in ("Console", "print"), f"{path.name}:{node.lineno}: {name}("
            assert attr not in ("echo", "secho", "write") or path.name == "terminal.py", (
                f"{path.name}:{node.lineno}: .{attr}( around the console"
            )
            for keyword in node.keywords:
                if keyword.arg in ("markup", "emoji") and isinstance(keyword.value, ast.Constant):
                    assert keyword.value.value is False, f"{path.name}:{node.lineno}"


# --- the neutraliser itself --------------------------------------------------------------------


def test_every_control_format_surrogate_and_separator_code_point_is_made_visible() -> None:
    dangerous = [
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        and chr(code) not in "\t\n"
    ]
    assert len(dangerous) > 2000  # C0, C1, DEL, the format characters, the surrogates
    missed = [f"U+{ord(c):04X}" for c in dangerous if visible(c) == c]
    assert not missed
    text = "".join(dangerous)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in visible(text))
    assert visible(visible(text)) == visible(text)  # once is enough, twice changes nothing
    assert visible("a\tb\nc\r\nd") == "a\tb\nc\nd" and one_line("a\nb") == r"a\nb"
    assert visible("plain text, ünïcode, emoji 🙂, [brackets] :colons:") == (
        "plain text, ünïcode, emoji 🙂, [brackets] :colons:"
    )


def test_a_log_line_keeps_the_last_frame_of_its_redraws_and_shows_the_rest() -> None:
    spinner = "\x1b[2K\x1b[0A\x1b[0EStarting hello-app1  \b|\b/\b-"  # multipass's spinner
    assert log_line(spinner) == "Starting hello-app1 -"
    assert log_line("npm ci\n 10%\r 55%\r100%\r\n\n") == "100%"
    assert log_line("\x1b[32mok\x1b[0m") == "ok"  # colour is noise in a one-line tail
    assert log_line(hostile("log")) == shown("log") + r"\x85\u2028"  # "X\b" took itself back
    assert tidy_log("a\x1b[2Jb\r\nc\u202e") == "a\\x1b[2Jb\nc\\u202e"  # not noise: shown


def test_xml_text_leaves_nothing_an_xml_1_0_parser_rejects() -> None:
    every_c0 = "".join(chr(c) for c in range(0x20))
    text = f"{every_c0}\ufffe\uffff\ud800\udfff{CORE}"
    ET.fromstring(f"<a b='{xml_text(text)}'>{xml_text(text)}</a>".replace("&", "&amp;"))


# --- a world of hostile VMs, through the real CLI ----------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lab_text(port: int, *, student_class: bool = False) -> str:
    head = (
        'name: cls\nclass:\n  students: [alice, bob]\n  domain: "{student}.lab"\n'
        if student_class
        else "name: hello\ndomain: hello.lab\n"
    )
    # A lab value too: the custom check's expected output (shown back in its failure reason).
    expected = json.dumps(hostile("labvalue", tail=False))
    return head + (
        f"app: {{name: hello, source: {{builtin: hello}}, port: {port}}}\n"
        "vms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
        f"lb: {{port: {port}}}\n"
        "waits: {launch: 60s, cloud_init: 60s, serve: 1s, check: 2s}\n"
        "manage_hosts: false\nsnapshots: {baseline: false}\n"
        "checks:\n"
        "  - name: student-says\n"
        "    command: {vm: app1, run: cat answer}\n"
        "  - name: expects-text\n"
        f"    command: {{vm: app1, run: cat answer, exit_code: 1, output: {expected}}}\n"
    )


LOG = (
    "Cloud-init v. 25.2 running 'modules:final'\n"
    f"\x1b[2K\x1b[0A\x1b[0E 40%\r{hostile('log', tail=False)}  \b|\b/\r\n"
)


def vm_status(vm: str) -> dict[str, Any]:
    if vm == "lb":
        return {
            "cloud_init": {"status": hostile("cloudinit")},
            "app": None,
            "nginx": {"active": True, "config_ok": False, "config_error": hostile("nginxerr")},
        }
    processes = [
        {"name": "hello", "status": hostile("pm2status"), "restarts": 0, "pid": 7},
        {"name": hostile("pm2name"), "status": "online", "restarts": 1, "pid": 8},
    ]
    return {
        "cloud_init": {"status": "done"},
        "app": {"pm2_daemon": True, "processes": processes, "port_open": True},
        "nginx": None,
    }


def guest(mp: MemoryEngine, name: str, argv: list[str]) -> ExecResult | None:
    """What a student's VM answers to labctl's commands."""
    vm = name.rsplit("-", 1)[-1]
    if argv == list(VM_STATUS_COMMAND):
        return ExecResult(0, json.dumps(vm_status(vm)), "")
    if argv == ["sudo", "nginx", "-T"]:
        return ExecResult(1, "", f"nginx: [emerg] {hostile('nginxdump')}\n")
    if argv[:2] == ["sh", "-c"]:
        return ExecResult(1, f"first line\n{hostile('checkout', tail=False)}\b\n", "")
    if argv[:2] == ["sudo", "tail"]:
        return ExecResult(0, LOG, "")
    if argv[:2] == ["cloud-init", "status"] and mp.cloud_init_rc.get(name):
        return ExecResult(mp.cloud_init_rc[name], f"{hostile('cistatus', tail=False)}\n", "")
    return None


@dataclass
class Hostile:
    """The in-memory Multipass with hostile VMs, wired into the CLI in place of the real one."""

    tmp: Path
    mp: MemoryEngine
    lab: Path
    run: Callable[..., Result]
    ctx: LabContext


def _build(tmp: Path, monkeypatch: pytest.MonkeyPatch, *, student_class: bool) -> Hostile:
    port = _closed_port()  # nothing listens: every HTTP probe is refused at once, on loopback
    text = _lab_text(port, student_class=student_class)
    lab = tmp / "lab.yaml"
    lab.write_text(text)
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    mp = MemoryEngine()
    mp.exec_hook = lambda name, argv: guest(mp, name, argv)
    parsed = parse_lab(text)
    labs = [parsed.for_student(s) for s in parsed.students] if student_class else [parsed]
    for index, one in enumerate(labs):
        for n, vm in enumerate(one.vms):
            address = f"127.0.{20 + index}.{n + 1}"
            mp.ips[one.instance_name(vm)] = address
            mp.vms[one.instance_name(vm)] = MemoryVm(one.instance_name(vm), ipv4=[address])
    plenty = HostResources(64, 2**40, 2**40, "/", 2**40)
    ctx = LabContext(
        lab_file=LabFile(parsed, lab, "0" * 64),
        engine=mp,
        hosts_file=hosts,
        resolver=hosts_file_resolver(hosts),
        sleep=lambda s: None,
        probe_interval=0.05,
        state=LabState(tmp / "state" / parsed.name),
        host=lambda: plenty,
        can_sudo=lambda: False,
        status_agent=None,
    )
    for vm in parsed.vms if not student_class else []:
        ctx.lab_state.record(parsed.instance_name(vm), vm.name)

    def classroom(lab_file: LabFile, options: RunOptions, on_event: Any) -> ClassContext:
        return ClassContext(
            options=options,
            lab_file=lab_file,
            on_event=on_event,
            hosts_file=hosts,
            resolver=hosts_file_resolver(hosts),
            sleep=lambda s: None,
            probe_interval=0.05,
            host=lambda: plenty,
            can_sudo=lambda: False,
            engine_for=lambda address: mp,
            state_root=tmp / "state",
            status_agent=None,
        )

    monkeypatch.setattr(cli_labs, "contexts", WorldContexts(ctx, classroom))
    for console in (app_module.stdout, app_module.stderr):
        monkeypatch.setattr(console, "width", 4000)  # no table cell wraps a value apart

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, [*args, "-f", str(lab)], env={"NO_COLOR": "1"})

    return Hostile(tmp, mp, lab, run, ctx)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hostile:
    return _build(tmp_path, monkeypatch, student_class=False)


@pytest.fixture
def class_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hostile:
    return _build(tmp_path, monkeypatch, student_class=True)


def test_status_table_and_json(world: Hostile) -> None:
    table = world.run("status")
    assert table.exit_code == 1, table.output
    assert_safe(table.output, "pm2status", "pm2name", "cloudinit", "nginxerr")
    doc = world.run("status", "--json")
    data = json.loads(doc.stdout)  # still valid JSON, and the values exactly as the VM sent them
    app1, lb = data["vms"]
    assert [p["name"] for p in app1["pm2"]] == ["hello", hostile("pm2name")]
    assert lb["cloud_init"] == hostile("cloudinit") and lb["nginx_error"] == hostile("nginxerr")
    assert_safe(doc.stdout)


def test_check_table_json_and_junit(world: Hostile) -> None:
    junit = world.tmp / "results.xml"
    checks = ["app-online", "reverse-proxy", "student-says", "expects-text"]
    only = [arg for name in checks for arg in ("-c", name)]
    table = world.run("check", *only, "--junit", str(junit))
    assert table.exit_code == 1, table.output
    assert_safe(table.output, "pm2status", "nginxdump", "checkout")
    assert "[red]R[/]:x:" in table.output.split("expects-text", 1)[1]  # the lab value, as text
    root = ET.parse(junit).getroot()  # well-formed, whatever the VMs said
    reasons = " ".join(f.get("message", "") for f in root.iter("failure"))
    assert_safe(reasons, "pm2status", "nginxdump", "checkout")
    doc = world.run("check", *only, "--json")
    data = json.loads(doc.stdout)
    reasons = " ".join(c["reason"] for c in data["labs"][0]["checks"])
    assert "nginxdump-" + CORE in reasons  # JSON carries the exact text; json.dumps escapes it
    assert_safe(doc.stdout)


def test_class_status_matrix_and_check_matrix(class_world: Hostile) -> None:
    matrix = class_world.run("status")
    assert matrix.exit_code == 1, matrix.output
    assert_safe(matrix.output, "pm2status", "cloudinit", "nginxerr")  # pm2 names: a summary
    assert json.loads(class_world.run("status", "--json").stdout)["students"]
    graded = class_world.run("check", "-c", "reverse-proxy", "-c", "student-says")
    assert graded.exit_code == 1, graded.output
    assert_safe(graded.output, "nginxdump", "checkout")
    junit = class_world.tmp / "class.xml"
    class_world.run("check", "-c", "student-says", "--junit", str(junit))
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["alice", "bob"]  # one student cannot sink both


def test_up_progress_failures_and_log_tail_in_plain_mode(world: Hostile) -> None:
    world.mp.vms.clear()  # up launches everything
    world.mp.cloud_init_rc["hello-app1"] = 1
    world.mp.fail_launch["hello-lb"] = MultipassError(f"launch failed: {hostile('launch')}")
    result = world.run("up")
    assert result.exit_code == 1, result.output
    assert_safe(result.output, "launch", "log")
    assert re.search(
        r"\d\d:\d\d:\d\d ✗ launch +lb launch failed: " + re.escape(shown("launch")), result.output
    )
    assert "| " + shown("log") in result.output  # the failure's last log lines, tidied


def test_reset_snapshot_and_down(world: Hostile) -> None:
    world.mp.fail_snapshot["hello-app1"] = MultipassError(hostile("snapshot"))
    saved = world.run("snapshot", "save", "before")
    assert saved.exit_code == 1, saved.output
    assert_safe(saved.output, "snapshot")
    world.mp.cloud_init_rc["hello-app1"] = 3  # cloud-init status unreadable: its output is shown
    reset = world.run("reset", "app1")
    assert reset.exit_code == 1, reset.output
    assert_safe(reset.output, "cistatus")

    def refuse(names: object, *, purge: bool = True) -> None:
        raise MultipassError(hostile("down"), hint=f"hint: {hostile('downhint')}")

    world.mp.delete = refuse  # type: ignore[method-assign]
    down = world.run("down")
    assert down.exit_code == 1
    assert_safe(down.output, "down", "downhint")
    assert "error: " + shown("down") in down.output


def test_errors_with_hints_and_values_from_the_command_line(world: Hostile) -> None:
    world.mp.vms["hello-lb"].state = hostile("state")
    refused = world.run("logs", "lb")
    assert refused.exit_code == 1
    assert_safe(refused.output, "state")
    assert "Start the lab with `labctl up`." in refused.output  # the hint follows
    missing = CliRunner().invoke(app, ["status", "-f", hostile("path", tail=False)])
    assert missing.exit_code == 2
    assert_safe(missing.output, "path")
    no_vm = world.run("logs", hostile("vmname", tail=False))
    assert no_vm.exit_code == 2
    assert_safe(no_vm.output)
    assert "\\x1b]52;c;" in no_vm.output
    usage = CliRunner().invoke(app, ["status", "--" + hostile("option", tail=False)])
    assert usage.exit_code == 2
    assert_safe(usage.output)
    assert "No such option: --option-\\x1b]52;c;aGk" in usage.output  # click cuts at "="


def test_a_hostile_lab_value_in_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text(f"name: {json.dumps(hostile('labname'))}\ndomain: x.lab\n")
    result = CliRunner().invoke(app, ["validate", "-f", str(bad)])
    assert result.exit_code == 2
    assert_safe(result.output)
    assert "\\x1b]52;c;" in result.output or "\\x1b" in result.output
    doc = CliRunner().invoke(app, ["validate", "--json", "-f", str(bad)])
    assert json.loads(doc.stdout)["ok"] is False
    assert_safe(doc.stdout)


def test_doctor_and_plan(world: Hostile) -> None:
    world.mp.driver = hostile("driver")
    doctor = world.run("doctor")
    assert_safe(doctor.output, "driver")
    json.loads(world.run("doctor", "--json").stdout)

    def unreachable() -> list[object]:
        raise MultipassError(hostile("plan"))

    world.mp.list = unreachable  # type: ignore[method-assign]
    plan = world.run("plan")
    assert plan.exit_code == 0, plan.output
    assert_safe(plan.output, "plan")
    notes = json.loads(world.run("plan", "--json").stdout)["notes"]
    assert any(hostile("plan") in note for note in notes)


def test_logs_are_shown_tidied_unless_raw_is_asked_for(world: Hostile) -> None:
    shown_logs = world.run("logs", "app1")
    assert shown_logs.exit_code == 0, shown_logs.output
    assert_safe(shown_logs.output, "log")
    assert " 40%" not in shown_logs.output  # a redraw's earlier frame
    raw = world.run("logs", "app1", "--raw")
    assert raw.stdout_bytes == LOG.encode()  # the user asked for the bytes as the VM has them


# --- the live view ------------------------------------------------------------------------------


def _terminal() -> tuple[SafeConsole, io.StringIO]:
    out = io.StringIO()
    return SafeConsole(file=out, force_terminal=True, width=400, color_system="truecolor"), out


LIVE_RAW = ["\x1b]52", "\x1b[2J", "\x1b[H", "\x1b[0A", "\x1b[0E", "\u202e", "\x9b", "\x7f", "\x07"]


def test_the_live_view_shows_vm_text_and_keeps_its_own_escape_codes() -> None:
    console, out = _terminal()
    view = ProgressView(console)
    with view.showing("up"):
        view.on_event(Event("launch", "start", "launching hello-app1", vm="app1"))
        view.on_event(Event("cloud-init", "log", LOG, vm="app1"))
        view.on_event(Event("launch", "fail", hostile("livefail"), vm="lb"))
        view.on_event(Event("lb", "info", hostile("labrow")))
    written = out.getvalue()
    assert "\x1b[?25l" in written  # rich still draws the view (hides the cursor, redraws)
    for raw in LIVE_RAW:
        assert raw not in written, raw
    for tag in ("log", "livefail", "labrow"):
        assert shown(tag) in written, tag
    assert "40%" not in written  # the spinner's earlier frame


def test_the_class_live_view_and_plain_lines() -> None:
    state = _LiveState("up", ["alice", "bob"])
    state.add(Event("cloud-init", "log", LOG, vm="alice:app1"))
    state.add(Event("up", "fail", hostile("classfail"), vm="bob"))
    console, out = _terminal()
    console.print(state.render())
    assert "app1: " + shown("log") in out.getvalue() and shown("classfail") in out.getvalue()
    for raw in LIVE_RAW:
        assert raw not in out.getvalue()
    plain, lines = _terminal()
    ProgressView(plain).on_event(Event("serve", "fail", f"one\n{hostile('two')}", vm="lb"))
    assert lines.getvalue().count("\n") == 1  # a newline in a value cannot forge a second line
    assert_safe(lines.getvalue().replace("\n", ""), "two")


def test_a_real_up_on_a_terminal_shows_the_log_tail_without_obeying_it(
    fake_multipass: FakeMultipass, tmp_path: Path
) -> None:
    """The whole path: labctl in a pseudo-terminal, the subprocess fake multipass, whose log tail
    answers with multipass's spinner codes and the student's escape sequences."""
    (tmp_path / "lab.yaml").write_text(progress_tests.LAB)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    fake_multipass.configure(launch_latency=1, cloud_init_latency=4)
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    fake_multipass.on_exec("*", ["tail", "-n", "1"], stdout=LOG)
    env = {
        **os.environ,
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(tmp_path / "hosts"),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": "300",
        "TERM": "xterm-256color",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.pop("NO_COLOR", None)
    code, out = progress_tests._in_pty(["up"], tmp_path, env)
    assert code == 1  # the plain fake has no nginx: up stops at serve (test_progress.py)
    assert "\x1b[?25l" in out  # the live view ran
    for raw in LIVE_RAW:
        assert raw not in out, raw
    assert shown("log") in out  # the student's line, shown, in the VM's row


# --- reports on their own: every field of the JUnit report --------------------------------------


def test_junit_stays_well_formed_whatever_every_field_holds() -> None:
    every_c0 = "".join(chr(c) for c in range(0x20))
    evil = f"{CORE}{every_c0}\ufffe\uffff\ud800<&>\"'"
    results = [CheckResult(evil, False, evil, 0.5), CheckResult("ok", True, evil, 0.1)]
    checks = LabChecks(evil, evil, "lb", results)
    runs: list[StudentRun[LabChecks]] = [
        StudentRun(evil, "east", None, evil, evil, result=checks),
        StudentRun("bob", "east", None, "cls-bob", "bob.lab", error=evil),
    ]
    report = grades.checks_junit(grades.from_runs(runs))
    root = ET.fromstring(report)
    assert len(root.findall("testsuite")) == 2
    assert SHOWN in root.find("testsuite").get("name", "")  # type: ignore[union-attr]
    for raw in ["\x1b", "\x07", "\u202e", "\x9b", "\ufffe", "\x00"]:
        assert raw not in report
    json.loads(jsonout.document(grades.checks_document(grades.from_runs(runs))))


def test_json_passes_the_console_byte_for_byte_and_keeps_every_value() -> None:
    value = {"name": hostile("json"), "odd": "\ud800\ufffe\x00", "list": [CORE, TAIL]}
    doc = jsonout.document(value)  # what every --json prints
    console, out = _terminal()
    console.out(doc)  # how the CLI prints it: no markup, emoji or highlighting can touch it
    assert out.getvalue() == doc + "\n"
    assert json.loads(out.getvalue()) == value


@pytest.fixture(autouse=True)
def _no_leftover_view() -> Iterator[None]:
    yield
    app_module.view.quiet = app_module.view.no_progress = False
