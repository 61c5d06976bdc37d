"""Load YAML with `safe_load` semantics while remembering where every key and item is.

pydantic reports problems by path (`vms.1.name`); users need `lab.yaml:LINE:COL`. Composing the node
tree ourselves gives both the data and a path -> position table, and lets us reject duplicate keys,
which PyYAML would otherwise silently collapse (the last one wins).

Hostile YAML is bounded before anything is built: nesting is capped while composing (PyYAML's
composer recurses, so `[[[[...` would overflow the stack), and the size the document would have with
every alias expanded is counted on the node graph first, so an alias bomb ("billion laughs") or a
recursive alias (`&a [*a]`) is refused in linear time instead of hanging or eating memory.

Scalars are checked as they are built (config/yamlscalars.py): a number YAML 1.1 would read other
than as written (`03000`, `1:20`, `.inf`) or a value its constructor rejects (`!!int abc`,
2024-02-30) becomes a problem of its field, and the field keeps the text as written, so no value
YAML made up reaches the model. Mapping keys are always their text (`yes:` is the key "yes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from labctl.config.yamlscalars import constructor_problem, number_problem, value_problem

Path_ = tuple[str | int, ...]

MAX_DEPTH: Final = 32  # nesting levels; a lab.yaml needs 5
MAX_VALUES: Final = 20_000  # values with every alias expanded; a big lab.yaml has a few hundred
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_BINARY_TAG: Final = "tag:yaml.org,2002:binary"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_PLAIN_TAGS: Final[dict[type, str]] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LoadedYaml:
    data: Any
    positions: dict[Path_, Position] = field(default_factory=dict)
    duplicates: list[tuple[Path_, Position]] = field(default_factory=list)
    problems: list[tuple[Path_, str]] = field(default_factory=list)  # scalars refused as written

    def position_of(self, path: Path_) -> Position | None:
        """Position of `path`, or of its closest ancestor that exists (for missing keys)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


