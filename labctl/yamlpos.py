"""Load YAML with `safe_load` semantics while remembering where every key and item is.

pydantic reports problems by path (`vms.1.name`); users need `lab.yaml:LINE:COL`. Composing the node
tree ourselves gives both the data and a path -> position table, and lets us reject duplicate keys,
which PyYAML would otherwise silently collapse (the last one wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LoadedYaml:
    data: Any
    positions: dict[Path_, Position] = field(default_factory=dict)
    duplicates: list[tuple[Path_, Position]] = field(default_factory=list)

    def position_of(self, path: Path_) -> Position | None:
        """Position of `path`, or of its closest ancestor that exists (for missing keys)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


class YamlSyntaxError(Exception):
    def __init__(self, message: str, position: Position | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def load_yaml_with_positions(text: str) -> LoadedYaml:
    """Parse one YAML document with the safe constructor; raise YamlSyntaxError on bad syntax."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"invalid YAML: {problem}", _pos(mark) if mark else None) from exc
    except yaml.YAMLError as exc:  # e.g. a second document, or an unreadable stream
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from exc
    loaded = LoadedYaml(data=None)
    if node is None:
        return loaded
    constructor = yaml.SafeLoader("")
    loaded.positions[()] = _pos(node.start_mark)
    try:
        loaded.data = _build(node, (), loaded, constructor)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlSyntaxError(f"invalid YAML: {exc.problem}", _pos(mark) if mark else None) from exc
    return loaded


def _build(node: yaml.Node, path: Path_, out: LoadedYaml, constructor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # resolves `<<` merge keys like safe_load does
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            key_text = str(key)
            child = (*path, key_text)
            if key_text in result:
                out.duplicates.append((child, _pos(key_node.start_mark)))
            out.positions.setdefault(child, _pos(key_node.start_mark))
            result[key_text] = _build(value_node, child, out, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            out.positions[(*path, index)] = _pos(item.start_mark)
            items.append(_build(item, (*path, index), out, constructor))
        return items
    return constructor.construct_object(node, deep=True)
