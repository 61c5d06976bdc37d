"""Output formatting: Qt ``QJsonDocument`` pretty print and the table formatter."""

from __future__ import annotations

import json
from typing import Any

INDENT = "    "


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Qt prints doubles in shortest form and integral doubles without ".0"
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _render(value: Any, level: int) -> str:
    pad = INDENT * level
    inner = INDENT * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{\n" + pad + "}"
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_render(value[k], level + 1)}"
            for k in sorted(value)
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[\n" + pad + "]"
        items = [inner + _render(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _scalar(value)


def qt_json(document: dict[str, Any]) -> str:
    """4-space indent, keys sorted, empty containers split over two lines, trailing newline."""
    return _render(document, 0) + "\n"


def list_table(rows: list[tuple[str, str, list[str], str]]) -> str:
    """``multipass list`` table (table_formatter.cpp): Name/State/IPv4/Image."""
    if not rows:
        return "No instances found.\n"
    name_w = max(24, max(len(r[0]) for r in rows) + 3)
    out = [f"{'Name':<{name_w}}{'State':<18}{'IPv4':<17}Image"]
    for name, state, ips, image in rows:
        first = ips[0] if ips else "--"
        out.append(f"{name:<{name_w}}{state:<18}{first:<17}{image}")
        out.extend(f"{'':<{name_w}}{'':<18}{ip}" for ip in ips[1:])
    return "\n".join(out) + "\n"


def snapshots_table(rows: list[tuple[str, str, str, str]]) -> str:
    if not rows:
        return "No snapshots found.\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 3 for i, h in enumerate(_SNAP_HEAD)]
    lines = ["".join(f"{h:<{w}}" for h, w in zip(_SNAP_HEAD, widths, strict=True)).rstrip()]
    for row in rows:
        cells = [(c or "--") for c in row]
        lines.append("".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


_SNAP_HEAD = ("Instance", "Snapshot", "Parent", "Comment")


def human_bytes(value: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    size = float(value)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.1f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1024
    return f"{size:.1f}TiB"  # pragma: no cover - loop always returns


def info_table(entries: list[dict[str, Any]]) -> str:
    """A reduced ``multipass info`` table (field names as in table_formatter.cpp)."""
    if not entries:
        return "No instances found.\n"
    blocks = []
    for e in entries:
        lines = [
            ("Name", e["name"]),
            ("State", e["state"]),
            ("Snapshots", e.get("snapshot_count", "")),
            ("IPv4", (e["ipv4"] or ["--"])[0]),
            ("Release", e["release"] or "--"),
            ("Image hash", f"{e['image_hash'][:12]} (Ubuntu {e['image_release']})"),
            ("CPU(s)", e["cpu_count"] or "--"),
            ("Load", " ".join(str(x) for x in e["load"]) or "--"),
            ("Disk usage", e.get("disk_text", "--")),
            ("Memory usage", e.get("memory_text", "--")),
            ("Mounts", "\n".join(e["mounts"]) or "--"),
        ]
        blocks.append(
            "\n".join(f"{k + ':':<16}{v}" for k, v in lines if k != "Snapshots" or v != "")
        )
    return "\n\n".join(blocks) + "\n"
