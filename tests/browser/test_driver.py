"""The in-tree CDP driver with the real browser: both transports (the pipe of Linux/macOS and the
websocket of Windows), a loopback page shot at 1280x800, and the browser's whole process tree
gone afterwards: after a normal close, an error or Ctrl-C inside, and labctl itself killed."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from labctl.host.browser.page import WaitFor, visit
from labctl.host.browser.process import Browser, TransportKind
from labctl.ops.doctor import browser_check
from tests.browser import png
from tests.browser.support import processes_using

pytestmark = [pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
PAGE = """<!doctype html><title>loopback</title><body><p id=root></p>
<script>setTimeout(() => { document.getElementById('root').innerHTML =
  '<span class="ready">served on loopback</span>'; }, 300);</script>"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(PAGE)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"site.lab:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _gone(profile: Path) -> bool:
    """Whether no process of that browser is left (checked for a bounded 15 s)."""
    for _ in range(150):
        if not processes_using(str(profile)):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("transport", ["pipe", "websocket"])
def test_both_transports_open_a_mapped_loopback_page_and_shoot_it(
    transport: TransportKind, site: str
) -> None:
    with Browser.start(resolver_rules=["MAP site.lab 127.0.0.1"], transport=transport) as browser:
        profile = browser.profile
        assert "Chrome/" in browser.product  # Chromium, Chrome and Edge all say Chrome/
        assert processes_using(str(profile))  # it runs, in its own private profile
        page = visit(browser.cdp, f"http://{site}/", WaitFor(selector=".ready"), timeout=15)
    assert page.status == 200 and page.ready and page.title == "loopback"
    assert page.text == "served on loopback"
    assert page.screenshot is not None and png.size(page.screenshot) == (1280, 800)
    assert _gone(profile) and not profile.exists()


def test_a_proxy_meant_for_the_internet_does_not_stand_between_the_browser_and_the_lab(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a closed port: nothing gets through
    with Browser.start(resolver_rules=["MAP site.lab 127.0.0.1"]) as browser:
        page = visit(browser.cdp, f"http://{site}/", WaitFor(selector=".ready"), timeout=15)
    assert page.status == 200 and page.text == "served on loopback", page


def test_the_tree_is_killed_when_an_error_or_ctrl_c_leaves_the_with() -> None:
    with pytest.raises(KeyboardInterrupt), Browser.start() as browser:
        profile = browser.profile
        raise KeyboardInterrupt  # Ctrl-C while pages are open
    assert _gone(profile) and not profile.exists()


def test_a_killed_labctl_takes_its_pipe_browser_with_it(tmp_path: Path) -> None:
    """kill -9 of labctl runs no cleanup: the browser exits because its CDP pipe closed."""
    script = (
        "import os, signal\n"
        "from labctl.host.browser.process import Browser\n"
        "b = Browser.start(transport='pipe')\n"
        "print(b.profile, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    profile = Path(done.stdout.strip())
    assert profile.name.startswith("labctl-browser-")
    try:
        assert _gone(profile)
    finally:
        for pid in processes_using(str(profile)):  # only if the assertion failed
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", "--", str(profile)], check=False, timeout=30)


def test_doctor_says_which_browser_is_usable(make_world) -> None:
    found = browser_check(make_world().ctx.lab)
    assert found.status == "ok", found
    assert "Chrome/" in found.detail and "for `labctl check`" in found.detail
