"""Load and validate lab.yaml: the one place YAML is read. Every problem is reported at once.

Each problem is one line `lab.yaml:LINE:COL: field.path: message` (copier's `loc: msg`, molecule's
path-qualified schema errors), and any problem means nothing is launched (exit 2).
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from labctl.config.browser import check_browser
from labctl.config.checks import check_checks
from labctl.config.classroom import check_class
from labctl.config.engine import check_engine
from labctl.config.files import FileRefusedError, read_owned
from labctl.config.sources import source_dir_problem, start_path_problem
from labctl.config.values import check_values
from labctl.config.yamlpos import LoadedYaml, Path_, YamlSyntaxError, load_yaml_with_positions
from labctl.errors import ConfigError
from labctl.model import STAGES, App, AppSource, AppStart, Lab, LoadBalancer, Vm
from labctl.scalars import MAX_INSTANCE_NAME, NAME_RE

# The biggest real lab.yaml is a few KiB. PyYAML parses ~200 KB/s of dense YAML, so this cap also
# bounds how long a hostile file can keep `validate` busy (about a second).
MAX_FILE_BYTES: Final = 256 * 1024
MAX_MESSAGE: Final = 300  # characters of one problem's message (values are quoted in them)
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class LabFile:
    """A validated lab and where it came from."""

    lab: Lab
    path: Path
    digest: str  # sha256 of the file text: snapshots record it to warn when lab.yaml changed
    loaded: LoadedYaml | None = None  # positions, so later checks (ops/validation.py) name the line
    shown: str = ""  # the path as the user gave it, as in load_lab's own messages

    def problem(self, path: Path_, message: str) -> str:
        """One `FILE:LINE:COL: field: message` line for a field of this file."""
        shown = self.shown or str(self.path)
        if self.loaded is None:
            return f"{shown}: {dotted(path) or '(top level)'}: {message}"
        return _line(shown, self.loaded, path, message)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def with_stage(self, stage: str | None) -> LabFile:
        """The same lab at another course stage (`--stage` on up/reset); None keeps lab.yaml's."""
        if stage is None or stage == self.lab.stage:
            return self
        if stage not in STAGES:
            raise ConfigError([f"--stage {stage}: not a stage (stages: {', '.join(STAGES)})"])
        return replace(self, lab=self.lab.model_copy(update={"stage": stage}))

    def app_source_dir(self) -> Path | None:
        """Absolute directory of a `source.path` app, relative paths being relative to lab.yaml."""
        raw = self.lab.app.source.path
        return None if raw is None else (self.base_dir / raw).resolve()


def load_lab(path: Path) -> LabFile:
    """Read, parse and validate a lab file; raise ConfigError listing every problem."""
    shown = str(path)
    try:
        raw, owner = read_owned(
            path,
            MAX_FILE_BYTES,
            what="a lab.yaml file",
            too_big=f"a lab.yaml over {MAX_FILE_BYTES // 1024} KiB is not a lab (real ones are a "
            "few KiB)",
        )
    except FileRefusedError as exc:
        hint = " (use -f PATH to point at your lab.yaml)" if exc.missing else ""
        raise ConfigError([f"{shown}: {exc.message}{hint}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{shown}: not UTF-8 text (byte {exc.start}); is this a binary file?"]
        ) from None
    lab, loaded = _parse(text, shown, base_dir=path.parent, named_by=owner)
    return LabFile(lab, path.resolve(), hashlib.sha256(raw).hexdigest(), loaded, shown)


def parse_lab(text: str, shown: str = "lab.yaml", *, base_dir: Path | None = None) -> Lab:
    """Validate lab text. `base_dir` resolves `app.source.path` (checked only when given)."""
    return _parse(text, shown, base_dir=base_dir)[0]


