"""The browser check on one lab through `check()` as `labctl check` runs it: the built-in hello
app's text is what "rendered" means by default, and each run's screenshots go to a new folder in
the lab's state dir, of which the newest 10 are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.ops.check import check
from labctl.ops.checks.browser_run import KEPT_RUNS, SCREENSHOTS
from tests.browser import png

pytestmark = [pytest.mark.browser]


def test_a_single_lab_keeps_each_runs_screenshot_in_its_state_dir(check_world) -> None:
    world = check_world()
    world.running()
    runs = world.ctx.lab_state.directory / SCREENSHOTS
    for old in range(KEPT_RUNS + 2):  # earlier runs: only the newest are kept
        (runs / f"20260101-0000{old:02d}").mkdir(parents=True)
    result = check(world.ctx, ["browser"])
    found = result.results[0]
    assert (found.name, found.status) == ("browser", "pass"), found.reason
    assert found.reason.startswith("the text 'hello from ' rendered in ")
    [shot] = found.screenshots
    assert shot.path == "/" and png.size(Path(shot.file).read_bytes()) == (1280, 800)
    kept = sorted(p.name for p in runs.iterdir())
    assert len(kept) == KEPT_RUNS and kept[-1] == shot.file.split("/")[-3]


def test_nginx_s_welcome_page_fails_the_hello_lab(check_world) -> None:
    world = check_world()
    world.running()
    world.mode = "welcome"  # the LB stand-in answers with nginx's default page
    found = check(world.ctx, ["browser"]).results[0]
    assert found.status == "fail" and found.reason == "nginx's welcome page, not the app"
