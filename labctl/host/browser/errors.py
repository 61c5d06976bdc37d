"""What can go wrong with the browser, as labctl errors (caught once, by the CLI's guard)."""

from __future__ import annotations

from labctl.errors import LabctlError


class BrowserUnavailableError(LabctlError):
    """No usable Chromium-family browser here; the message says what to install."""


class BrowserError(LabctlError):
    """The browser was found but failed: it did not start, crashed, or stopped answering CDP."""
