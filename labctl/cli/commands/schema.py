"""`labctl schema`: the JSON Schema of lab.yaml, for editors."""

from __future__ import annotations

from labctl.cli.app import command_app, stdout
from labctl.config.load import json_schema

cli = command_app()


@cli.command()
def schema() -> None:
    """Print the JSON Schema of lab.yaml (for editors: yaml-language-server)."""
    stdout.print(json_schema())
