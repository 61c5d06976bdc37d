"""A student's own LXD project, and the student's restricted access to it.

`prepare` makes the project `up` needs for a class with `{student}` in engine.project:
restricted, using the server's images (`features.images=false`), with profiles of its own (LXD
refuses a restricted project without them) whose `default` gets the root disk and the NIC of the
lab's profiles in the default project. On LXD 5.0.2 a restricted project blocks snapshots and
non-managed NICs (the bridged or macvlan NIC a classroom LAN needs) unless allowed, so both are.
Cluster targeting stays blocked for students; labctl, a server admin, is exempt.

`grant` asks for a join token for a client restricted to that project, under a trust name that
`revoke` finds again, through LXD's REST API (`lxc query`), so it works on any remote: on LXD 5.0
`config trust add` and `revoke-token` reach the local daemon only. The token is a secret: it is
returned to the caller only, never logged or quoted in an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Final, Protocol
from urllib.parse import quote

from labctl.engine.base import AccessGrant
from labctl.engine.lxd import server as setup
from labctl.engine.lxd.commands import LxdTarget
from labctl.engine.lxd.errors import LxdError


class _Output(Protocol):
    stdout: str


class LxdEngine(Protocol):
    """What these helpers use of the adapter (adapter.LxdEngine), without importing it."""

    target: LxdTarget

    def query(self, path: str, *, in_project: bool = False) -> Any: ...

    def run_cli(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float, check: bool = True
    ) -> _Output: ...

    def project_create_argv(self, config: Sequence[tuple[str, str]]) -> list[str]: ...

    def profile_device_add_argv(
        self, profile: str, device: str, kind: str, settings: Sequence[tuple[str, str]]
    ) -> list[str]: ...

    def query_argv(self, path: str, *, in_project: bool = False) -> list[str]: ...

    def token_request_argv(self, trust_name: str) -> list[str]: ...

    def operation_delete_argv(self, operation: str) -> list[str]: ...

    def trust_list_argv(self) -> list[str]: ...

    def trust_remove_argv(self, fingerprint: str) -> list[str]: ...


PROJECT_CONFIG: Final = (
    ("features.images", "false"),  # the server's images (the lab's image) are usable in it
    ("features.profiles", "true"),  # a restricted project must have profiles of its own
    ("restricted", "true"),
    ("restricted.snapshots", "allow"),  # labctl's baseline and `snapshot` need them
    ("restricted.devices.nic", "allow"),  # a bridged/macvlan NIC on the classroom LAN
)
PROFILE: Final = "default"  # the student project's profile every instance gets
ADDRESS_KEYS: Final = ("core.https_address", "cluster.https_address")
ZERO_TIME: Final = "0001-01-01T00:00:00Z"  # a token without expiry (Go's zero time), as LXD 5.0


def _missing(exc: LxdError, what: str) -> bool:
    return f"{what} not found" in exc.message.lower()


def project_exists(engine: LxdEngine) -> bool:
    try:
        engine.query(f"/1.0/projects/{quote(engine.target.project)}")
    except LxdError as exc:
        if _missing(exc, "project"):
            return False
        raise
    return True


def source_devices(engine: LxdEngine) -> dict[str, dict[str, Any]]:
    """The root disk and first NIC that the lab's profiles give in the default project."""
    profiles = [
        engine.query(f"/1.0/profiles/{quote(name)}?project=default")
        for name in engine.target.source_profiles
    ]
    devices = setup.profile_devices(profiles)
    wanted: dict[str, dict[str, Any]] = {}
    kinds: set[str] = set()
    for name in sorted(devices):
        device = devices[name]
        kind = "root" if device.get("type") == "disk" and device.get("path") == "/" else ""
        kind = "nic" if device.get("type") == "nic" else kind
        if kind and kind not in kinds:
            kinds.add(kind)
            wanted[name] = device
    return wanted


