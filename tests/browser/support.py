"""What tests that start the real headless browser share (the browser tier, and the e2e test
of the course's app): whether a browser is here, the environment labctl gets for it, and which
processes are still the browser's.

`LABCTL_BROWSER_RULES` makes every name but the lab's unresolvable, so a page that links to the
internet (fonts, an API) cannot reach it from a test.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from labctl.host.browser.discover import BROWSER_ENV, find_browser
from labctl.host.browser.errors import BrowserUnavailableError
from labctl.host.browser.process import RULES_ENV

OFFLINE_RULES = "MAP * ~NOTFOUND, EXCLUDE localhost"
# "/, /movies: .hero rendered in 1.3 s (...)", or each path with its own time
RENDERED_BOTH = re.compile(
    r"/, /movies: \.hero rendered in [\d.]+ s.*"
    r"|/: \.hero rendered in [\d.]+ s.*; /movies: \.hero rendered in [\d.]+ s.*"
)
# What the user asked for before the suite's autouse fixture turned the browser off.
_USER_BROWSER = os.environ.get(BROWSER_ENV)


def browser_unavailable_reason() -> str | None:
    env = {k: v for k, v in os.environ.items() if k != BROWSER_ENV}
    if _USER_BROWSER is not None:
        env[BROWSER_ENV] = _USER_BROWSER
    try:
        find_browser(env)
    except BrowserUnavailableError as exc:
        return f"{exc.message} (make test installs Debian's chromium as root)"
    return None


def browser_env() -> dict[str, str]:
    """The environment the browser tier runs labctl in: the user's browser, offline rules."""
    env = {RULES_ENV: OFFLINE_RULES}
    if _USER_BROWSER is not None:
        env[BROWSER_ENV] = _USER_BROWSER
    return env


def processes_using(marker: str) -> list[int]:
    """PIDs whose command line mentions `marker` (a browser's private profile path)."""
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(proc.name))
    return found


def nginx_unavailable_reason() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return "needs nginx (make test installs it as root)"
    return None
