"""`python -m labctl`."""

from __future__ import annotations

from labctl.cli.main import app

app(prog_name="labctl")
