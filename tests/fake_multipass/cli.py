"""Argument parsing that mimics multipass's use of QCommandLineParser (argparser.cpp).

* options may appear anywhere before ``--``; ``--opt value``, ``--opt=value``, ``-o value``,
  ``-ovalue`` and compacted short flags (``-vvv``) are accepted;
* errors use Qt's texts (``Unknown option 'x'.``, ``Missing value after '--name'.``) on stderr,
  exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import usage


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]  # first one is the canonical key; 1 char = short
    value: str | None = None  # value name; None for a flag
    help: str = ""
    hidden: bool = False


@dataclass
class Parsed:
    values: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)
    saw_double_dash: bool = False

    def is_set(self, key: str) -> bool:
        return self.counts.get(key, 0) > 0

    def value(self, key: str) -> str | None:
        vals = self.values.get(key)
        return vals[-1] if vals else None

    def all(self, key: str) -> list[str]:
        return list(self.values.get(key, []))


COMMON = (
    Opt(("help", "h"), help="Displays help on commandline options"),
    Opt(("verbose", "v"), help="Increase logging verbosity. Repeat the 'v' in the short option"),
)


def _find(opts: tuple[Opt, ...], name: str) -> Opt | None:
    for opt in opts:
        if name in opt.names:
            return opt
    return None


def parse(args: list[str], opts: tuple[Opt, ...]) -> Parsed:
    opts = opts + COMMON
    result = Parsed()
    unknown: list[str] = []
    i = 0

    def record(opt: Opt, value: str | None) -> None:
        key = opt.names[0]
        result.counts[key] = result.counts.get(key, 0) + 1
        if value is not None:
            result.values.setdefault(key, []).append(value)

    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            result.saw_double_dash = True
            result.positionals.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            opt = _find(opts, name) if len(name) > 1 else None
            if opt is None:
                unknown.append(name)
                continue
            if opt.value is None:
                if eq:
                    raise usage(f"Unexpected value after '--{name}'.")
                record(opt, None)
            elif eq:
                record(opt, inline)
            elif i < len(args):
                record(opt, args[i])
                i += 1
            else:
                raise usage(f"Missing value after '--{name}'.")
        elif arg.startswith("-") and arg != "-":
            chars = arg[1:]
            j = 0
            while j < len(chars):
                ch = chars[j]
                j += 1
                opt = _find(opts, ch)
                if opt is None:
                    unknown.append(ch)
                elif opt.value is None:
                    record(opt, None)
                elif j < len(chars):
                    record(opt, chars[j:].removeprefix("="))
                    break
                elif i < len(args):
                    record(opt, args[i])
                    i += 1
                else:
                    raise usage(f"Missing value after '-{ch}'.")
        else:
            result.positionals.append(arg)
    if unknown:
        if len(unknown) == 1:
            raise usage(f"Unknown option '{unknown[0]}'.")
        raise usage(f"Unknown options: {', '.join(unknown)}.")
    if result.counts.get("verbose", 0) > 4:
        raise usage("Verbosity level is incorrect. Must be between 0 and 4.")
    return result


def option_help(opts: tuple[Opt, ...]) -> str:
    lines = []
    for opt in opts + COMMON:
        if opt.hidden:
            continue
        shorts = [f"-{n}" for n in opt.names if len(n) == 1]
        longs = [f"--{n}" for n in opt.names if len(n) > 1]
        spec = ", ".join(shorts + longs)
        if opt.value:
            spec += f" <{opt.value}>"
        lines.append(f"  {spec:<30}{opt.help}")
    return "\n".join(lines)
