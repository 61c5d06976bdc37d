"""Test workloads that are not part of the repository: the course's own app, as a git bundle, and
the npm cache its `npm ci` installs from offline inside the simulated VMs and LXD containers, and
the course's lab.yaml that builds it.

The app (dumbwaysdev/dumbflix-frontend) has no licence: its code is never copied into this
repository. Its bundle is found through `LABCTL_WORKLOADS` (a folder holding
`dumbflix-frontend.bundle`), else as `shared/workloads/dumbflix-frontend.bundle` in the first
folder above the repository that has one. Without it the tests that need it skip and say so.

`python -m tests.workloads` (make npm-cache) fills the npm cache from the npm registry once per
lockfile: `$LABCTL_NPM_CACHE/<lockfile hash>/` (default /var/cache/labctl-npm), marked complete
only when `npm ci` finished, so an interrupted fill is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
WORKLOADS_ENV: Final = "LABCTL_WORKLOADS"
NPM_CACHE_ENV: Final = "LABCTL_NPM_CACHE"
DEFAULT_NPM_CACHE: Final = Path("/var/cache/labctl-npm")
BUNDLE: Final = "dumbflix-frontend.bundle"
COMPLETE: Final = ".complete"
FILL_RECIPE: Final = "npm ci, scripts run"  # part of the cache's key: a new recipe, a new cache
FILL_TIMEOUT: Final = 1200  # an online `npm ci` of the app took 78 s; a slow mirror, minutes


def find_bundle() -> Path | None:
    chosen = os.environ.get(WORKLOADS_ENV)
    if chosen:
        bundle = Path(chosen) / BUNDLE
        return bundle if bundle.is_file() else None
    for parent in ROOT.parents:
        bundle = parent / "shared" / "workloads" / BUNDLE
        if bundle.is_file():
            return bundle
    return None


def no_bundle_reason() -> str:
    return (
        f"no {BUNDLE} (set {WORKLOADS_ENV} to its folder, or put it in shared/workloads/ above "
        "the repository)"
    )


def lockfile(bundle: Path, work: Path) -> Path:
    """Clone the bundle into `work` (a checkout) and return its package-lock.json."""
    subprocess.run(
        ["git", "clone", "--quiet", "--", str(bundle), str(work)], check=True, timeout=120
    )
    return work / "package-lock.json"


# The course's seed lab: app1 and a gateway that balances over itself and app1; each instance
# clones the app, installs it offline from its own copy of the npm cache and serves the build.
COURSE_LAB: Final = """\
name: {name}
domain: alvin.xyz
aliases: [www.alvin.xyz]
{engine}app:
  name: dumbflix
  source: {{git: "{url}", ref: master}}
  # npm rewrites its cache's index even offline (a read-only cache misses every package's
  # metadata, and npm ci then links no node_modules/.bin): each instance installs from its own copy
  install: rm -rf /tmp/npm-cache && cp -R "$NPM_CACHE_SEED" /tmp/npm-cache && npm ci
  build: npm run build
  start: {{serve: build, spa: true}}
  port: 3000
  env:
    NODE_OPTIONS: --openssl-legacy-provider
    NPM_CACHE_SEED: "{cache}"
    npm_config_cache: /tmp/npm-cache
    npm_config_offline: "true"
    npm_config_logs_dir: /tmp/npm-logs
    npm_config_audit: "false"
    npm_config_fund: "false"
    npm_config_update_notifier: "false"
vms:
  - {{name: app1, roles: [app]}}
  - {{name: gateway, roles: [lb, app]}}
waits: {{launch: 600s, cloud_init: 900s, serve: 180s}}
snapshots: {{baseline: false}}
browser:
  wait_for: {{selector: .hero}}
  paths: [/, /movies]
"""


def course_lab(*, name: str, git_url: str, cache_seed: Path | str, engine: str = "") -> str:
    """The seed lab's lab.yaml: the app cloned from `git_url`, the npm cache copied from
    `cache_seed` as the instances see it; `engine` adds top-level lines (engine, image, sizes)."""
    return COURSE_LAB.format(name=name, url=git_url, cache=cache_seed, engine=engine)


def npm_cache_dir(bundle: Path) -> Path:
    """Where the cache for this bundle's lockfile lives (complete or not)."""
    with tempfile.TemporaryDirectory(prefix="labctl-app-") as tmp:
        locked = lockfile(bundle, Path(tmp) / "app").read_bytes()
    digest = hashlib.sha256(FILL_RECIPE.encode() + b"\0" + locked).hexdigest()
    return Path(os.environ.get(NPM_CACHE_ENV) or DEFAULT_NPM_CACHE) / digest[:16]


def ready_cache(bundle: Path) -> Path | None:
    cache = npm_cache_dir(bundle)
    return cache if (cache / COMPLETE).is_file() else None


def fill_cache(bundle: Path) -> Path:
    """`npm ci` once online with a fresh cache; the cache is then all an offline install needs."""
    cache = npm_cache_dir(bundle)
    if (cache / COMPLETE).is_file():
        return cache
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="labctl-app-") as tmp:
        work = lockfile(bundle, Path(tmp) / "app").parent
        env = {
            **os.environ,
            "npm_config_cache": str(partial),
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }
        # Exactly the install the VMs run (scripts too): with --ignore-scripts npm asks the
        # registry for other metadata, and the VMs' offline install then misses some of it.
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=work,
            env=env,
            check=True,
            timeout=FILL_TIMEOUT,
        )
    shutil.rmtree(partial / "_logs", ignore_errors=True)
    subprocess.run(["chmod", "-R", "a+rX,go-w", "--", str(partial)], check=True, timeout=120)
    shutil.rmtree(cache, ignore_errors=True)
    partial.rename(cache)
    (cache / COMPLETE).write_text("npm ci finished\n")
    return cache


def main() -> int:
    bundle = find_bundle()
    if bundle is None:
        print(f"npm-cache: {no_bundle_reason()}; the real-app tests will skip and say so")
        return 0
    if shutil.which("npm") is None:
        print("npm-cache: no npm here; the real-app tests will skip and say so")
        return 0
    parent = Path(os.environ.get(NPM_CACHE_ENV) or DEFAULT_NPM_CACHE)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        print(f"npm-cache: cannot create {parent} (set {NPM_CACHE_ENV}, or run as root)")
        return 0
    try:
        cache = fill_cache(bundle)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        # no registry here (offline machine): the course-app test says so when it runs
        print(f"npm-cache: filling the cache failed ({exc}); the course-app test will skip")
        return 0
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    print(f"npm-cache: {cache} ({size / 1e6:.0f} MB) for {bundle.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
