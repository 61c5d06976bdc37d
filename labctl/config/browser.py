"""Rules of lab.yaml's `browser:` section that relate its fields (the single values are checked
by the model): what "rendered" means is one thing, paths are not repeated, the wait is bounded."""

from __future__ import annotations

from typing import Final

from labctl.config.yamlpos import Path_
from labctl.model import Lab

MAX_TIMEOUT: Final = 300.0  # per page; a class of 25 at 4 windows stays within minutes


def check_browser(lab: Lab) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    settings = lab.browser
    wait = settings.wait_for
    if wait is not None and (wait.selector is None) == (wait.text is None):
        found.append((("browser", "wait_for"), "give exactly one of selector or text"))
    seen: dict[str, int] = {}
    for i, path in enumerate(settings.paths):
        if path in seen:
            found.append((("browser", "paths", i), f"{path!r} is listed twice"))
        seen.setdefault(path, i)
    if settings.timeout > MAX_TIMEOUT:
        found.append(
            (
                ("browser", "timeout"),
                f"at most {MAX_TIMEOUT:.0f}s per page (the check waits this long)",
            )
        )
    return found
