"""`labctl init` (a starter lab.yaml and its JSON Schema) and `labctl version`."""

from __future__ import annotations

import os
import platform
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from labctl import __version__
from labctl.cli.app import app, guard, stdout
from labctl.cli.templates import SCHEMA_FILE, TEMPLATES
from labctl.config.load import json_schema
from labctl.errors import ConfigError


class Template(StrEnum):
    hello = "hello"
    seed = "seed"
    class_ = "class"


@app.command()
@guard
def init(
    template: Annotated[
        Template,
        typer.Argument(
            help="hello: 2 app VMs + LB with the built-in app (fastest); seed: the course's "
            "dumbflix lab; class: one lab per student."
        ),
    ] = Template.hello,
    file: Annotated[
        Path, typer.Option("--file", "-f", metavar="PATH", help="Where to write it.")
    ] = Path("lab.yaml"),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing lab file and schema.")
    ] = False,
) -> None:
    """Write a starter lab.yaml (with comments) and lab.schema.json beside it, for editors.

    Example: labctl init hello && labctl validate && labctl up
    """
    schema = file.parent / SCHEMA_FILE
    existing = [str(p) for p in (file, schema) if p.exists()]
    if existing and not force:
        raise ConfigError(
            [f"{', '.join(existing)} exists already; nothing was written (--force overwrites)"]
        )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(TEMPLATES[template.value])
    schema.write_text(json_schema() + "\n")
    stdout.print(f"wrote {file} ({template.value} lab) and {schema}", markup=False)
    shown = "" if file == Path("lab.yaml") else f" -f {file}"
    stdout.print(
        f"next: labctl validate{shown}   then: labctl plan{shown}   then: labctl up{shown}",
        markup=False,
    )


@app.command()
def version() -> None:
    """Print labctl's version (and the Python it runs on)."""
    stdout.print(
        f"labctl {__version__} (Python {platform.python_version()}, {platform.system()})",
        markup=False,
    )
    if os.environ.get("LABCTL_MULTIPASS"):
        stdout.print(f"multipass: {os.environ['LABCTL_MULTIPASS']}", markup=False)
