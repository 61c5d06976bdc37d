"""Scalars whose YAML 1.1 meaning is not what the text says, worded as lab.yaml problems.

PyYAML's safe loader follows YAML 1.1: `03000` is octal (1536), `1:20` is base 60 (80), `0x50`,
`0b101` and `1_000` are numbers too, `.inf` and `.nan` are floats. A port, size or count written
that way would silently become another value, and none of them is what a lab.yaml means, so these
spellings are refused wherever they appear ("quote it or write it in decimal"). PyYAML's scalar
constructors also fail with plain Python exceptions (`!!int abc`, `!!bool maybe`, the date
2024-02-30, a 5000-digit integer past Python's int-parsing limit): `constructor_problem` words
those. Hand-written because PyYAML offers no hook between resolving a tag and constructing it.
The rules see a scalar's tag and text only; `yamlpos.py` (the only module that imports PyYAML)
calls them while it builds the document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final

_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
MAX_DIGITS: Final = 20  # a size in bytes has 16; nothing in a lab.yaml has more
# Plain decimal: what every reader of the file (and YAML 1.2) takes to mean the same number.
_DECIMAL_INT: Final = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_DECIMAL_FLOAT: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPELLINGS: Final = (  # (pattern, how YAML 1.1 reads it), first match wins
    (re.compile(r"[-+]?\.(?:inf|Inf|INF)"), "infinity"),
    (re.compile(r"\.(?:nan|NaN|NAN)"), "NaN (not a number)"),
    (re.compile(r"[-+]?0b[01_]+"), "a binary number"),
    (re.compile(r"[-+]?0x[0-9a-fA-F_]+"), "a hexadecimal number"),
    (re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"), "a base-60 number"),
    (re.compile(r"[-+]?0[0-7_]+"), "an octal number"),
    (re.compile(r"[-+]?[0-9._]*_[0-9._]*(?:[eE][-+][0-9]+)?"), "a number with digit separators"),
)
_WHAT: Final = {
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false (true/false, yes/no, on/off)",
    "tag:yaml.org,2002:timestamp": "a date or time",
    "tag:yaml.org,2002:null": "an empty value",
}
_SHOWN: Final = 40  # characters of the offending text quoted in a message


def cut(text: str, limit: int = _SHOWN) -> str:
    """The text as written, cut short for a message."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def number_problem(tag: str, text: str, construct: Callable[[], Any]) -> str | None:
    """Why a scalar YAML reads as a number (`tag`) must be refused, or None: too long, or not
    decimal. `construct` builds the value YAML 1.1 would make of it, to show in the message."""
    if tag not in (_INT_TAG, _FLOAT_TAG):
        return None
    digits = sum(c.isdigit() for c in text)
    if digits > MAX_DIGITS:
        return (
            f"a number with {digits} digits; no lab.yaml setting takes more than {MAX_DIGITS} "
            "(quote it if it is text)"
        )
    decimal = _DECIMAL_INT if tag == _INT_TAG else _DECIMAL_FLOAT
    if decimal.fullmatch(text):
        return None
    kind = next((kind for regex, kind in _SPELLINGS if regex.fullmatch(text)), None)
    if kind in ("infinity", "NaN (not a number)"):
        return f"{text} is {kind} in YAML; no lab.yaml setting takes it (quote it if it is text)"
    value = _read_as(construct)
    if value is None:
        return None  # not a number at all (`!!int abc`): constructor_problem says so
    kind = kind or "a number not written in decimal"  # `!!int 0o10`: int() takes Python's prefix
    return f"{cut(text)} is {kind} in YAML 1.1 ({value}); quote it or write it in decimal"


def _read_as(construct: Callable[[], Any]) -> str | None:
    try:
        value = construct()
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def constructor_problem(tag: str, text: str, implicit: bool, exc: Exception) -> str:
    """A PyYAML scalar constructor failed (`exc`) on `text`: say what the text is not. `implicit`:
    YAML chose the tag from the spelling (`2024-02-30`), nobody wrote `!!int`."""
    what = _WHAT.get(tag, tag)
    shown = cut(text)
    reason = f" ({exc})" if tag == "tag:yaml.org,2002:timestamp" and _dated(exc) else ""
    if implicit:
        return f"{shown} is written like {what}, but is not one{reason}; quote it if it is text"
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"{short} {shown!r}: not {what}{reason}"


def value_problem(text: str, value: object) -> str | None:
    """A decimal spelling that still is no number: `1.0e+99999` is infinite as a float."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{cut(text)} is too big for a number (YAML reads it as infinity)"
    return None


def _dated(exc: Exception) -> bool:
    # datetime's own words ("day is out of range for month") help; a regex miss's do not
    return isinstance(exc, ValueError) and "range" in str(exc)
