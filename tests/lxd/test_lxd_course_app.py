"""The course's own app (dumbflix-frontend) brought up by `labctl up` in LXD system containers,
built there for real, and opened in a real browser: the seed lab as the course's lab.yaml says.

Each container clones the app from a `git daemon` on the LXD bridge's host address (from the
bundle; the app is never copied into this repository), copies the npm cache that `make
npm-cache` filled on the host (mounted read-only into every container by a profile of the lab's,
`engine.profiles`), runs the real `npm ci` and `npm run build` offline, and serves the build
with `pm2 serve build 3000 --spa` behind the gateway's nginx. Then what a student sees: the
domain served through both backends, the deep link /movies answered with the app, and `labctl
check`'s browser check seeing the hero render on both paths. Traffic goes only to the server's
bridge (10.252.0.0/24). About 3 min on 2 cores (two npm installs of ~1 GB each at once).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.host.probes import fetch, hammer
from tests.browser.support import RENDERED_BOTH, browser_env, browser_unavailable_reason
from tests.conftest import skip_or_fail
from tests.lxd.instances import ipv4
from tests.lxd.labctl_run import explain, labctl_env, run_labctl
from tests.lxd.server import SERVER_SUBNET, LxdServer
from tests.workloads import course_lab, find_bundle, no_bundle_reason, ready_cache

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

LAB = "lxt-course"  # containers lxt-course-app1 and lxt-course-gateway: the session's prefix
NPM_PROFILE = "lxt-npm-cache"  # a profile whose only device is the cache, read-only
SEED_IN_CONTAINER = "/srv/npm-cache-seed"
GIT_PORT = 20518
ENGINE = f"""\
engine: {{name: lxd, profiles: [default, {NPM_PROFILE}]}}
image: labctl-test
# npm ci peaks near 1 GB and the build near 0.85 GB: room for both, and for node_modules
defaults: {{cpus: 2, memory: 2G, disk: 4G}}
"""


@dataclass
class CourseLab:
    server: LxdServer
    root: Path
    file: Path
    hosts: Path

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = labctl_env(self.server.daemon.env, self.root) | browser_env()
        return run_labctl(args, file=self.file, hosts=self.hosts, env=env, timeout=timeout)

    def ip(self, vm: str) -> str:
        listed = self.server.daemon.lxc("list", f"{LAB}-{vm}", "--format", "json", timeout=60)
        [instance] = json.loads(listed.stdout)
        address = ipv4(instance)
        assert address is not None, f"{vm} has no IPv4 address"
        return address

    def guest(self, vm: str, shell: str) -> str:
        shown = self.server.daemon.lxc(
            "exec", f"{LAB}-{vm}", "--", "sh", "-c", shell, timeout=120, check=False
        )
        return shown.stdout + shown.stderr


@pytest.fixture(scope="module")
def course(lxd_server: LxdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CourseLab]:
    """The seed lab's lab.yaml on the test server, with the git daemon and the cache profile;
    `down`, the profile and the daemon are gone at the end whatever happened."""
    bundle = find_bundle()
    skip_or_fail(None if bundle else no_bundle_reason(), "course-app")
    assert bundle is not None
    cache = ready_cache(bundle)
    skip_or_fail(None if cache else "the npm cache is not filled (make npm-cache)", "course-app")
    assert cache is not None
    skip_or_fail(browser_unavailable_reason(), "browser")
    root = tmp_path_factory.mktemp("lxd-course")
    repos = root / "repos"
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", "--", str(bundle), str(repos / "dumbflix.git")],
        check=True,
        timeout=120,
    )
    host = str(SERVER_SUBNET.network_address + 1)  # the bridge's host address
    daemon = lxd_server.daemon
    daemon.lxc("profile", "create", NPM_PROFILE, timeout=60)
    serve = ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repos}"]
    serve += [f"--listen={host}", f"--port={GIT_PORT}", str(repos)]
    git = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    file, hosts = root / "lab.yaml", root / "hosts"
    lab = CourseLab(lxd_server, root, file, hosts)
    try:
        daemon.lxc(
            "profile", "device", "add", NPM_PROFILE, "npm-cache", "disk",
            f"source={cache}", f"path={SEED_IN_CONTAINER}", "readonly=true", timeout=60,
        )  # fmt: skip
        url = f"git://{host}:{GIT_PORT}/dumbflix.git"
        file.write_text(
            course_lab(name=LAB, git_url=url, cache_seed=SEED_IN_CONTAINER, engine=ENGINE)
        )
        hosts.write_text("127.0.0.1\tlocalhost\n")
        yield lab
    finally:
        try:
            lab.labctl("down", timeout=600)
        finally:
            git.terminate()
            git.wait(timeout=10)
            daemon.lxc("profile", "delete", NPM_PROFILE, timeout=60, check=False)


def test_the_course_app_builds_offline_in_containers_serves_through_both_and_renders(
    course: CourseLab,
) -> None:
    up = course.labctl("up", timeout=1500)
    assert up.returncode == 0, explain(up)[-6000:]
    gateway, app1 = course.ip("gateway"), course.ip("app1")
    assert f"{gateway}\talvin.xyz www.alvin.xyz" in course.hosts.read_text()

    tally = hammer(gateway, 80, "alvin.xyz", requests=12, deadline=60, timeout=10)
    served = tally.ok == 12 and set(tally.by_backend) == {f"{app1}:3000", f"{gateway}:3000"}
    sites = "ls -l /etc/nginx/sites-enabled; cat /etc/nginx/sites-enabled/*"
    assert served, (tally, course.guest("gateway", sites))
    home = fetch(gateway, 80, "alvin.xyz", timeout=10)
    deep = fetch(gateway, 80, "www.alvin.xyz", path="/movies", timeout=10)
    for page in (home, deep):  # the built index.html of the app, not an nginx or pm2 error
        assert page.status == 200 and "<title>Dumbflix" in page.body and 'id="root"' in page.body
    # built in the container from the cloned source, not copied in: the build and its sources
    built = course.guest("app1", "ls /home/ubuntu/app/build/index.html /home/ubuntu/app/src")
    assert "build/index.html" in built and "App.js" in built, built

    report = course.root / "report"
    checked = course.labctl(
        "check", "--json", "--report", str(report),
        "--check", "lb-serves", "--check", "load-balancing", "--check", "browser",
        timeout=600,
    )  # fmt: skip
    assert checked.returncode == 0, explain(checked)
    results = {c["name"]: c for c in json.loads(checked.stdout)["labs"][0]["checks"]}
    assert {name: c["status"] for name, c in results.items()} == {
        "lb-serves": "pass",
        "load-balancing": "pass",
        "browser": "pass",
    }, results
    assert RENDERED_BOTH.fullmatch(results["browser"]["reason"]), results["browser"]["reason"]
    shots = {shot["path"]: Path(shot["file"]) for shot in results["browser"]["screenshots"]}
    assert set(shots) == {"/", "/movies"} and all(shot.is_file() for shot in shots.values())
