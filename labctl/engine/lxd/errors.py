"""Pure classification of `lxc` failures into labctl's neutral errors.

Every LXD error is `Error: <text>` on stderr with exit 1, whatever went wrong, so the text
decides. `exec` passes the remote command's own exit code through, so an exec failure is LXD's
only when its stderr is one of LXD's own texts. The texts are in docs/engines/lxd.md.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Final

from labctl.errors import (
    CommandTimeoutError,
    DaemonUnreachableError,
    EngineError,
    EngineNotFoundError,
    InstanceExistsError,
    InstanceNotFoundError,
    LaunchTimeoutError,
    SnapshotsUnsupportedError,
)

_ERROR_LINE: Final = re.compile(r"^Error: (.*)$", re.MULTILINE)
_CSI: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TAIL_LINES: Final = 10

# What LXD itself says when it could not run an exec (the remote command's own failures differ).
_OWN_EXEC_ERRORS: Final = (
    "instance not found",
    "instance is not running",
    "missing event connection",
    "unable to connect to",
    "failed to connect",
    "not authorized",
    "forbidden",
    "websocket",
    "connection refused",
    "no such file or directory",  # the local unix socket
    "the remote isn't a private lxd server",
)


class LxdError(EngineError):
    """An `lxc` failure that none of the neutral kinds describes."""


def display(argv: list[str]) -> str:
    shown = shlex.join(argv)  # for messages, never run
    return shown if len(shown) <= 100 else shown[:99] + "…"


def error_text(stderr: str) -> str:
    """LXD's message: the text after its last `Error:`, else the last non-empty line."""
    clean = _CSI.sub("", stderr)
    found = _ERROR_LINE.findall(clean)
    if found:
        return str(found[-1]).strip()
    lines = [line.strip() for line in clean.splitlines() if line.strip()]
    return lines[-1] if lines else "(no error output)"


def stderr_tail(stderr: str) -> str:
    return "\n".join(_CSI.sub("", stderr).rstrip("\n").splitlines()[-TAIL_LINES:])


def is_already(message: str, state: str) -> bool:
    """LXD refused a start/stop because the instance already is `state` (running/stopped)."""
    return f"the instance is already {state}" in message.lower()


def is_own_exec_error(returncode: int, stderr: str) -> bool:
    """Whether a failed exec is LXD's own failure (raise), not the remote command's (return)."""
    if returncode != 1 or not _ERROR_LINE.search(_CSI.sub("", stderr)):
        return False
    text = error_text(stderr).lower()
    return any(marker in text for marker in _OWN_EXEC_ERRORS)


_DAEMON_HINT: Final = (
    "Is the LXD daemon running and reachable? Locally: `lxc list` should answer (snap: "
    "`sudo snap start lxd`; Debian: start `lxd`); a remote: `lxc remote list` and its address. "
    "`labctl doctor` checks every part."
)


def classify_failure(argv: list[str], returncode: int, stderr: str) -> EngineError:
    """The most specific EngineError for a failed `lxc` call."""
    text = error_text(stderr)
    low = text.lower()
    shown = display(argv)

    def make(cls: Callable[..., EngineError], message: str, hint: str | None = None) -> EngineError:
        return cls(
            message, argv=list(argv), returncode=returncode, stderr=stderr_tail(stderr), hint=hint
        )

    if "instance not found" in low:
        return make(InstanceNotFoundError, f"`{shown}`: {text}")
    if "already exists" in low:
        return make(InstanceExistsError, f"`{shown}`: the name is taken ({text})")
    if "missing event connection" in low or "unable to connect to" in low:
        return make(
            DaemonUnreachableError,
            f"`{shown}`: a cluster member does not answer ({text})",
            "The member running this instance is down or unreachable: `lxc cluster list` says "
            "which. Its instances come back when it does.",
        )
    if (
        "connection refused" in low
        or "no such file or directory" in low
        or "failed to connect" in low
        or "unix.socket" in low
    ):
        return make(
            DaemonUnreachableError, f"`{shown}`: LXD does not answer ({text})", _DAEMON_HINT
        )
    if "not authorized" in low or ("certificate" in low and "trust" in low):
        return make(
            LxdError,
            f"`{shown}`: this client is not trusted for that ({text})",
            "The remote or project refuses this certificate: check `lxc remote list` and the "
            "project's restrictions (an admin runs `labctl access`).",
        )
    if "snapshots are forbidden" in low or ("snapshot" in low and "restricted" in low):
        return make(SnapshotsUnsupportedError, f"`{shown}`: the project forbids snapshots ({text})")
    if "image not found" in low:
        return make(
            LxdError,
            f"`{shown}`: {text}",
            "The image alias is not on this server: `lxc image list` shows what is; import or "
            "copy it there (for a cluster, any member will do).",
        )
    if "remote" in low and "doesn't exist" in low:
        return make(
            LxdError,
            f"`{shown}`: {text}",
            "Add the remote first (`lxc remote add NAME ADDRESS` or a trust token), or fix "
            "engine.remote in lab.yaml; `lxc remote list` shows the ones this user has.",
        )
    if "project not found" in low:
        return make(
            LxdError,
            f"`{shown}`: {text}",
            "Create it (`lxc project create NAME`, or `labctl access` for a class) or fix "
            "engine.project in lab.yaml.",
        )
    if "is busy running" in low:
        return make(
            LxdError,
            f"`{shown}`: {text}",
            "LXD is still creating that instance; wait a few seconds and run labctl again.",
        )
    if "requested profile" in low and "doesn't exist" in low:
        return make(
            LxdError,
            f"`{shown}`: {text}",
            "engine.profiles in lab.yaml names a profile this server (or project) does not "
            "have: `lxc profile list` shows them.",
        )
    if (
        "reached maximum number of" in low
        or "reached maximum aggregate value" in low
        or ("limit" in low and "exceed" in low)
    ):
        return make(
            LxdError,
            f"`{shown}`: the project's quota is used up ({text})",
            "Raise the project's limits (`lxc project set NAME limits.instances N`) or remove "
            "instances it no longer needs.",
        )
    if "target only allowed when clustered" in low:
        return make(LxdError, f"`{shown}`: {text}", "Only a cluster places instances on members.")
    return make(LxdError, f"`{shown}` failed (exit {returncode}): {text}")


def not_found_error(cli: str, exc: OSError) -> EngineNotFoundError:
    return EngineNotFoundError(
        f"cannot run {cli!r}: {exc.strerror or exc}",
        argv=[cli],
        hint="Install LXD (Debian: `sudo apt-get install lxd`; Ubuntu: `sudo snap install lxd`) "
        "or Incus (set `cli: incus` under engine: in lab.yaml).",
    )


def timeout_error(argv: list[str], timeout: float, output: bytes | str | None) -> EngineError:
    partial = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    if len(argv) > 1 and argv[1] == "launch":
        name = argv[3] if len(argv) > 3 else "(unnamed)"
        return LaunchTimeoutError(
            f"launching {name}: `{display(argv)}` did not answer within {timeout:.0f} s; LXD may "
            f"have left {name} behind",
            argv=argv,
            stderr=stderr_tail(partial),
            hint="`labctl down` (or `labctl reset VM --rebuild`) removes it.",
        )
    return CommandTimeoutError(
        f"`{display(argv)}` did not answer within {timeout:.0f} s",
        argv=argv,
        stderr=stderr_tail(partial),
        hint="A cluster member may be down (exec into its instances stalls); `lxc cluster list`.",
    )