class YamlSyntaxError(Exception):
    """The text is not YAML labctl accepts; `path` is set when the problem belongs to a field."""

    def __init__(self, message: str, position: Position | None, path: Path_ = ()) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.path = path


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses to nest deeper than MAX_DEPTH (it recurses per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]  # PyYAML has no hints,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_with_positions(text: str) -> LoadedYaml:
    """Parse one YAML document with the safe constructor; raise YamlSyntaxError on bad syntax."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader rejects control characters right here
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:  # a control character: no mark, only an offset
        raise YamlSyntaxError(
            f"invalid YAML: control character {_codepoint(exc.character)} is not allowed "
            "(write it as an escape inside double quotes)",
            _offset_position(text, exc.position),
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark and mark is not exc.context_mark:
            # e.g. an unclosed bracket: the problem is at the end, the bracket is here
            start = _pos(exc.context_mark)
            problem += f" ({exc.context} at {start.line}:{start.column})"
        raise YamlSyntaxError(f"invalid YAML: {problem}", _pos(mark) if mark else None) from exc
    except yaml.YAMLError as exc:  # e.g. an unreadable stream
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from exc
    finally:
        if loader is not None:
            loader.dispose()
    loaded = LoadedYaml(data=None)
    if node is None:
        return loaded
    _Expansion().size(node, ())
    loaded.positions[()] = _pos(node.start_mark)
    try:
        loaded.data = _Builder(loaded).build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlSyntaxError(f"invalid YAML: {exc.problem}", _pos(mark) if mark else None) from exc
    return loaded


def _codepoint(character: int | str) -> str:
    return f"U+{character if isinstance(character, int) else ord(character):04X}"


def _offset_position(text: str, offset: int) -> Position:
    before = text[:offset]
    return Position(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _children(node: yaml.Node) -> list[tuple[str | int, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        found: list[tuple[str | int, yaml.Node]] = []
        for key, value in node.value:
            label = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            found += [(label, key), (label, value)]
        return found
    return []


class _Expansion:
    """Counts the values a node stands for with every alias expanded; raises past the limits.

    Aliases share node objects, so sizes are memoized by id: linear in the text, not the expansion.
    """

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()
        self.aliased = False  # a node was reached twice, i.e. through an alias

    def size(self, node: yaml.Node, path: Path_, depth: int = 1) -> int:
        known = self.sizes.get(id(node))
        if known is not None:
            self.aliased = True
            return known
        where = _pos(node.start_mark)
        if id(node) in self.active:
            raise YamlSyntaxError(
                "an alias refers to a node that contains it (a recursive structure)", where, path
            )
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(
                f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", where, path
            )
        self.active.add(id(node))
        total = 1
        for label, child in _children(node):
            total += self.size(child, (*path, label), depth + 1)
            if total > MAX_VALUES:
                how = (
                    "expands to more than {} values through anchors and aliases (an alias bomb?)"
                    if self.aliased
                    else "holds more than {} values"
                )
                raise YamlSyntaxError(
                    how.format(MAX_VALUES) + "; a lab.yaml needs a few hundred", where, path
                )
        self.active.discard(id(node))
        self.sizes[id(node)] = total
        return total


class _Builder:
    """Builds plain data from the node tree, recording positions and duplicate keys."""

    def __init__(self, out: LoadedYaml) -> None:
        self.out = out
        self.constructor = yaml.SafeLoader("")
        self.merged: dict[int, int] = {}  # id(mapping node) -> merged pairs flatten_mapping added

    def build(self, node: yaml.Node, path: Path_) -> Any:
        plain = _PLAIN_TAGS.get(type(node))
        if plain is not None and node.tag != plain:  # `!!python/object/apply:... [..]`, `!!set`
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported tag {node.tag!r} (lab.yaml uses none)", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.out.positions[(*path, index)] = _pos(item.start_mark)
                items.append(self.build(item, (*path, index)))
            return items
        if node.tag == _BINARY_TAG:  # bytes would reach pydantic, which reads them as text
            raise yaml.constructor.ConstructorError(
                None, None, "binary values (!!binary) are not allowed in lab.yaml", node.start_mark
            )
        assert isinstance(node, yaml.ScalarNode)  # the composer makes only these three kinds
        return self._scalar(node, path)

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        _refuse_surrogates(node)
        problem = number_problem(node.tag, node.value, lambda: _fresh_value(node))
        if problem is None:
            try:
                value = self.constructor.construct_object(node, deep=True)
                problem = value_problem(node.value, value)
                if problem is None:
                    return value
            except yaml.YAMLError:
                raise  # an unknown tag: positioned by the caller
            # PyYAML's scalar constructors raise what int(), float(), datetime() or a dict
            # lookup raise (`!!int abc`, 2024-02-30, `!!bool maybe`, `!!timestamp x`)
            except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
                self.constructor.recursive_objects.pop(node, None)  # else an alias of it "recurses"
                resolved = self.constructor.resolve(  # type: ignore[no-untyped-call]  # no hints
                    yaml.ScalarNode, node.value, (True, False)
                )
                implicit = node.style is None and resolved == node.tag  # no `!!tag` written
                problem = constructor_problem(node.tag, node.value, implicit, exc)
        self.out.problems.append((path, problem))
        return node.value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if id(node) not in self.merged:  # an aliased mapping is flattened once, built again
            own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
            self.constructor.flatten_mapping(node)  # resolves `<<` merge keys like safe_load
            self.merged[id(node)] = len(node.value) - own  # merged pairs come first; own win
        merged = self.merged[id(node)]
        result: dict[str, Any] = {}
        own_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            _refuse_surrogates(key_node)
            key_text = str(key_node.value)  # as written: YAML 1.1 would read `yes:` as True
            child = (*path, key_text)
            where = _pos(key_node.start_mark)
            if index < merged:
                self.out.positions.setdefault(child, where)
            elif key_text in own_keys:
                self.out.duplicates.append((child, where))
            else:
                own_keys.add(key_text)
                self.out.positions[child] = where  # an own key overrides a merged one
            result[key_text] = self.build(value_node, child)
        return result


def _refuse_surrogates(node: yaml.ScalarNode) -> None:
    # `"\ud800"` in double quotes makes half a UTF-16 pair: no file, argv or terminal can take it
    odd = _SURROGATE.search(node.value)
    if odd is not None:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"\\u{ord(odd.group()):04x} is half of a UTF-16 surrogate pair, not a character",
            node.start_mark,
        )


def _fresh_value(node: yaml.ScalarNode) -> Any:
    # a constructor of its own: the builder's caches what it built, this one is thrown away
    return yaml.SafeLoader("").construct_object(node)
