"""labctl's side of the in-VM status agent (cloud-init/status_agent.py): keys and one signed GET.

`labctl status` reads each VM's labctl-vm-status report over the lab network with one HTTP
request: a thread and a socket per VM instead of a `multipass exec` client process plus an SSH
session in the daemon (issue 14). Every request carries a fresh nonce signed with the VM's key,
and every answer must be signed over that nonce and its body: an answer from anything but that
VM (another machine on the bridge, a replay) is refused and labctl falls back to exec. The
security consequences are in README.md ("How status reads the VMs").
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

KEY_FILE: Final = "status-agent.key"  # in the lab's state dir, 0600
REQUEST_CONTEXT: Final = b"labctl-status-request\n"
RESPONSE_CONTEXT: Final = b"labctl-status-response\n"
PATH: Final = "/v1/status"
MAX_BODY: Final = 1024 * 1024
# A VM on the local bridge answers a SYN in milliseconds; a port that drops it (ufw, an agent not
# started yet) must not cost waits.check before the exec fallback.
CONNECT_TIMEOUT: Final = 2.0


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


def lab_key(state_dir: Path, *, create: bool) -> bytes | None:
    """The lab's secret (32 random bytes), made on first use by `up`; None if there is none."""
    path = state_dir / KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        return bytes.fromhex(text) if len(text) == 64 else None
    except FileNotFoundError:
        if not create:
            return None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    # Written whole to a private temp file, then linked into place: link() fails if the key
    # exists, so concurrent launches of one lab agree on the first key and never read half of it.
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".key-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key.hex() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return lab_key(state_dir, create=False)
    finally:
        Path(tmp).unlink()
    return key


def vm_key(key: bytes, instance: str) -> bytes:
    """Each VM's own key: a VM (whose root a student has) can sign only its own answers."""
    return hmac.new(key, b"labctl-vm-key\n" + instance.encode(), hashlib.sha256).digest()


def _sign(key: bytes, context: bytes, *parts: bytes) -> str:
    return hmac.new(key, context + b"\n".join(parts), hashlib.sha256).hexdigest()


def fetch_report(target: AgentTarget, timeout: float) -> dict[str, Any]:
    """The VM's report (a JSON object), or AgentError; `timeout` bounds the wait for the answer."""
    nonce = secrets.token_hex(16)
    try:
        sock = socket.create_connection((target.address, target.port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise AgentError(f"status agent unreachable: {exc}") from None
    sock.settimeout(timeout)
    conn = http.client.HTTPConnection(target.address, target.port)
    conn.sock = sock
    try:
        conn.request(
            "GET",
            PATH,
            headers={
                "X-Labctl-Nonce": nonce,
                "X-Labctl-Auth": _sign(target.key, REQUEST_CONTEXT, nonce.encode()),
                "User-Agent": "labctl-status",
            },
        )
        response = conn.getresponse()
        body = response.read(MAX_BODY + 1)
        signature = response.getheader("X-Labctl-Auth") or ""
    except TimeoutError:
        raise AgentError(f"no answer within {timeout:.0f} s", hung=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise AgentError(f"status agent failed: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise AgentError(f"status agent answered HTTP {response.status}")
    if len(body) > MAX_BODY:
        raise AgentError("status agent answer too large")
    wanted = _sign(target.key, RESPONSE_CONTEXT, nonce.encode(), body)
    if not hmac.compare_digest(signature.encode("ascii", "replace"), wanted.encode()):
        raise AgentError("status agent answer has a wrong signature (not from this VM?)")
    try:
        report = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AgentError("status agent answer is not JSON") from None
    if not isinstance(report, dict):
        raise AgentError("status agent answer is not a JSON object")
    return report
