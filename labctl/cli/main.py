"""The entry point: the typer `app` with every command module's commands registered on it.

`labctl` (pyproject [project.scripts]) and `python -m labctl` run `labctl.cli.main:app`.
"""

from __future__ import annotations

from labctl.cli import check, init, lab, lifecycle  # noqa: F401  (importing them registers their commands)
from labctl.cli.app import app

__all__ = ["app"]
