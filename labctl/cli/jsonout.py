"""`--json`: every command's JSON document is made here, one document on stdout.

A result becomes plain data the one way (`data`): a dataclass field by field, an object with
`to_dict` by it, mappings and lists item by item. The text is `json.dumps` with its ASCII escapes
(a VM's control characters arrive as `\\u001b`, never raw), printed through the safe console with
no markup or highlighting.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from labctl.cli.app import stdout


def data(value: object) -> Any:
    """`value` as JSON-ready data."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [data(item) for item in value]
    return value


def document(value: object) -> str:
    return json.dumps(data(value), indent=2)


def print_json(value: object) -> None:
    """The one way a command prints its --json document."""
    stdout.out(document(value), highlight=False)
