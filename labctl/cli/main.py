"""The entry point: the typer `app`, whose commands load when they are invoked (app.COMMANDS).

`labctl` (pyproject [project.scripts]) and `python -m labctl` run `labctl.cli.main:app`.
"""

from __future__ import annotations

from labctl.cli.app import app

__all__ = ["app"]
