"""labctl's side of the in-VM status agent (cloud-init/status_agent.py): keys and one signed GET.

`labctl status` reads each VM's labctl-vm-status report over the lab network with one HTTP
request: a thread and a socket per VM instead of a `multipass exec` client process plus an SSH
session in the daemon. Every request carries a fresh nonce (its time and 128 random bits) signed
with the VM's key, which the agent accepts once and only within minutes of its time; every answer
must be signed over that nonce and its body: an answer from anything but that VM (another
machine on the bridge, a replay) is refused and labctl falls back to exec. The
security consequences are in docs/status-agent.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pydantic_core

from labctl.host import bounded_http
from labctl.host.state import STATE_LOCK, LabState
from labctl.safefs import UntrustedFileError

KEY_FILE: Final = "status-agent.key"  # in the lab's state dir, 0600
REQUEST_CONTEXT: Final = b"labctl-status-request\n"
RESPONSE_CONTEXT: Final = b"labctl-status-response\n"
PATH: Final = "/v1/status"
MAX_BODY: Final = 1024 * 1024
# A VM on the local bridge answers a SYN in milliseconds; a port that drops it (ufw, an agent not
# started yet) must not cost waits.check before the exec fallback.
CONNECT_TIMEOUT: Final = 2.0
# The agent says why it refused a signed-looking request (cloud-init/status_agent.py).
REFUSED_HEADER: Final = "X-Labctl-Refused"
REFUSED_REASONS: Final = {
    "signature": "wrong signature: the VM's key is not this lab's",
    "time": "the request's time is off by more than 5 minutes: is the VM's clock right?",
    "replay": "a replayed request",
    "busy": "too many requests at once",
}


class AgentError(Exception):
    """The agent gave no usable answer; `hung` = it took the request and then went silent."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hung = hung


@dataclass(frozen=True)
class AgentTarget:
    address: str
    port: int
    key: bytes


StatusAgent = Callable[[AgentTarget, float], dict[str, Any]]


def lab_key(
    state_dir: Path, *, create: bool, on_distrust: Callable[[str], None] | None = None
) -> bytes | None:
    """The lab's secret (32 random bytes), made on first use by `up`; None if there is none.

    labctl trusts only a key it made itself, told by what a planted file cannot fake: a regular
    file (not a link) in the checked state dir, owned by labctl's own user (or root, or under sudo
    the user who ran it), mode 0600, one hard link, 64 hex digits. Any other key is never used:
    with `create` it is replaced by a new one and `on_distrust` says why; without, None.
    """
    state = LabState(state_dir)
    with state.files(create=create) as files:
        if files is None:
            return None
        with files.locked(STATE_LOCK) if create else contextlib.nullcontext():
            try:
                raw = files.read(KEY_FILE, 200, secret=True)
                problem = None if raw is None else "is not 64 hex digits"
            except UntrustedFileError as exc:
                raw, problem = None, exc.reason
            key = _parse_key(raw)
            if key is not None:
                return key
            if problem is not None and on_distrust is not None:
                outcome = (
                    "made a new key (VMs launched with the old one are read by exec)"
                    if create
                    else "not used (`labctl up` replaces it)"
                )
                on_distrust(f"{files.path / KEY_FILE} {problem}: labctl did not make it; {outcome}")
            if not create:
                return None
            key = secrets.token_bytes(32)
            files.write(KEY_FILE, key.hex().encode("ascii") + b"\n", durable=True)
            return key


def _parse_key(raw: bytes | None) -> bytes | None:
    text = (raw or b"").strip()
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def vm_key(key: bytes, instance: str) -> bytes:
    """Each VM's own key: a VM (whose root a student has) can sign only its own answers."""
    return hmac.new(key, b"labctl-vm-key\n" + instance.encode(), hashlib.sha256).digest()


def _sign(key: bytes, context: bytes, *parts: bytes) -> str:
    return hmac.new(key, context + b"\n".join(parts), hashlib.sha256).hexdigest()


def request_nonce(now: float | None = None) -> str:
    """A request's nonce: its issue time (16 hex digits of Unix seconds), then 128 random bits.

    The agent accepts a nonce only within NONCE_WINDOW seconds of its time and only once, so it
    needs to remember nonces for a bounded time; the signature covers the time with the nonce.
    """
    issued = int(time.time() if now is None else now)
    return f"{issued:016x}{secrets.token_hex(16)}"


def fetch_report(target: AgentTarget, timeout: float) -> dict[str, Any]:
    """The VM's report (a JSON object), or AgentError.

    Connecting may take CONNECT_TIMEOUT seconds, then request and answer together `timeout`
    seconds, whatever the peer sends (bounded_http); at most MAX_BODY bytes of body are read.
    """
    nonce = request_nonce()
    try:
        sock = bounded_http.connect(target.address, target.port, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise AgentError(f"status agent unreachable: {exc}") from None
    headers = {
        "X-Labctl-Nonce": nonce,
        "X-Labctl-Auth": _sign(target.key, REQUEST_CONTEXT, nonce.encode()),
        "User-Agent": "labctl-status",
    }
    try:
        answer = bounded_http.exchange(
            sock, path=PATH, headers=headers, timeout=timeout, body_limit=MAX_BODY + 1
        )
    except TimeoutError:
        raise AgentError(f"no answer within {timeout:.0f} s", hung=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise AgentError(f"status agent failed: {bounded_http.describe(exc)}") from None
    if answer.status != 200:
        refused = answer.header(REFUSED_HEADER)
        why = f" ({REFUSED_REASONS.get(refused or '', 'refused')})" if refused else ""
        raise AgentError(f"status agent answered HTTP {answer.status}{why}")
    body = answer.body
    if len(body) > MAX_BODY:
        raise AgentError("status agent answer too large")
    wanted = _sign(target.key, RESPONSE_CONTEXT, nonce.encode(), body)
    signature = answer.header("X-Labctl-Auth") or ""
    if not hmac.compare_digest(signature.encode("ascii", "replace"), wanted.encode()):
        raise AgentError("status agent answer has a wrong signature (not from this VM?)")
    try:  # pydantic's parser: depth and number size bounded, where json.loads would raise
        report = pydantic_core.from_json(body)
    except ValueError as exc:
        raise AgentError(f"status agent answer is not JSON ({exc})") from None
    if not isinstance(report, dict):
        raise AgentError("status agent answer is not a JSON object")
    return report
