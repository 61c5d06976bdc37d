"""The course's own app (dumbflix-frontend, a create-react-app 3.4 single-page app) brought up by
`labctl up` on simulated VMs exactly as the course's lab.yaml says, and opened in a real browser.

The seed lab's two VMs each `git clone` the app from a local `git daemon` (from the bundle; the
app is never copied into this repository), run the real `npm ci` and `npm run build` offline
(from a copy of the host's npm cache, filled once by `make npm-cache`; npm_config_offline makes a
missing package fail at once instead of hanging), and serve the build with
`pm2 serve build 3000 --spa` behind nginx. Then what a student would see: the domain served through both backends, the deep
link /movies answered with the app, and `labctl check`'s browser check seeing the hero render.
Heavy (about 2 min on 2 cores, 2 x 1 GB for npm): run it under the heavy-tests lock.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.host.probes import fetch
from tests.browser import png
from tests.browser.support import RENDERED_BOTH, browser_unavailable_reason
from tests.conftest import skip_or_fail
from tests.e2e.harness import SimLab, serve_git_repos
from tests.workloads import course_lab, find_bundle, no_bundle_reason, ready_cache

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.fixture
def course_app(sim_lab: SimLab, tmp_path: Path) -> Iterator[Path]:
    """The lab.yaml of the seed lab, its app served from the bundle by `git daemon`."""
    bundle = find_bundle()
    skip_or_fail(None if bundle else no_bundle_reason(), "course-app")
    assert bundle is not None
    cache = ready_cache(bundle)
    skip_or_fail(None if cache else "the npm cache is not filled (make npm-cache)", "course-app")
    assert cache is not None
    skip_or_fail(browser_unavailable_reason(), "browser")
    repos = tmp_path / "repos"
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", "--", str(bundle), str(repos / "dumbflix.git")],
        check=True,
        timeout=120,
    )
    subnet = sim_lab.fake.settings()["sim_subnet"]
    host = subnet.rsplit(".", 1)[0] + ".1"  # the bridge address: the Multipass host, seen from VMs
    port = 20418 + int(sim_lab.prefix[1:], 16) % 1000
    sim_lab.browser = True
    path = sim_lab.root / "lab.yaml"
    path.write_text(
        course_lab(name="alvin", git_url=f"git://{host}:{port}/dumbflix.git", cache_seed=cache)
    )
    with serve_git_repos(repos, port):
        yield path


def test_the_course_app_builds_offline_serves_through_both_backends_and_renders(
    sim_lab: SimLab, course_app: Path
) -> None:
    up = sim_lab.labctl("up", "-f", str(course_app), timeout=1500)
    assert up.returncode == 0, up.stdout + up.stderr[-4000:]
    gateway, app1 = sim_lab.ip("alvin-gateway"), sim_lab.ip("alvin-app1")

    tally = sim_lab.hammer("alvin-gateway", "alvin.xyz", requests=12)
    served = tally.ok == 12 and set(tally.by_backend) == {f"{app1}:3000", f"{gateway}:3000"}
    assert served, (tally, fetch(gateway, 80, "alvin.xyz"), up.stderr[-3000:], _site(sim_lab))
    home = fetch(gateway, 80, "alvin.xyz", timeout=10)
    deep = fetch(gateway, 80, "www.alvin.xyz", path="/movies", timeout=10)
    for page in (home, deep):  # the built index.html of the app, not an nginx or pm2 error
        assert page.status == 200 and "<title>Dumbflix" in page.body and 'id="root"' in page.body

    report = sim_lab.root / "report"
    checked = sim_lab.labctl(
        "check", "-f", str(course_app), "--json", "--report", str(report),
        "--check", "lb-serves", "--check", "load-balancing", "--check", "browser",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    results = {c["name"]: c for c in json.loads(checked.stdout)["labs"][0]["checks"]}
    assert {name: c["status"] for name, c in results.items()} == {
        "lb-serves": "pass",
        "load-balancing": "pass",
        "browser": "pass",
    }, results
    browser = results["browser"]
    assert RENDERED_BOTH.fullmatch(browser["reason"]), browser["reason"]  # deep link too
    shots = {shot["path"]: Path(shot["file"]) for shot in browser["screenshots"]}
    assert set(shots) == {"/", "/movies"}
    for shot in shots.values():
        assert shot.is_relative_to(report) and png.size(shot.read_bytes()) == (1280, 800)
    index = (report / "index.html").read_text()
    assert "runs/" in index and ">PASS<" in index and "/movies" in index


def _site(sim_lab: SimLab) -> str:
    """The gateway's nginx sites, for a failure message."""
    shown = sim_lab.multipass_cmd(
        "exec",
        "alvin-gateway",
        "--",
        "sh",
        "-c",
        "ls -l /etc/nginx/sites-enabled; cat /etc/nginx/sites-enabled/*",
    )
    return shown.stdout + shown.stderr
