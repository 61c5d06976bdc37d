"""Pure functions over multipass output: JSON parsing and spinner stripping.

Nothing here runs a process; `adapter.py` is the only module that does. Everything is tested on
recorded text (tests/fixtures/multipass/), like python-vagrant's `_parse_status`. The shapes and
states relied on are written down in docs/engines/multipass.md.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Final

from labctl.engine.base import Instance, Snapshot, State
from labctl.engine.multipass.errors import MultipassError

_EXCERPT_CHARS: Final = 120

_CSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SPINNER_TAIL_RE: Final = re.compile(r"\s+[|/\\-]?$")
_LAUNCHED_RE: Final = re.compile(r"^Launched: (\S+)$", re.MULTILINE)
_VERSION_RE: Final = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)")


# Multipass's state words -> labctl's; a word not listed (a newer Multipass) counts as changing.
_STATES: Final[dict[str, State]] = {
    "Running": State.RUNNING,
    "Delayed Shutdown": State.RUNNING,  # running, with a shutdown scheduled
    "Starting": State.STARTING,
    "Restarting": State.STARTING,
    "Suspending": State.STARTING,
    "Stopped": State.STOPPED,
    "Suspended": State.STOPPED,  # `start` resumes it
    "Deleted": State.DELETED,  # until purged, `recover` brings it back
    "Unknown": State.BROKEN,  # e.g. after a launch whose SSH never came up
    "Unavailable": State.BROKEN,  # 1.17's zones: its zone is switched off
}


def state_of(word: str) -> State:
    """labctl's state for one of Multipass's state words."""
    return _STATES.get(word, State.STARTING)


@dataclass(frozen=True)
class VersionInfo:
    """Client and daemon versions; daemon is None when multipassd did not answer."""

    client: str
    daemon: str | None

    def daemon_tuple(self) -> tuple[int, int, int] | None:
        """The daemon version as (major, minor, patch); None if unknown or unparseable."""
        return _version_tuple(self.daemon)

    def client_tuple(self) -> tuple[int, int, int] | None:
        """The client version as (major, minor, patch); None if unparseable."""
        return _version_tuple(self.client)


def _version_tuple(text: str | None) -> tuple[int, int, int] | None:
    # "1.16.3", "1.16.3+mac", "1.16.3+win", "1.17.0-dev.123+gabcdef12"
    match = _VERSION_RE.match(text or "")
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


# --- JSON ------------------------------------------------------------------------------------


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"


def _bad_output(command: str, problem: str, text: str) -> MultipassError:
    return MultipassError(
        f"unexpected output from `{command}`: {problem}; it began: {_excerpt(text)!r}",
        argv=shlex.split(command),
        hint="The output format may have changed in this Multipass version; "
        "please report it together with `multipass version`.",
    )


def _load_object(text: str, command: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_output(command, f"not JSON ({exc.msg})", text) from None
    if not isinstance(data, dict):
        raise _bad_output(command, "the top level is not a JSON object", text)
    return data


def _field(obj: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    # By key and type, never by position or text: 1.17-dev reorders keys and adds `zone`.
    value = obj.get(key, default)
    if not isinstance(value, kind):
        raise TypeError(f"{where}.{key} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _str_list(value: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(item, str) for item in value):
        raise TypeError(f"{where} holds a non-string")
    return tuple(value)


def parse_list(text: str) -> list[Instance]:
    """Parse `multipass list --format json`; keeps the (arbitrary) order; Deleted included."""
    command = "multipass list --format json"
    data = _load_object(text, command)
    try:
        items = _field(data, "list", list, None, "$")
        instances = []
        for i, item in enumerate(items):
            where = f"list[{i}]"
            if not isinstance(item, dict):
                raise TypeError(f"{where} is not an object")
            name = _field(item, "name", str, None, where)
            if not name:
                raise TypeError(f"{where}.name is empty")
            ipv4 = _str_list(_field(item, "ipv4", list, [], where), f"{where}.ipv4")
            word = _field(item, "state", str, "Unknown", where)
            _field(item, "release", str, "", where)  # type-checked: a wrong type means a new format
            instances.append(Instance(name=name, state=state_of(word), shown_state=word, ipv4=ipv4))
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return instances


def parse_info(text: str) -> dict[str, dict[str, Any]]:
    """Parse `multipass info --format json`: instance name -> its object, as printed."""
    command = "multipass info --format json"
    data = _load_object(text, command)
    try:
        info = _field(data, "info", dict, None, "$")
        for name, value in info.items():
            if not isinstance(value, dict):
                raise TypeError(f"info.{name} is not an object")
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return dict(info)


def parse_version(text: str) -> VersionInfo:
    """Parse `multipass version --format json`; `multipassd` is absent when the daemon is down."""
    command = "multipass version --format json"
    data = _load_object(text, command)
    try:
        client = _field(data, "multipass", str, None, "$")
        daemon = _field(data, "multipassd", str, "", "$")
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return VersionInfo(client=client, daemon=daemon or None)


def parse_snapshots(text: str) -> list[Snapshot]:
    """Parse `multipass list --snapshots --format json`, sorted by instance then name."""
    command = "multipass list --snapshots --format json"
    data = _load_object(text, command)
    snapshots = []
    try:
        info = _field(data, "info", dict, {}, "$")
        for instance, snaps in info.items():
            if not isinstance(snaps, dict):
                raise TypeError(f"info.{instance} is not an object")
            for name, snap in snaps.items():
                where = f"info.{instance}.{name}"
                if not isinstance(snap, dict):
                    raise TypeError(f"{where} is not an object")
                _field(snap, "parent", str, "", where)  # type-checked like the rest
                snapshots.append(
                    Snapshot(instance, name, comment=_field(snap, "comment", str, "", where))
                )
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return sorted(snapshots, key=lambda s: (s.instance, s.name))


# --- launch stdout ---------------------------------------------------------------------------


def strip_spinner(text: str) -> str:
    """Remove the spinner noise that multipass draws on stdout even without a TTY."""
    # Each clear-line escape starts a fresh message, so treat escapes (and CR) as line breaks.
    text = _CSI_RE.sub("\n", text).replace("\r", "\n")
    lines = []
    for raw in text.split("\n"):
        chars: list[str] = []
        for char in raw:
            if char == "\b":
                if chars:
                    chars.pop()
            else:
                chars.append(char)
        # What is left of "message  \b|\b/...\b " is "message" plus a space or a frame.
        line = _SPINNER_TAIL_RE.sub("", "".join(chars)).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def launched_name(stdout: str) -> str | None:
    """The name in the `Launched: <name>` line of launch's stdout (spinner allowed), else None."""
    match = _LAUNCHED_RE.search(strip_spinner(stdout))
    return match[1] if match else None
