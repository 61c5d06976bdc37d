"""`python -m labctl`."""

from __future__ import annotations

from labctl.cli import app

app(prog_name="labctl")
