"""The browser tier: tests that start the real headless browser (marker `browser`).

Skipped with the reason when no browser is found; under LABCTL_REQUIRE_SIM=1 (CI) that is a
failure. Pages come only from loopback servers the tests start.
"""

from __future__ import annotations

import pytest

from labctl.host.browser.discover import BROWSER_ENV
from tests.browser.support import browser_env, browser_unavailable_reason
from tests.conftest import skip_or_fail


@pytest.fixture(autouse=True)
def _browser_on(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_or_fail(browser_unavailable_reason(), "browser")
    monkeypatch.delenv(BROWSER_ENV, raising=False)
    for name, value in browser_env().items():
        monkeypatch.setenv(name, value)
