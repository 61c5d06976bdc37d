"""`labctl check`'s browser check on a class, both ways, with the real headless browser: the app
that renders passes; the skeleton, a 502 from nginx, nginx's welcome page, a refused connection
and a page exception each fail with the reason a student understands; every page leaves a
1280x800 screenshot. Then the class's HTML report is opened in the browser itself.

One class run (one browser for six students) is shared by the assertions below.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.cli import jsonout
from labctl.cli.printers import grades as output_check
from labctl.cli.printers.report import render_report
from labctl.host.browser.process import Browser
from labctl.ops.classroom.check import check_class
from labctl.ops.report import new_report_run, report_runs, save_run, write_index
from tests.browser import png
from tests.browser.support import (
    RENDERED_BOTH,
    browser_env,
    browser_unavailable_reason,
    nginx_unavailable_reason,
    processes_using,
)
from tests.browser.world import HERO_RGB, LB_IPS, PAGE_TIMEOUT, SKELETON_RGB, STUDENTS, class_world
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
DOCS_SHOT = ROOT / "docs" / "check-report.png"


@dataclass
class Graded:
    report: Path
    rows: list[output_check.Graded]
    port: int
    starts: int  # how many browsers the class run started

    def browser(self, student: str) -> dict[str, Any]:
        row = next(r for r in self.rows if r.student == student)
        assert row.result is not None, row.error
        found = next(r for r in row.result.results if r.name == "browser")
        return {"status": found.status, "reason": found.reason, "shots": found.screenshots}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    skip_or_fail(browser_unavailable_reason() or nginx_unavailable_reason(), "browser")
    root = tmp_path_factory.mktemp("class")
    world = class_world(root)
    starts = 0
    real_start = Browser.start.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Browser], *args: Any, **kwargs: Any) -> Browser:
        nonlocal starts
        starts += 1
        return real_start(cls, *args, **kwargs)  # type: ignore[no-any-return]

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LABCTL_BROWSER", raising=False)
        for name, value in browser_env().items():
            patch.setenv(name, value)
        patch.setattr(Browser, "start", classmethod(counted))
        try:
            report = root / "report"
            run = new_report_run(report)
            runs = check_class(world.cctx, None, ["browser"], shots=run)
            rows = output_check.from_runs(runs)
            document = output_check.checks_document(rows) | {
                "title": "web",
                "time": "2026-12-07 10:15:00",
                "check_names": ["browser"],
            }
            save_run(report, run, document)
            write_index(report, render_report(report_runs(report)))
            yield Graded(report, rows, world.port, starts)
        finally:
            world.close()


def test_one_browser_serves_the_whole_class(graded: Graded) -> None:
    assert graded.starts == 1


def test_the_app_that_renders_passes_with_its_screenshot_of_the_hero(graded: Graded) -> None:
    ann = graded.browser("ann")
    assert ann["status"] == "pass", ann["reason"]
    assert RENDERED_BOTH.fullmatch(ann["reason"]), ann["reason"]  # the deep link renders too
    assert "failed request" in ann["reason"]  # the absent API and fonts: noted, not failed
    shots = {shot.path: Path(shot.file) for shot in ann["shots"]}
    assert set(shots) == {"/", "/movies"}
    image = png.read(shots["/"].read_bytes(), rows_wanted=301)
    assert (image.width, image.height) == (1280, 800)
    assert image.pixel(640, 300) == HERO_RGB  # the hero's image loaded: not the skeleton


@pytest.mark.parametrize(
    ("student", "reason"),
    [
        ("ben", f"/, /movies: rendered nothing within {PAGE_TIMEOUT} s (waiting for .hero); "),
        ("cat", "/, /movies: 502 Bad Gateway from nginx"),
        ("dan", "/: nginx's welcome page, not the app; /movies: 404 Not Found from nginx"),
        ("eve", "/, /movies: connection refused (127.0.0.35:{port})"),
        ("fay", "/, /movies: uncaught exception in the page: Error: boom"),
    ],
)
def test_each_broken_site_fails_with_a_reason_and_a_screenshot(
    graded: Graded, student: str, reason: str
) -> None:
    found = graded.browser(student)
    assert found["status"] == "fail"
    assert found["reason"].startswith(reason.format(port=graded.port)), found["reason"]
    for shot in found["shots"]:  # what the student's browser shows: error pages included
        assert png.size(Path(shot.file).read_bytes()) == (1280, 800)
    assert [shot.path for shot in found["shots"]] == ["/", "/movies"]


def test_the_skeleton_screenshot_is_the_grey_placeholder(graded: Graded) -> None:
    ben = graded.browser("ben")
    image = png.read(Path(ben["shots"][0].file).read_bytes(), rows_wanted=301)
    assert image.pixel(640, 300) == SKELETON_RGB


def test_json_and_junit_name_each_screenshot(graded: Graded) -> None:
    data = json.loads(jsonout.document(output_check.checks_document(graded.rows)))
    assert [lab["student"] for lab in data["labs"]] == STUDENTS
    files = [s["file"] for lab in data["labs"] for s in lab["checks"][0]["screenshots"]]
    assert len(files) == 2 * len(STUDENTS) and all(Path(f).is_file() for f in files)
    junit = ET.fromstring(output_check.checks_junit(graded.rows))
    attached = [c.findtext("system-out") or "" for c in junit.iter("testcase")]
    assert all(text.count("[[ATTACHMENT|") == 2 for text in attached), attached


def test_the_report_shows_the_matrix_and_every_screenshot_in_a_browser(
    graded: Graded, tmp_path: Path
) -> None:
    index = graded.report / "index.html"
    with Browser.start() as browser:
        profile = str(browser.profile)
        shown = _report_facts(browser, index)
    assert not processes_using(profile)  # the browser's whole tree is gone
    assert shown["cells"] == {
        "ann": ["pass", "PASS"],
        "ben": ["fail", "FAIL"],
        "cat": ["fail", "FAIL"],
        "dan": ["fail", "FAIL"],
        "eve": ["fail", "FAIL"],
        "fay": ["fail", "FAIL"],
    }
    assert "502 Bad Gateway from nginx" in shown["reasons"]["cat"]
    assert "connection refused" in shown["reasons"]["eve"]
    images = shown["images"]
    assert len(images) == 2 * len(STUDENTS)
    assert all(complete and width == 1280 for complete, width, _ in images), images
    assert all(not src.startswith(("/", "file:")) for _, _, src in images)  # relative: movable
    assert "1 of 6 pass every check" in shown["heading"]
    shot = tmp_path / "report.png"
    shot.write_bytes(shown["png"])
    assert png.size(shown["png"]) == (960, 1050)
    if os.environ.get("LABCTL_UPDATE_DOCS") == "1":  # the docs' report picture, made here
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)


def _report_facts(browser: Browser, index: Path) -> dict[str, Any]:
    """Open the report in a window and read what it shows (DOM) and how it looks (screenshot)."""
    cdp = browser.cdp
    target = cdp.call("Target.createTarget", {"url": "about:blank", "newWindow": True})["targetId"]
    session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    cdp.call("Page.enable", session=session)
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    cdp.call("Page.navigate", {"url": index.as_uri()}, session=session)
    loaded = "document.readyState === 'complete' && !!document.querySelector('table.matrix')"
    for _ in range(100):  # bounded: 10 s for a local file
        done = cdp.call(
            "Runtime.evaluate", {"expression": loaded, "returnByValue": True}, session=session
        )
        if done.get("result", {}).get("value") is True:
            break
        time.sleep(0.1)
    script = """
    new Promise(done => {
      const ready = () => [...document.images].every(i => i.complete);
      const wait = () => ready() ? done() : setTimeout(wait, 50);
      wait();
    }).then(() => JSON.stringify({
      heading: document.querySelector('section.run h2').innerText,
      cells: Object.fromEntries([...document.querySelectorAll('td[data-check="browser"]')]
        .map(td => [td.dataset.student, [td.className, td.innerText.split('\\n')[0]]])),
      reasons: Object.fromEntries([...document.querySelectorAll('td[data-check="browser"]')]
        .map(td => [td.dataset.student, td.title])),
      images: [...document.images].map(i => [i.complete, i.naturalWidth, i.getAttribute('src')]),
    }))
    """
    answer = cdp.call(
        "Runtime.evaluate",
        {"expression": script, "awaitPromise": True, "returnByValue": True},
        session=session,
        timeout=30,
    )
    assert "exceptionDetails" not in answer, answer
    facts: dict[str, Any] = json.loads(answer["result"]["value"])
    picture = cdp.call(
        "Page.captureScreenshot",
        # the matrix and the first students' screenshots, at 3/4 size: small enough for docs/
        {"format": "png", "clip": {"x": 0, "y": 0, "width": 1280, "height": 1400, "scale": 0.75}},
        session=session,
    )
    facts["png"] = base64.b64decode(picture["data"])
    cdp.call("Target.closeTarget", {"targetId": target})
    return facts


def test_every_student_was_graded_against_their_own_lb(graded: Graded) -> None:
    eve = graded.browser("eve")
    assert f"{LB_IPS['eve']}:{graded.port}" in eve["reason"]
