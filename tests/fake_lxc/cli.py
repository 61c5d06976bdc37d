"""Argument parsing as lxc's cobra does it: flags anywhere (`--f v`, `--f=v`, `-f v`, `-fv`),
`--` ends them, repeatable `-c`/`-p`/`-d`; errors in cobra's words.

Not reproduced: the help texts (a short usage block instead) and flags labctl never passes
(marked as unknown, which cobra would accept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .errors import LxcError

# long name -> (shorthand, takes a value)
Flags = dict[str, tuple[str, bool]]

GLOBAL: Final[Flags] = {
    "debug": ("", False),
    "force-local": ("", False),
    "help": ("h", False),
    "project": ("", True),
    "quiet": ("q", False),
    "verbose": ("v", False),
}
CREATE: Final[Flags] = {
    "config": ("c", True),
    "device": ("d", True),
    "ephemeral": ("e", False),
    "network": ("n", True),
    "no-profiles": ("", False),
    "profile": ("p", True),
    "storage": ("s", True),
    "target": ("", True),
    "type": ("t", True),
    "vm": ("", False),
    "empty": ("", False),
}
FORMAT: Final[Flags] = {"format": ("f", True)}
STOP: Final[Flags] = {
    "all": ("", False),
    "force": ("f", False),
    "stateful": ("", False),
    "timeout": ("", True),
}

# command path -> (flags, minimum positionals, maximum positionals or -1)
COMMANDS: Final[dict[str, tuple[Flags, int, int]]] = {
    "launch": (CREATE, 1, 2),
    "init": (CREATE, 1, 2),
    "list": (
        {**FORMAT, "columns": ("c", True), "fast": ("", False), "all-projects": ("", False)},
        0,
        -1,
    ),
    "exec": (
        {
            "cwd": ("", True),
            "disable-stdin": ("n", False),
            "env": ("", True),
            "force-interactive": ("t", False),
            "force-noninteractive": ("T", False),
            "group": ("", True),
            "mode": ("", True),
            "user": ("", True),
        },
        2,
        -1,
    ),
    "start": ({"all": ("", False), "stateless": ("", False)}, 1, -1),
    "stop": (STOP, 1, -1),
    "restart": (STOP, 1, -1),
    "pause": ({"all": ("", False)}, 1, -1),
    "delete": ({"force": ("f", False), "interactive": ("i", False)}, 1, -1),
    "snapshot": ({"reuse": ("", False), "stateful": ("", False), "no-expiry": ("", False)}, 1, 2),
    "restore": ({"stateful": ("", False)}, 2, 2),
    "info": ({"resources": ("", False), "show-log": ("", False), "target": ("", True)}, 0, 1),
    "version": ({}, 0, 1),
    "query": (
        {"data": ("d", True), "request": ("X", True), "raw": ("", False), "wait": ("", False)},
        1,
        1,
    ),
    "cluster list": (FORMAT, 0, 1),
    "project create": ({"config": ("c", True)}, 1, 1),
    "project list": (FORMAT, 0, 1),
    "project delete": ({}, 1, 1),
    "profile create": ({}, 1, 1),
    "profile list": (FORMAT, 0, 1),
    "profile delete": ({}, 1, 1),
    "profile device add": ({}, 3, -1),
    "config trust add": (
        {"name": ("", True), "projects": ("", True), "restricted": ("", False)},
        0,
        1,
    ),
    "config trust list": (FORMAT, 0, 1),
    "config trust remove": ({}, 1, 1),
    "config trust list-tokens": (FORMAT, 0, 1),
    "config trust revoke-token": (
        {},
        1,
        1,
    ),  # 5.0.2: `REMOTE: NAME` is "Invalid number of arguments"
    "remote add": (
        {"accept-certificate": ("", False), "password": ("", True), "project": ("", True)},
        1,
        2,
    ),
    "remote list": (FORMAT, 0, 0),
    "remote remove": ({}, 1, 1),
    "image list": (FORMAT, 0, -1),
    "storage list": (FORMAT, 0, 1),
    "network list": (FORMAT, 0, 1),
}
GROUPS: Final = (
    "cluster",
    "project",
    "profile",
    "config trust",
    "config",
    "remote",
    "image",
    "storage",
    "network",
    "profile device",
)


@dataclass
class Parsed:
    command: str
    positionals: list[str] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)  # long name -> values ("" = set)
    after_dashes: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.flags

    def value(self, name: str, default: str = "") -> str:
        return self.flags[name][-1] if name in self.flags else default

    def values(self, name: str) -> list[str]:
        return list(self.flags.get(name, []))


def command_path(argv: list[str]) -> tuple[str, list[str]]:
    """The longest known command (or group) at the start of argv, and the rest."""
    words: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        candidate = " ".join([*words, rest[0]])
        if candidate in COMMANDS or candidate in GROUPS:
            words.append(rest.pop(0))
        else:
            break
    return " ".join(words), rest


def parse(argv: list[str]) -> Parsed:
    path, rest = command_path(argv)
    if path not in COMMANDS:
        word = rest[0] if rest else ""
        raise LxcError(f'unknown command "{word}" for "{" ".join(["lxc", *path.split()])}"')
    spec, low, high = COMMANDS[path]
    known = {**GLOBAL, **spec}
    shorts = {short: long for long, (short, _) in known.items() if short}
    parsed = Parsed(path)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            parsed.after_dashes = rest[i + 1 :]
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, inline = arg[2:].partition("=")
            if name not in known:
                raise LxcError(f"unknown flag: --{name}")
            i = _take(parsed, rest, i, name, known[name][1], inline if eq else None, f"--{name}")
        elif arg.startswith("-") and len(arg) > 1:
            letter = arg[1]
            if letter not in shorts:
                raise LxcError(f"unknown shorthand flag: '{letter}' in {arg}")
            name = shorts[letter]
            inline = arg[2:] if len(arg) > 2 else None
            i = _take(parsed, rest, i, name, known[name][1], inline, f"-{letter}")
        else:
            parsed.positionals.append(arg)
            i += 1
    count = len(parsed.positionals) + len(parsed.after_dashes)
    if count < low or (high != -1 and count > high):
        usage = f"Usage:\n  lxc {path} [flags]\n"  # [fake] the real help text is longer
        if count == 0:
            raise LxcError("", 0, stdout=usage)
        raise LxcError("Invalid number of arguments", stdout=usage)
    return parsed


def _take(
    parsed: Parsed,
    rest: list[str],
    i: int,
    name: str,
    takes: bool,
    inline: str | None,
    spelled: str,
) -> int:
    if not takes:
        parsed.flags.setdefault(name, []).append("")
        return i + 1
    if inline is not None:
        parsed.flags.setdefault(name, []).append(inline)
        return i + 1
    if i + 1 >= len(rest):
        raise LxcError(f"flag needs an argument: {spelled}")
    parsed.flags.setdefault(name, []).append(rest[i + 1])
    return i + 2


def split_remote(ref: str, default: str) -> tuple[str, str]:
    """`remote:name` -> (remote, name); a bare name is on the default remote."""
    if ":" in ref:
        remote, _, name = ref.partition(":")
        return remote, name
    return default, ref