def _parse(
    text: str, shown: str, *, base_dir: Path | None, named_by: int | None = None
) -> tuple[Lab, LoadedYaml]:
    # named_by: lab.yaml's owner; a roster it names must be a file that user could read
    if "\x00" in text:
        raise ConfigError([f"{shown}: contains NUL bytes; is this a binary file?"])
    try:
        loaded = load_yaml_with_positions(text)
    except YamlSyntaxError as exc:
        where = f"{shown}:{exc.position.line}:{exc.position.column}" if exc.position else shown
        field = f"{dotted(exc.path)}: " if exc.path else ""
        raise ConfigError([f"{where}: {field}{exc.message}"]) from None
    if loaded.data is None:
        raise ConfigError([f"{shown}: file is empty; see examples/ for a lab.yaml to start from"])
    if not isinstance(loaded.data, dict):
        start = loaded.positions[()]
        raise ConfigError(
            [
                f"{shown}:{start.line}:{start.column}: expected a mapping of settings "
                "(name:, domain:, vms:...)"
            ]
        )

    problems = [
        f"{shown}:{pos.line}:{pos.column}: {dotted(path)}: duplicate key (each key may appear once)"
        for path, pos in loaded.duplicates
    ]
    # A scalar refused as written (`port: 03000`, `!!int abc`) is its field's only problem: the
    # field holds the text, so pydantic's "expected a whole number" would only repeat it.
    refused = [(p, m) for p, m in loaded.problems if not str(p[0]).startswith("x-")]
    problems += [_line(shown, loaded, path, message) for path, message in refused]
    try:
        lab = Lab.model_validate(without_extensions(loaded.data))
    except ValidationError as exc:
        errors = [(_loc(err), err) for err in exc.errors()]
        problems += [
            _from_pydantic(shown, loaded, loc, err)
            for loc, err in errors
            if not any(loc[: len(path)] == path for path, _ in refused)
        ]
        raise ConfigError(sorted(set(problems), key=_sort_key)) from None
    if refused:  # the rules between fields need every value as written
        raise ConfigError(sorted(set(problems), key=_sort_key))
    problems += [
        _line(shown, loaded, _written(loaded, path), message)
        for path, message in cross_check(lab, base_dir)
    ]
    if lab.is_class or lab.hosts:
        lab, more = check_class(
            lab,
            shown,
            base_dir if base_dir is not None else Path(shown).parent,
            lambda path, message: _line(shown, loaded, path, message),
            named_by=named_by,
        )
        problems += more
    if problems:
        raise ConfigError(sorted(set(problems), key=_sort_key))
    return lab, loaded


# A rule between two fields names the one the user wrote when the other is a default ("port 80 is
# also the LB's port" belongs at lb.port when app.port was never written).
_OTHER_SIDE: Final[dict[Path_, Path_]] = {
    ("app", "port"): ("lb", "port"),
    ("lb", "read_timeout"): ("lb", "connect_timeout"),
}


def _written(loaded: LoadedYaml, path: Path_) -> Path_:
    other = _OTHER_SIDE.get(path)
    if path in loaded.positions or other is None or other not in loaded.positions:
        return path
    return other


def without_extensions(data: dict[str, Any]) -> dict[str, Any]:
    """Top-level `x-*` keys are for YAML anchors (as in compose files); labctl ignores them."""
    return {key: value for key, value in data.items() if not str(key).startswith("x-")}


def cross_check(lab: Lab, base_dir: Path | None) -> list[tuple[Path_, str]]:
    """Rules that relate several fields. Returns (path, message) pairs."""
    found: list[tuple[Path_, str]] = []
    lbs = [i for i, vm in enumerate(lab.vms) if "lb" in vm.roles]
    if not lbs:
        found.append((("vms",), "no VM has role lb: exactly one VM must run the load balancer"))
    for i in lbs[1:]:
        found.append(
            (
                ("vms", i, "roles"),
                f"a second lb VM; {lab.vms[lbs[0]].name!r} already has role lb (exactly one allowed)",
            )
        )
    if not lab.app_vms:
        found.append((("vms",), "no VM has role app: at least one VM must run the app"))
    seen: dict[str, int] = {}
    for i, vm in enumerate(lab.vms):
        key = vm.name.lower()  # instance names are hostnames: case does not tell them apart
        if key in seen:
            other = lab.vms[seen[key]].name
            same = "" if other == vm.name else f" {other!r}; names are compared ignoring case"
            found.append(
                (("vms", i, "name"), f"duplicate VM name {vm.name!r} (also vms[{seen[key]}]{same})")
            )
        seen.setdefault(key, i)
        if len(set(vm.roles)) != len(vm.roles):
            found.append((("vms", i, "roles"), "a role is listed twice"))
        instance = lab.instance_name(vm)
        if len(instance) > MAX_INSTANCE_NAME or not NAME_RE.fullmatch(instance):
            found.append(
                (
                    ("vms", i, "name"),
                    f"instance name {instance!r} (<lab>-<vm>) is longer than {MAX_INSTANCE_NAME} characters",
                )
            )
        if set(vm.roles) == {"app", "lb"} and lab.app.port == lab.lb.port:
            found.append(
                (
                    ("app", "port"),
                    f"port {lab.app.port} is both app.port and lb.port on {vm.name!r} (it runs the "
                    "app and the load balancer); use another app port",
                )
            )
    names = [lab.domain, *lab.aliases]
    for i, alias in enumerate(lab.aliases):
        if names.count(alias) > 1:
            found.append(
                (("aliases", i), f"{alias!r} is listed twice (domain and aliases must differ)")
            )
    found += [(("app", *p), m) for p, m in _check_app(lab.app, base_dir)]
    found += [(("lb", *p), m) for p, m in _check_lb(lab.lb)]
    found += check_values(lab, base_dir)
    found += check_engine(lab)
    found += check_checks(lab)
    found += check_browser(lab)
    return found


