"""CLI conventions every command follows without declaring them, applied to the command tree
typer builds: `LabctlGroup` is the `cls` of labctl's root typer app.

- A command's module is imported when that command is invoked (`command_modules`: name -> module,
  each module's typer app in `cli`), so start-up loads only what the command needs; `--help`
  and completion load them all to list them. Every convention below is applied to a command as
  it is loaded.
- The global options (--debug, --quiet, --no-progress) work after the command too
  (`labctl up --debug`, as in gh and docker compose): the group's own option objects are added
  to every subcommand, and their callbacks act wherever they are given.
- Metavars read like a man page: `PATH`, `N`, `NAME`, `VM...`; a flag shows none (typer would
  print `<bool>`, `<list[str]>`, `<int range>`).
- A number option is finite and in its range: `bounded_float` is the callback of every float
  option (typer's own `min=`/`max=` let NaN through, and `inf` crashes a sleep).
- Help text wraps cleanly: a docstring's hard line breaks inside a paragraph are joined, so rich
  rewraps the paragraph to the terminal instead of breaking lines at odd places.
- A usage error (`No such option: ...`, `Got unexpected extra argument ...`) echoes what was
  typed: its control characters are shown (terminal.visible) before typer prints it.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Final

import typer
import typer.main
from typer.core import TyperArgument, TyperGroup, TyperOption

from labctl.cli.terminal import visible

INHERITED: Final = ("debug", "quiet", "no_progress")  # group options every command accepts too
_METAVARS: Final = {"student": "NAME", "vm": "VM", "vms": "VM", "file": "PATH", "name": "NAME"}


class LabctlGroup(TyperGroup):
    command_modules: ClassVar[Mapping[str, str]] = {}  # command name -> the module defining it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inherited = [p for p in self.params if p.name in INHERITED]
        self.help = rewrap(self.help)
        _readable_params(self)
        _apply(self, inherited)
        self.commands = _LazyCommands(
            self.command_modules, dict(self.commands), lambda c: _conform(c, inherited)
        )

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _USAGE_ERROR as exc:
            raise _shown(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _USAGE_ERROR as exc:
            raise _shown(exc) from None

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # typer appends its completion options after __init__
        for param in params:
            if isinstance(param, TyperOption | TyperArgument):
                readable_metavar(param)
        return params


# click's base error (typer re-exports only BadParameter, a subclass, from click or its own copy).
_USAGE_ERROR: Final[type[Exception]] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _shown(exc: Exception) -> Exception:
    """The error with what it quotes from the command line made visible, for typer to print."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        setattr(exc, "message", visible(message))  # noqa: B010  (click's attribute, not typed here)
    return exc


class _LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name: those in `modules` are imported on first use (a listing of the
    names imports nothing), each conformed to the conventions once."""

    def __init__(
        self, modules: Mapping[str, str], loaded: dict[str, Any], conform: Callable[[Any], None]
    ) -> None:
        self._modules = modules
        self._loaded = loaded
        self._conform = conform

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in self._modules:
                raise KeyError(name)
            command = typer.main.get_command(importlib.import_module(self._modules[name]).cli)
            command.name = name
            self._conform(command)
            self._loaded[name] = command
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._modules or name in self._loaded  # asking imports nothing

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("labctl's commands are fixed")

    def __iter__(self) -> Iterator[str]:
        yield from self._modules
        yield from (name for name in self._loaded if name not in self._modules)

    def __len__(self) -> int:
        return len(set(self._modules) | set(self._loaded))


def _apply(group: TyperGroup, inherited: list[Any]) -> None:
    for command in group.commands.values():
        _conform(command, inherited)


def _conform(command: Any, inherited: list[Any]) -> None:
    """Rewrapped help, a short help, the inherited options and readable metavars, down the tree."""
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


def bounded_float(low: float, high: float, unit: str) -> Callable[[float], float]:
    """An option callback refusing NaN, infinities and values outside [low, high] (exit 2)."""

    def check(value: float) -> float:
        if not (math.isfinite(value) and low <= value <= high):  # NaN fails every comparison
            raise typer.BadParameter(
                f"{value:g} is not a number of {unit} from {low:g} to {high:g}"
            )
        return value

    return check
