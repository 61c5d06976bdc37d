"""Which browser to drive: `LABCTL_BROWSER`, else a Chromium-family browser on PATH, else the
usual install places of Chrome, Chromium and Edge on macOS and Windows.

Only Chromium-family browsers speak CDP over a pipe; Firefox dropped CDP. Nothing is ever
downloaded: with no browser here, `BrowserUnavailableError` names what to install.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from labctl.host.browser.errors import BrowserUnavailableError

BROWSER_ENV: Final = "LABCTL_BROWSER"
TURNED_OFF: Final = ("none", "off")  # LABCTL_BROWSER=none: no browser, the browser check skips
ON_PATH: Final = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "microsoft-edge",
    "microsoft-edge-stable",
)
MAC_APPS: Final = (
    "Google Chrome.app/Contents/MacOS/Google Chrome",
    "Chromium.app/Contents/MacOS/Chromium",
    "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
)
WINDOWS_APPS: Final = (  # under %PROGRAMFILES%, %PROGRAMFILES(X86)% or %LOCALAPPDATA%
    ("Google", "Chrome", "Application", "chrome.exe"),
    ("Chromium", "Application", "chrome.exe"),
    ("Microsoft", "Edge", "Application", "msedge.exe"),
)
WINDOWS_ROOTS: Final = ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")
INSTALL_HINT: Final = (
    "Install Chromium or Chrome (Debian/Ubuntu: sudo apt install chromium; macOS: brew install "
    "--cask chromium; Windows: install Chrome or Edge), or set LABCTL_BROWSER to its executable."
)
_SNAP_SCRIPT_LIMIT: Final = 8192  # Ubuntu's chromium-browser is a small script that runs the snap


@dataclass(frozen=True)
class BrowserExecutable:
    path: Path
    snap: bool = False  # a snap cannot see the host's /tmp: its profile must live under $HOME

    @property
    def name(self) -> str:
        return self.path.name


def find_browser(
    env: Mapping[str, str] | None = None,
    *,
    platform: str = sys.platform,
    which: Callable[[str], str | None] = shutil.which,
    home: Path | None = None,
) -> BrowserExecutable:
    """The browser to use, or BrowserUnavailableError saying why there is none."""
    env = os.environ if env is None else env
    chosen = env.get(BROWSER_ENV, "").strip()
    if chosen.lower() in TURNED_OFF:
        raise BrowserUnavailableError(f"turned off ({BROWSER_ENV}={chosen})")
    if chosen:
        found = which(chosen)
        if found is None:
            raise BrowserUnavailableError(
                f"{BROWSER_ENV}={chosen} is not an executable browser", hint=INSTALL_HINT
            )
        return _executable(Path(found))
    for name in ON_PATH:
        if (found := which(name)) is not None:
            return _executable(Path(found))
    for candidate in _installed_apps(env, platform, home or Path.home()):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return BrowserExecutable(candidate)
    raise BrowserUnavailableError(
        "no Chromium, Chrome or Edge found (looked at "
        f"{BROWSER_ENV}, PATH{' and the usual install places' if platform != 'linux' else ''})",
        hint=INSTALL_HINT,
    )


def _installed_apps(env: Mapping[str, str], platform: str, home: Path) -> list[Path]:
    if platform == "darwin":
        roots = [Path("/Applications"), home / "Applications"]
        return [root / app for root in roots for app in MAC_APPS]
    if platform == "win32":
        roots = [Path(env[name]) for name in WINDOWS_ROOTS if env.get(name)]
        return [root.joinpath(*app) for root in roots for app in WINDOWS_APPS]
    return []


def _executable(path: Path) -> BrowserExecutable:
    return BrowserExecutable(path, snap=_is_snap(path))


def _is_snap(path: Path) -> bool:
    """A snap's browser: its path resolves under /snap, or it is the small script that runs it."""
    try:
        if path.resolve().parts[1:2] == ("snap",):
            return True
        if path.stat().st_size > _SNAP_SCRIPT_LIMIT:
            return False
        return b"/snap/bin/" in path.read_bytes()
    except (OSError, IndexError):
        return False
