"""The browser check's grading, lab.yaml section, results and report, without a browser: what a
page visit turns into (the words a student reads), SKIP through table, JSON and JUnit, and the
HTML report's content and escaping."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from labctl.cli import jsonout
from labctl.cli.commands.check import print_matrix
from labctl.cli.printers import grades as output_check
from labctl.cli.printers.report import render_report
from labctl.config.load import parse_lab
from labctl.errors import ConfigError
from labctl.host.browser.page import FailedRequest, PageVisit, WaitFor
from labctl.ops.checks.base import CheckResult, LabChecks, Screenshot
from labctl.ops.checks.browser import judge, resolver_rules, wait_for
from labctl.ops.checks.browser_run import new_run_dir
from labctl.ops.classroom.fanout import StudentRun
from labctl.ops.report import report_runs, save_run

HERO = WaitFor(selector=".hero")
LB = "10.0.0.4:80"
LAB = """\
name: alvin
domain: alvin.xyz
aliases: [www.alvin.xyz]
app: {name: dumbflix, source: {git: "https://example.com/a.git"}, start: {serve: build}}
vms: [{name: app1, roles: [app]}, {name: gw, roles: [lb, app]}]
"""


def _page(**fields: object) -> PageVisit:
    base: dict[str, object] = {
        "url": "http://alvin.xyz/",
        "status": 200,
        "status_text": "OK",
        "server": "nginx/1.22.1",
        "ready": True,
        "ready_after": 2.14,
        "title": "Dumbflix",
        "text": "Home TV Shows Movies WATCH NOW !",
    }
    return PageVisit(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("page", "passed", "reason"),
    [
        (_page(), True, ".hero rendered in 2.1 s"),
        (
            _page(
                failed_requests=[
                    FailedRequest(
                        "http://localhost:5000/api/v1/auth", "net::ERR_CONNECTION_REFUSED"
                    )
                ],
                console_errors=["Failed to load resource"] * 3,
            ),
            True,
            ".hero rendered in 2.1 s (1 failed request, 3 console errors noted)",
        ),
        (
            _page(status=502, status_text="Bad Gateway", ready=False),
            False,
            "502 Bad Gateway from nginx",
        ),
        (_page(status=404, status_text="", server="", ready=False), False, "404 Not Found"),
        (
            _page(
                title="Welcome to nginx!",
                text="Welcome to nginx! If you see this page",
                ready=False,
            ),
            False,
            "nginx's welcome page, not the app",
        ),
        (
            _page(status=None, error="net::ERR_CONNECTION_REFUSED", ready=False),
            False,
            "connection refused (10.0.0.4:80)",
        ),
        (
            _page(ready=False, ready_after=None, text="Home TV Shows Movies"),
            False,
            "rendered nothing within 10 s (waiting for .hero); it shows 'Home TV Shows Movies'",
        ),
        (
            _page(exceptions=["TypeError: x is undefined", "Error: two"]),
            False,
            "uncaught exception in the page: TypeError: x is undefined (and 1 more)",
        ),
        (
            _page(status=None, error="no answer within 15 s", ready=False),
            False,
            "no answer within 15 s (10.0.0.4:80)",
        ),
        (
            _page(status=None, error="net::ERR_SSL_PROTOCOL_ERROR", ready=False),
            False,
            "the browser could not open it (net::ERR_SSL_PROTOCOL_ERROR)",
        ),
    ],
)
def test_a_page_visit_is_graded_in_words_a_student_understands(
    page: PageVisit, passed: bool, reason: str
) -> None:
    assert judge(page, HERO, 10.0, LB) == (passed, reason)


def test_what_rendered_means_lab_yaml_then_the_hello_app_then_any_text() -> None:
    lab = parse_lab(LAB + "browser: {wait_for: {text: WATCH NOW}}\n")
    never = ("Welcome to nginx",)  # nginx's default page is never waited on
    assert wait_for(lab) == WaitFor(text="WATCH NOW", give_up_titles=never)
    hello = parse_lab(
        LAB.replace('{git: "https://example.com/a.git"}, start: {serve: build}', "{builtin: hello}")
    )
    assert wait_for(hello) == WaitFor(text="hello from ", give_up_titles=never)
    assert wait_for(parse_lab(LAB)) == WaitFor(give_up_titles=never)
    assert resolver_rules(lab, "10.0.0.4") == [
        "MAP alvin.xyz 10.0.0.4",
        "MAP www.alvin.xyz 10.0.0.4",
    ]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("browser: {wait_for: {}}", "browser.wait_for: give exactly one of selector or text"),
        ("browser: {wait_for: {selector: .a, text: b}}", "give exactly one of selector or text"),
        ("browser: {paths: [/, /movies, /]}", "browser.paths[2]: '/' is listed twice"),
        ("browser: {paths: [movies]}", "browser.paths[0]"),
        ("browser: {paths: []}", "browser.paths"),
        ("browser: {timeout: 10m}", "browser.timeout: at most 300s per page"),
        ("browser: {wait_for: {selector: .hero}, delay: 3}", "browser.delay"),
    ],
)
def test_a_wrong_browser_section_is_refused_with_its_line(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_lab(LAB + section + "\n")
    assert any(message in problem and ":6:" in problem for problem in caught.value.problems), (
        caught.value.problems
    )


def test_the_seed_lab_names_the_hero() -> None:
    root = Path(__file__).resolve().parent.parent
    lab = parse_lab((root / "lab.yaml").read_text())
    assert lab.browser.wait_for is not None and lab.browser.wait_for.selector == ".hero"


# --- results: SKIP, JSON, JUnit ----------------------------------------------------------------

SHOT = Screenshot("/", "/r/runs/1/web-ann/home.png")


def _rows() -> list[output_check.Graded]:
    ann = LabChecks(
        "web-ann",
        "ann.lab",
        "lb",
        [
            CheckResult("lb-serves", True, "ok", 0.2),
            CheckResult("browser", True, ".hero rendered in 2.1 s", 3.1, screenshots=(SHOT,)),
        ],
    )
    ben = LabChecks(
        "web-ben",
        "ben.lab",
        "lb",
        [
            CheckResult("lb-serves", True, "ok", 0.2),
            CheckResult("browser", False, "no browser here: none found", 0.0, skipped=True),
        ],
    )
    runs = [StudentRun("ann", "local", None, "web-ann", "ann.lab", ann)]
    runs.append(StudentRun("ben", "local", None, "web-ben", "ben.lab", ben))
    return output_check.from_runs(runs)


def test_a_skipped_check_fails_no_one_and_says_why() -> None:
    rows = _rows()
    assert all(row.passed for row in rows)  # ben's browser check was skipped, not failed
    console = Console(record=True, width=200)
    print_matrix(console, rows, ["lb-serves", "browser"])
    text = console.export_text()
    assert "SKIP" in text and "2/2" in text and "1/1" in text
    assert "skipped: browser: no browser here: none found" in text
    assert "2/2 labs pass every check" in text


def test_json_and_junit_carry_skip_and_the_screenshot_path() -> None:
    rows = _rows()
    data = json.loads(jsonout.document(output_check.checks_document(rows)))
    ann, ben = (lab["checks"][1] for lab in data["labs"])
    assert ann["screenshots"] == [{"path": "/", "file": SHOT.file}] and ann["status"] == "pass"
    assert ben["status"] == "skip" and ben["passed"] is False and data["passed"] is True
    root = ET.fromstring(output_check.checks_junit(rows))
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "0", "1")
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    skipped = cases[("web-ben", "browser")].find("skipped")
    assert skipped is not None and skipped.get("message") == "no browser here: none found"
    shot = cases[("web-ann", "browser")]
    assert [p.get("value") for p in shot.iter("property")] == [SHOT.file]
    assert shot.findtext("system-out") == f"[[ATTACHMENT|{SHOT.file}]]"


# --- the report --------------------------------------------------------------------------------


def test_report_runs_are_kept_newest_first_with_relative_screenshots(tmp_path: Path) -> None:
    rows = _rows()
    first = new_run_dir(tmp_path / "runs", keep=None, now=1_800_000_000)
    second = new_run_dir(tmp_path / "runs", keep=None, now=1_800_000_600)
    document = output_check.checks_document(rows) | {"title": "web", "time": "t2"}
    document["labs"][0]["checks"][1]["screenshots"][0]["file"] = str(
        second / "web-ann" / "home.png"
    )
    save_run(tmp_path, first, output_check.checks_document(rows) | {"title": "web", "time": "t1"})
    save_run(tmp_path, second, document)
    runs = report_runs(tmp_path)
    assert [run["time"] for run in runs] == ["t2", "t1"]
    shot = runs[0]["labs"][0]["checks"][1]["screenshots"][0]["file"]
    assert shot == f"runs/{second.name}/web-ann/home.png"  # the folder can move


def test_state_dir_runs_are_pruned_to_the_newest(tmp_path: Path) -> None:
    made = [new_run_dir(tmp_path, keep=3, now=1_800_000_000 + i) for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in made[2:]]
    again = new_run_dir(tmp_path, keep=None, now=1_800_000_004)  # same second: a new name
    assert again.name == made[-1].name + "-2"


def test_the_report_escapes_what_students_pages_said() -> None:
    rows = _rows()
    document = output_check.checks_document(rows) | {"title": "web", "time": "t", "run": "1"}
    document["labs"][1]["checks"][1]["reason"] = '<script>alert("x")</script>\u202egnp.exe'
    page = render_report([document, document | {"time": "old"}])
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "\u202e" not in page and "\\u202egnp.exe" in page  # a bidi override is shown, not obeyed
    assert "default-src 'none'" in page  # no network, no scripts
    assert page.count("<details>") == 1  # the older run is folded
    assert 'data-student="ben" data-check="browser"' in page and ">SKIP<" in page


def test_check_report_keeps_each_run_and_shows_the_newest_first(
    fake_multipass, tmp_path: Path
) -> None:
    """`labctl check --report DIR` through the CLI (a lab that is not up: every check fails)."""
    from typer.testing import CliRunner

    from labctl.cli.main import app

    lab = tmp_path / "lab.yaml"
    lab.write_text(
        "name: hello\ndomain: hello.lab\napp: {name: hello, source: {builtin: hello}}\n"
        "vms: [{name: app1, roles: [app]}, {name: lb, roles: [lb]}]\n"
    )
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(hosts),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    report = tmp_path / "grades"
    args = ["check", "-f", str(lab), "--report", str(report), "--check", "app-online"]
    for _ in range(2):
        result = CliRunner().invoke(app, [*args, "--check", "browser"], env=env)
        assert result.exit_code == 1, result.output
    assert f"report: {report.resolve() / 'index.html'}" in result.output.replace("\n", "")
    runs = sorted((report / "runs").iterdir())
    assert len(runs) == 2 and all((run / "results.json").is_file() for run in runs)
    page = (report / "index.html").read_text()
    assert page.count('<section class="run"') == 2 and page.count("<details>") == 1
    assert page.index(f'id="run-{runs[1].name}"') < page.index(f'id="run-{runs[0].name}"')
    assert 'data-check="app-online"' in page and ">FAIL<" in page
    # no LB to open: the browser check fails on that before it looks for a browser
    assert 'data-check="browser" title="lb: instance hello-lb does not exist"' in page


def test_a_link_planted_at_the_reports_runs_folder_is_refused(tmp_path: Path) -> None:
    """A student who can write the report's folder links `runs` elsewhere: labctl refuses it
    before any check runs, and writes nothing through it."""
    from labctl.errors import UnsafePathError
    from labctl.ops.report import new_report_run

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "grades"
    report.mkdir()
    (report / "runs").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="the report's runs folder"):
        new_report_run(report)
    assert list(elsewhere.iterdir()) == []
    (report / "runs").unlink()
    run = new_report_run(report)
    assert run.parent == (report / "runs").resolve() and run.is_dir() and not run.is_symlink()


def test_class_doctor_says_whether_check_can_open_the_students_sites(
    fake_multipass, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from labctl.cli.main import app

    lab = tmp_path / "lab.yaml"
    lab.write_text(
        'name: cls\nclass: {students: [ann, ben], domain: "{student}.lab"}\n'
        "app: {name: hello, source: {builtin: hello}}\n"
        "vms: [{name: app1, roles: [app]}, {name: lb, roles: [lb]}]\n"
    )
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    table = CliRunner().invoke(app, ["doctor", "-f", str(lab)], env=env)
    assert "browser     turned off (LABCTL_BROWSER=none)" in table.output, table.output
    as_json = CliRunner().invoke(app, ["doctor", "-f", str(lab), "--json"], env=env)
    browser = json.loads(as_json.stdout)["browser"]
    assert (browser["name"], browser["status"]) == ("browser", "skip")
