"""The real daemon's outputs the fake is checked against (tests/fixtures/lxd, written by
tests/lxd/record.py), and the shape comparison both the fake's tests and the live `lxd` tests
use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

RECORDED: Final = Path(__file__).resolve().parents[1] / "fixtures" / "lxd"
#: key-value maps: one type each (their keys depend on the instance, not on LXD)
MAPS: Final = ("config", "expanded_config", "devices", "expanded_devices", "properties")


def calls() -> dict[str, dict[str, Any]]:
    """situation -> {argv, rc, stdout, stderr, seconds} as the real client answered."""
    data: dict[str, dict[str, Any]] = json.loads((RECORDED / "calls.json").read_text())
    return data


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def shape(value: Any) -> Any:
    """Keys in order and value types, recursively (the first element stands for a list)."""
    if isinstance(value, dict):
        return [
            (k, "map" if k in MAPS and isinstance(v, dict) else shape(v)) for k, v in value.items()
        ]
    if isinstance(value, list):
        return ["list", shape(value[0])] if value else ["list"]
    return type(value).__name__
