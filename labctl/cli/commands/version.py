"""`labctl version`: labctl's version, the Python it runs on, and the engine executables this run
would use. Loads no use case: it is what a broken install is checked with."""

from __future__ import annotations

import os
import platform

from labctl import __version__
from labctl.cli.app import command_app, stdout
from labctl.engine.registry import EXECUTABLE_VARIABLES

cli = command_app()


@cli.command()
def version() -> None:
    """Print labctl's version (and the Python it runs on)."""
    stdout.print(
        f"labctl {__version__} (Python {platform.python_version()}, {platform.system()})",
        markup=False,
    )
    for variable in EXECUTABLE_VARIABLES:  # which engine executables this run would use
        if os.environ.get(variable):
            stdout.print(f"{variable}={os.environ[variable]}", markup=False)
