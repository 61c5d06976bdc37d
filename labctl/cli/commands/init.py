"""`labctl init`: a starter lab.yaml (with comments) and its JSON Schema beside it, for editors.

Without `--engine` the starter is written for the engine `labctl up` would take on this machine
(the registry's choice), so the file a newcomer gets is the one that runs here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.app import command_app, stdout
from labctl.cli.templates import ENGINES_OF, SCHEMA_FILE, Starter, StarterEngine, starter
from labctl.config.load import json_schema
from labctl.engine.registry import DEFAULT_ENGINE, decide_engine
from labctl.errors import ConfigError, LabctlError
from labctl.safefs import output_problem, write_output

cli = command_app()


def _engine_for(template: Starter, asked: StarterEngine | None) -> tuple[StarterEngine, list[str]]:
    """The starter's engine and what to say about it (nothing when the user named it)."""
    engines = ENGINES_OF[template]
    if asked is not None:
        if asked not in engines:
            raise ConfigError(
                [
                    f"--engine {asked}: the {template} starter is for {', '.join(engines)} "
                    "only; nothing was written"
                ]
            )
        return asked, []
    if len(engines) == 1:
        return engines[0], []
    choice = decide_engine()
    engine = StarterEngine(choice.name or DEFAULT_ENGINE)
    other = next(e for e in engines if e is not engine)
    if choice.name is None:
        return engine, [
            f"engine {engine}: no engine can run it here yet: {choice.reason}",
            choice.hint,
        ]
    return engine, [f"engine {engine}: {choice.reason} (or: labctl init --engine {other})"]


@cli.command()
def init(
    template: Annotated[
        Starter,
        typer.Argument(
            help="hello: 2 app instances + LB with the built-in app (fastest); seed: the course's "
            "dumbflix lab; class: one lab per student; cluster: a class on an LXD cluster."
        ),
    ] = Starter.hello,
    engine: Annotated[
        StarterEngine | None,
        typer.Option(
            "--engine",
            help="The engine the lab runs on. Default: the one `labctl up` would take here "
            "(lxd for cluster).",
            show_default=False,
        ),
    ] = None,
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
    existing = [str(p) for p in (file, schema) if p.is_symlink() or p.exists()]
    if existing and not force:
        raise ConfigError(
            [f"{', '.join(existing)} exists already; nothing was written (--force overwrites)"]
        )
    chosen, said = _engine_for(template, engine)
    file.parent.mkdir(parents=True, exist_ok=True)
    problems = [f"{p}: {why}" for p in (file, schema) if (why := output_problem(p))]
    if problems:
        raise ConfigError([f"{problems[0]}; nothing was written"])
    # each replaced whole, by a new file renamed over the name (a link there is not followed)
    for path, text in ((file, starter(template, chosen)), (schema, json_schema() + "\n")):
        try:
            write_output(path, text.encode("utf-8"))
        except OSError as exc:
            raise LabctlError(f"cannot write {path}: {exc.strerror or exc}") from None
    stdout.print(f"wrote {file} ({template.value} lab, engine {chosen}) and {schema}", markup=False)
    for line in said:
        stdout.print(line, markup=False)
    shown = "" if file == Path("lab.yaml") else f" -f {file}"
    stdout.print(
        f"next: labctl validate{shown}   then: labctl plan{shown}   then: labctl up{shown}",
        markup=False,
    )
