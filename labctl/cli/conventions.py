"""CLI conventions every command follows without declaring them (issue 12), applied to the
command tree typer builds: `LabctlGroup` is the `cls` of labctl's typer apps.

- The global options (--debug, --quiet, --no-progress) work after the command too
  (`labctl up --debug`, as in gh and docker compose): the group's own option objects are added
  to every subcommand, and their callbacks act wherever they are given.
- Metavars read like a man page: `PATH`, `N`, `NAME`, `VM...`; a flag shows none (typer would
  print `<bool>`, `<list[str]>`, `<int range>`).
- Help text wraps cleanly: a docstring's hard line breaks inside a paragraph are joined, so rich
  rewraps the paragraph to the terminal instead of breaking lines at odd places.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any, Final

from typer.core import TyperArgument, TyperGroup, TyperOption

INHERITED: Final = ("debug", "quiet", "no_progress")  # group options every command accepts too
_METAVARS: Final = {"student": "NAME", "vm": "VM", "vms": "VM", "file": "PATH", "name": "NAME"}


class LabctlGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inherited = [p for p in self.params if p.name in INHERITED]
        self.help = rewrap(self.help)
        _readable_params(self)
        _apply(self, inherited)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # typer appends its completion options after __init__
        for param in params:
            if isinstance(param, TyperOption | TyperArgument):
                readable_metavar(param)
        return params


def _apply(group: TyperGroup, inherited: list[Any]) -> None:
    for command in group.commands.values():
        command.help = rewrap(command.help)
        if command.short_help is None and command.help:
            command.short_help = command.help.split("\n\n", 1)[0].split("\b", 1)[0].strip()
        names = {p.name for p in command.params}
        command.params.extend(p for p in inherited if p.name not in names)
        _readable_params(command)
        if isinstance(command, TyperGroup):
            _apply(command, inherited)


def _readable_params(command: Any) -> None:
    # click builds the help option lazily and caches it; build it now to give it a metavar too.
    help_option = command.get_help_option(_HelpNames())
    for param in [*command.params, help_option]:
        if isinstance(param, TyperOption | TyperArgument):
            readable_metavar(param)


class _HelpNames:
    """All `get_help_option` reads of a context (the app's context_settings say the same)."""

    help_option_names: Final = ["-h", "--help"]


def rewrap(text: str | None) -> str | None:
    """Join the single line breaks inside each paragraph (not in `\\b` verbatim ones)."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", text.strip())
    joined = [p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs]
    return "\n\n".join(joined)


def readable_metavar(param: TyperOption | TyperArgument) -> None:
    """A metavar a person reads: none for a flag, PATH, N, NAME, VM..., a|b|c for choices."""
    if param.metavar is not None:
        return
    if isinstance(param, TyperOption) and param.is_flag:
        param.metavar = ""  # typer shows the metavar as is: "" means nothing after the flag
        return
    annotation = param.type_descriptor.annotation
    choices = param.type_descriptor.choices if param.type_descriptor.is_choice else None
    if choices:
        word = "|".join(str(c.value if isinstance(c, Enum) else c) for c in choices)
    elif param.name in _METAVARS:
        word = _METAVARS[param.name or ""]
    elif annotation is int or annotation is float:
        word = "N"
    elif annotation is Path or param.type_descriptor.is_path:
        word = "PATH"
    else:
        word = (param.name or "value").upper()
    param.metavar = word  # an argument taking many: click's usage adds the "..." itself
    if isinstance(param, TyperArgument):
        # typer prints an argument's type beside its name (`<list[str]>`); the name says it all.
        setattr(param, "display_type_rich", _no_type)  # noqa: B010  (an instance override)


def _no_type(ctx: Any) -> None:
    return None