def _check_app(app: App, base_dir: Path | None) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    src: AppSource = app.source
    kinds = [k for k in ("builtin", "git", "path") if getattr(src, k) is not None]
    if len(kinds) != 1:
        found.append(
            (
                ("source",),
                "give exactly one of builtin, git or path"
                + (f" (got {', '.join(kinds)})" if kinds else ""),
            )
        )
    if src.ref is not None and src.git is None:
        found.append((("source", "ref"), "ref only applies to a git source"))
    problem = None if src.path is None else source_dir_problem(base_dir, src.path)
    if problem is not None:
        found.append((("source", "path"), problem))
    start: AppStart | None = app.start
    if start is None and src.builtin is None:
        found.append(
            (
                ("start",),
                "required for a git or path app: say serve: DIR, script: FILE or command: CMD",
            )
        )
    elif start is not None:
        modes = [k for k in ("serve", "script", "command") if getattr(start, k) is not None]
        if len(modes) != 1:
            found.append((("start",), "give exactly one of serve, script or command"))
        for key in ("serve", "script"):
            value = getattr(start, key)
            problem = None if value is None else start_path_problem(key, value)
            if problem:
                found.append((("start", key), problem))
    for i, name in enumerate(app.secret_env):
        if name not in app.env:
            found.append((("secret_env", i), f"{name!r} is not a key of app.env"))
    return found


def _check_lb(lb: LoadBalancer) -> list[tuple[Path_, str]]:
    if lb.read_timeout < lb.connect_timeout:
        return [
            (
                ("read_timeout",),
                f"read_timeout ({lb.read_timeout:g} s) should not be shorter than connect_timeout "
                f"({lb.connect_timeout:g} s)",
            )
        ]
    return []


def _loc(err: Any) -> Path_:
    return tuple(part for part in err["loc"] if not _is_union_tag(part))


def _from_pydantic(shown: str, loaded: LoadedYaml, loc: Path_, err: Any) -> str:
    kind, message = err["type"], err["msg"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        message = f"unknown key {key!r}" + _suggest(key, _allowed_keys(loc[:-1]))
    elif kind == "missing":
        message = "required"
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
        if not isinstance(value, str):  # the validators quote with repr(): None, b'..', date(..)
            message = message.replace(repr(value), describe(value), 1)
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {describe(value)}"
    elif "input" in err and not isinstance(value, dict | list):
        message = f"{message}, got {describe(value)}"
    return _line(shown, loaded, loc, message)


# pydantic's wording names Python types ("a valid dictionary or instance of VmDefaults"); say it in
# YAML's words instead.
_EXPECTED: Final = {
    "model_type": "a mapping (indented key: value lines)",
    "model_attributes_type": "a mapping (indented key: value lines)",
    "dict_type": "a mapping (indented key: value lines)",
    "list_type": "a list (- item lines or [a, b])",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def describe(value: Any) -> str:
    """A value as the YAML user wrote it, never a Python repr (`None`, `b'..'`, `datetime.date`)."""
    if value is None:
        return "an empty value (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return f"binary data ({len(value)} bytes from !!binary)"
    if isinstance(value, datetime.date):
        return f"{value.isoformat()} (YAML reads it as a date; quote it to mean text)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _is_union_tag(part: Any) -> bool:
    # pydantic adds a member tag (e.g. "str", "function-before[...]") to union error paths
    return isinstance(part, str) and (
        "[" in part or part in {"str", "int", "float", "bool", "none"}
    )


def _allowed_keys(loc: Path_) -> list[str]:
    model: type[BaseModel] | None = Lab
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if str(part) in (n, f.alias)), None)
        model = _model_of(field.annotation) if field else None
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    if annotation is list[Vm]:
        return Vm
    return None


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (allowed: {', '.join(allowed)})" if allowed else ""


def _line(shown: str, loaded: LoadedYaml, path: Path_, message: str) -> str:
    pos = loaded.position_of(path)
    where = f"{shown}:{pos.line}:{pos.column}" if pos else shown
    if len(message) > MAX_MESSAGE:  # a huge value must not come back as a huge error line
        message = f"{message[: MAX_MESSAGE - 30]}… ({len(message)} characters)"
    return f"{where}: {dotted(path) or '(top level)'}: {message}"


def dotted(path: Path_) -> str:
    """`('vms', 1, 'name')` -> `vms[1].name`; odd keys quoted: `app.env["A B\\n"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            shown = part if len(part) <= 40 else part[:40] + "…"
            text += f"[{json.dumps(shown)}]"  # one line, whatever the key holds
        else:
            text += f".{part}" if text else part
    return text


def _sort_key(line: str) -> tuple[int, int, str]:
    parts = line.split(":", 3)
    try:
        return int(parts[1]), int(parts[2]), line
    except (IndexError, ValueError):
        return 0, 0, line


def json_schema() -> str:
    """JSON Schema (draft 2020-12) of lab.yaml, for editors."""
    schema = Lab.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl lab.yaml"
    return json.dumps(schema, indent=2, sort_keys=True)
