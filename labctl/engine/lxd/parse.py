"""Pure functions over LXD's output: `list --format json` and `query /1.0` into neutral data.

Nothing here runs a process; `adapter.py` does. Every field is read by key and checked for its
type: an LXD answer that does not fit is an EngineError that quotes a short excerpt, never a
crash. The shapes relied on are written down in docs/engines/lxd.md.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from labctl.engine.base import Instance, Snapshot, State
from labctl.engine.lxd.commands import LABEL_PREFIX
from labctl.errors import EngineError

_EXCERPT: Final = 120
_LIST_COMMAND: Final = "lxc list --format json"
_T = TypeVar("_T")
# LXD's status words -> labctl's. A frozen container resumes on `lxc start`; a word LXD adds
# later counts as changing.
_STATES: Final[dict[str, State]] = {
    "Running": State.RUNNING,
    "Stopped": State.STOPPED,
    "Frozen": State.STOPPED,
    "Error": State.BROKEN,
}


@dataclass(frozen=True)
class ServerInfo:
    """What `lxc query /1.0` says of the server labctl talks to."""

    version: str
    clustered: bool
    server_name: str
    extensions: frozenset[str]


def state_of(word: str) -> State:
    return _STATES.get(word, State.STARTING)


def _bad(command: str, problem: str, text: str) -> EngineError:
    flat = " ".join(text.split())
    shown = flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 1] + "…"
    return EngineError(
        f"unexpected output from `{command}`: {problem}; it began: {shown!r}",
        hint="The output format may have changed in this LXD version; please report it "
        "together with `lxc version`.",
    )


def parse_json(text: str, command: str) -> Any:
    """Any JSON answer (`lxc query`), or an EngineError that quotes its start."""
    return _json(text, command)


def _json(text: str, command: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _bad(command, f"not JSON ({type(exc).__name__})", text) from None


def _get(obj: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    """obj[key] checked to be a `kind`; absent or null (LXD writes null for "none") -> default."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise TypeError(f"{where}.{key} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _addresses(state: dict[str, Any] | None, where: str) -> tuple[str, ...]:
    """Global IPv4 addresses, eth0's first (the NIC the lab's profile gives every instance)."""
    network = _get(state or {}, "network", dict, {}, f"{where}.state") or {}
    found: list[tuple[int, str]] = []
    for interface, details in network.items():
        if interface == "lo" or not isinstance(details, dict):
            continue
        for entry in _get(details, "addresses", list, [], f"{where}.state.network.{interface}"):
            if not isinstance(entry, dict) or entry.get("family") != "inet":
                continue
            if entry.get("scope") != "global":
                continue
            address = entry.get("address")
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                continue
            found.append((0 if interface == "eth0" else 1, str(address)))
    return tuple(address for _, address in sorted(found, key=lambda pair: pair[0]))


def _labels(config: dict[str, Any]) -> dict[str, str]:
    return {
        key.removeprefix(LABEL_PREFIX): value
        for key, value in config.items()
        if key.startswith(LABEL_PREFIX + "labctl.") and isinstance(value, str)
    }


def _member_down(word: str, config: dict[str, Any] | None, location: str) -> str:
    """An instance on a cluster member that is down is listed `Error` with a null config (its
    member holds it); a broken instance on a live member keeps its config."""
    if word != "Error" or config is not None or location in ("none", ""):
        return ""
    return f"cluster member {location} does not answer (it is down or cut off)"


def _each_object(
    text: str, command: str, read: Callable[[dict[str, Any], str], Iterable[_T]]
) -> list[_T]:
    """What `read(item, where)` finds in each object of a JSON list (`lxc list` JSON); any
    field of the wrong type is an EngineError that names it."""
    data = _json(text, command)
    if not isinstance(data, list):
        raise _bad(command, "the top level is not a JSON list", text)
    found: list[_T] = []
    try:
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise TypeError(f"[{index}] is not an object")
            found.extend(read(item, f"[{index}]"))
    except TypeError as exc:
        raise _bad(command, str(exc), text) from None
    return found


def _instance(item: dict[str, Any], where: str) -> list[Instance]:
    name = _get(item, "name", str, "", where)
    if not name:
        raise TypeError(f"{where}.name is empty")
    word = _get(item, "status", str, "Unknown", where)
    location = _get(item, "location", str, "", where)
    raw_config = _get(item, "config", dict, None, where)
    return [
        Instance(
            name,
            state_of(word),
            word,
            _addresses(_get(item, "state", dict, None, where), where),
            "" if location in ("none", "") else location,
            _labels(raw_config or {}),
            _member_down(word, raw_config, location),
        )
    ]


def parse_list(text: str) -> list[Instance]:
    """`lxc list --format json`: every instance, with addresses, member and labels."""
    return _each_object(text, _LIST_COMMAND, _instance)


def _snapshots(item: dict[str, Any], where: str) -> list[Snapshot]:
    instance = _get(item, "name", str, "", where)
    found = []
    for n, snap in enumerate(_get(item, "snapshots", list, None, where) or []):
        if not isinstance(snap, dict):
            raise TypeError(f"{where}.snapshots[{n}] is not an object")
        name = _get(snap, "name", str, "", f"{where}.snapshots[{n}]")
        found.append(Snapshot(instance, name.rsplit("/", 1)[-1]))
    return found


def parse_snapshots(text: str) -> list[Snapshot]:
    """The snapshots in `lxc list --format json` (`snapshots` is null for none), by instance."""
    found = _each_object(text, _LIST_COMMAND, _snapshots)
    return sorted(found, key=lambda s: (s.instance, s.name))


def parse_server(text: str) -> ServerInfo:
    """`lxc query REMOTE:/1.0`: the server's version, API extensions and whether it clusters."""
    command = "lxc query /1.0"
    data = _json(text, command)
    if not isinstance(data, dict):
        raise _bad(command, "the top level is not a JSON object", text)
    try:
        environment = _get(data, "environment", dict, {}, "$") or {}
        extensions = _get(data, "api_extensions", list, [], "$")
        return ServerInfo(
            version=_get(environment, "server_version", str, "", "$.environment"),
            clustered=bool(_get(environment, "server_clustered", bool, False, "$.environment")),
            server_name=_get(environment, "server_name", str, "", "$.environment"),
            extensions=frozenset(e for e in extensions if isinstance(e, str)),
        )
    except TypeError as exc:
        raise _bad(command, str(exc), text) from None