def prepare_argvs(engine: LxdEngine) -> list[list[str]]:
    """The command lines that make the student's project ready ([] when it is): create it if
    missing, then add the root disk and NIC its default profile lacks (a run cut short after
    the create is finished by the next one)."""
    if not engine.target.own_project:
        return []
    argvs: list[list[str]] = []
    have: dict[str, dict[str, Any]] = {}
    if project_exists(engine):
        have = setup.profile_devices([engine.query(f"/1.0/profiles/{PROFILE}", in_project=True)])
    else:
        argvs.append(engine.project_create_argv(PROJECT_CONFIG))
    has_root = setup.root_pool(have) != ""
    has_nic = setup.nic_of(have)[0] != ""
    for name, device in source_devices(engine).items():
        kind = str(device.get("type"))
        if (kind == "disk" and has_root) or (kind == "nic" and has_nic):
            continue
        settings = sorted((k, str(v)) for k, v in device.items() if k != "type")
        argvs.append(engine.profile_device_add_argv(PROFILE, name, kind, settings))
    return argvs


def describe(engine: LxdEngine, argvs: list[list[str]]) -> str | None:
    if not argvs:
        return None
    created = any(argv[1:3] == ["project", "create"] for argv in argvs)
    what = "created" if created else "completed"
    return (
        f"{what} project {engine.target.project} (restricted, its own default profile with the "
        "lab's root disk and NIC)"
    )


def server_addresses(engine: LxdEngine) -> list[str]:
    """Where clients reach the server over the network ([]: it listens on its socket only)."""
    document = engine.query("/1.0")
    config = document.get("config") if isinstance(document, dict) else None
    config = config if isinstance(config, dict) else {}
    return [str(config[key]) for key in ADDRESS_KEYS if config.get(key)]


def grant(engine: LxdEngine, name: str, *, timeout: float) -> AccessGrant:
    """A new restricted join token for the lab's project, named `name`, on the lab's remote;
    older unused tokens of that name are revoked first (only the newest one works)."""
    _revoke_tokens(engine, name, timeout=timeout)
    argv = engine.token_request_argv(name)
    answer = engine.run_cli(argv, timeout=timeout).stdout
    return AccessGrant(name, engine.target.project, join_token(answer, name, argv))


def join_token(answer: str, name: str, argv: list[str]) -> str:
    """The token `lxc config trust add` would print, from the token operation LXD answered:
    base64 of the JSON LXD's client encodes (its fields in this order, no spaces; verified
    against LXD 5.0.2's own tokens). The answer holds the secret: it is never quoted."""
    metadata = setup.as_dict(setup.as_dict(_json_or_none(answer)).get("metadata"))
    secret, fingerprint = metadata.get("secret"), metadata.get("fingerprint")
    addresses = metadata.get("addresses")
    if not (
        isinstance(secret, str)
        and secret
        and isinstance(fingerprint, str)
        and isinstance(addresses, list)
        and all(isinstance(a, str) for a in addresses)
    ):
        raise LxdError("LXD's answer to the token request holds no token", argv=argv)
    body = {
        "client_name": name,
        "fingerprint": fingerprint,
        "addresses": addresses,
        "secret": secret,
        "expires_at": str(metadata.get("expiresAt") or ZERO_TIME),
    }
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def revoke(engine: LxdEngine, name: str, *, timeout: float) -> int:
    """Remove the trusted clients and pending tokens named `name`; how many were removed."""
    removed = _revoke_tokens(engine, name, timeout=timeout)
    listed = engine.run_cli(engine.trust_list_argv(), timeout=timeout).stdout
    for entry in _json_list(listed):
        if entry.get("name") == name and isinstance(entry.get("fingerprint"), str):
            engine.run_cli(engine.trust_remove_argv(entry["fingerprint"]), timeout=timeout)
            removed += 1
    return removed


def _revoke_tokens(engine: LxdEngine, name: str, *, timeout: float) -> int:
    """Cancel the pending token operations of `name` (REST, so on any remote). Their listing
    holds the secrets: it is read here and never quoted."""
    argv = engine.query_argv("/1.0/operations?recursion=1")
    groups = setup.as_dict(_json_or_none(engine.run_cli(argv, timeout=timeout).stdout))
    pending = [
        str(op["id"])
        for op in groups.get("running") or []
        if isinstance(op, dict)
        and op.get("class") == "token"
        and isinstance(op.get("id"), str)
        and setup.as_dict(setup.as_dict(op.get("metadata")).get("request")).get("name") == name
    ]
    for operation in pending:
        engine.run_cli(engine.operation_delete_argv(operation), timeout=timeout)
    return len(pending)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        return None


def _json_list(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, list):
        raise LxdError(
            f"`lxc config trust` listed something that is not a JSON list: {text[:80]!r}"
        )
    return [e for e in data if isinstance(e, dict)]
