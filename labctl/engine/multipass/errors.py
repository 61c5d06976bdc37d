"""Pure classification of multipass failures: exit code + stderr -> the most specific EngineError.

Nothing here runs a process; `adapter.py` is the only module that does. Tested on the recorded
stderr texts in tests/fixtures/multipass/stderr/. The Multipass behaviour relied on (exit codes,
error texts) is written down in docs/engines/multipass.md.
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

STDERR_TAIL_LINES: Final = 10
_LOG_LINE_RE: Final = re.compile(r"^\[[^\]]*\] \[(\w+)\] \[[^\]]*\] (.*)$")
_FAILED_PREFIX_RE: Final = re.compile(r"^[a-z][\w-]* failed: ")
_MISSING_RE: Final = re.compile(r"""instance ["']([^"']+)["'] does not exist""", re.IGNORECASE)
_OWN_EXEC_ERROR_RE: Final = re.compile(r"^(exec|info) failed: ", re.MULTILINE)
_CSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class MultipassError(EngineError):
    """A multipass failure that none of the neutral kinds (labctl.errors) describes."""


def _meaningful_lines(stderr: str) -> list[str]:
    lines = []
    for raw in _CSI_RE.sub("", stderr).splitlines():
        line = raw.strip()
        if not line or line.startswith("***"):  # e.g. the blueprint deprecation banner
            continue
        logged = _LOG_LINE_RE.match(line)
        if logged:  # "[ts] [level] [category] message": keep errors only
            if logged[1] not in ("error", "critical"):
                continue
            line = logged[2].removeprefix("Caught an unhandled exception: ")
        lines.append(line)
    return lines


def summarize_stderr(stderr: str) -> str:
    """The first meaningful stderr line, joined with the detail lines it introduces."""
    lines = _meaningful_lines(stderr)
    if not lines:
        return "(no error output)"
    head = _FAILED_PREFIX_RE.sub("", lines[0])
    rest = lines[1:]
    if head == "The following errors occurred:" and rest:  # daemon.cpp multi-error wrapper
        shown = "; ".join(rest[:3]) + ("; …" if len(rest) > 3 else "")
        return shown
    if head in ("instance(s) missing", "Invalid arguments supplied") and rest:
        return f"{head}: {rest[0]}"
    return head


def stderr_tail(stderr: str) -> str:
    """The last STDERR_TAIL_LINES lines of stderr, without ANSI escapes."""
    return "\n".join(_CSI_RE.sub("", stderr).rstrip("\n").splitlines()[-STDERR_TAIL_LINES:])


def missing_instances(stderr: str) -> list[str]:
    """Names that a `does not exist` error mentions, in both quoting styles."""
    return _MISSING_RE.findall(stderr)


def is_own_exec_error(stderr: str) -> bool:
    """Whether exec's stderr is multipass's own error, not the remote command's."""
    return _OWN_EXEC_ERROR_RE.search(_CSI_RE.sub("", stderr)) is not None


def subcommand(argv: list[str]) -> str:
    """The multipass subcommand in argv (the first non-option after the executable)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), "")


def display(argv: list[str]) -> str:
    """argv as a shell-quoted `multipass ...` line for messages, shortened if long."""
    shown = f"multipass {shlex.join(argv[1:])}".rstrip()  # for messages, never run
    return shown if len(shown) <= 100 else shown[:99] + "…"


def _option(argv: list[str], flag: str) -> str | None:
    try:
        return argv[argv.index(flag) + 1]
    except (ValueError, IndexError):
        return None


_DAEMON_HINT: Final = (
    "Is multipassd running? Linux: `sudo snap restart multipass` (socket "
    "/var/snap/multipass/common/multipass_socket); macOS: `sudo launchctl kickstart -k "
    "system/com.canonical.multipassd`; Windows: restart the Multipass service. Right after a "
    "reboot the daemon can take a minute to come up (multipass #2610). "
    "A remote daemon is chosen with MULTIPASS_SERVER_ADDRESS."
)
_ACCESS_HINT: Final = (
    "This user may not use the Multipass socket: run `multipass authenticate` (if a passphrase is "
    "set) or use an account in the admin/sudo group."
)
_WEDGED_HINT: Final = (
    "If `multipass list` hangs too, multipassd is wedged (multipass #5080): restart it "
    "(Linux: `sudo snap restart multipass`) and purge any half-built instance with "
    "`multipass delete --purge NAME`."
)


def classify_failure(argv: list[str], returncode: int, stderr: str) -> EngineError:
    """The most specific EngineError for a failed call: by exit code, then stderr."""
    command = subcommand(argv)
    shown = display(argv)
    summary = summarize_stderr(stderr)
    low = stderr.lower()

    def make(cls: Callable[..., EngineError], message: str, hint: str | None = None) -> EngineError:
        return cls(
            message, argv=list(argv), returncode=returncode, stderr=stderr_tail(stderr), hint=hint
        )

    # An unreachable daemon is exit 2 (gRPC NOT_FOUND), whatever the command.
    if "socket access denied" in low:
        return make(DaemonUnreachableError, f"`{shown}`: {summary}", _ACCESS_HINT)
    if "cannot connect to the multipass socket" in low:
        return make(
            DaemonUnreachableError,
            f"`{shown}`: cannot connect to the Multipass daemon",
            _DAEMON_HINT,
        )

    if command == "launch":
        name = _option(argv, "--name") or "(unnamed)"
        timed_out = returncode == 5 or (
            returncode == 2
            and (
                "timed out waiting for initialization to complete" in low
                or "timed out waiting for response" in low
            )
        )
        if timed_out:
            return _launch_timeout(make, name, returncode, low, _option(argv, "--timeout"))

    if returncode == 5:  # the client's own --timeout timer, e.g. start
        return make(
            MultipassError,
            f"`{shown}` timed out: {summary}",
            "The instance may still be booting; check `multipass info NAME`. " + _WEDGED_HINT,
        )
    if "already exists" in low or "is being prepared" in low:
        if command == "snapshot":
            return make(MultipassError, f"`{shown}`: {summary}", "Pick another snapshot name.")
        return make(
            InstanceExistsError,
            f"`{shown}`: the instance name is taken ({summary})",
            "A Deleted instance still holds its name until purged: "
            "`multipass delete --purge NAME`, or choose another name.",
        )
    if missing_instances(stderr):  # not "Mount source path ... does not exist"
        return make(InstanceNotFoundError, f"`{shown}`: {summary}")
    if "is deleted" in low:
        return make(
            MultipassError,
            f"`{shown}`: {summary}",
            "Bring it back with `multipass recover NAME`, or remove it for good with "
            "`multipass delete --purge NAME`.",
        )
    if (
        "can only take snapshots of stopped" in low
        or "can only restore snapshots of stopped" in low
    ):
        return make(MultipassError, f"`{shown}`: {summary}", "Stop the instance first.")
    if "not implemented on this backend" in low:
        return make(
            SnapshotsUnsupportedError,
            f"`{shown}`: this Multipass driver cannot take snapshots ({summary})",
            "Snapshots need the qemu, hyperv or virtualbox driver (`multipass get local.driver`), "
            "and Multipass >= 1.13.",
        )
    if "unknown or unreachable" in low:  # #3680: image info not fetched yet
        return make(
            MultipassError,
            f"`{shown}`: {summary}",
            "The daemon may still be starting or the host may be offline; wait a minute and retry.",
        )
    if "unable to find an image matching" in low:
        return make(MultipassError, f"`{shown}`: {summary}", "List images with `multipass find`.")
    if (
        "cloud-init config" in low or "cloud-init configuration" in low
    ):  # (older Multipass: "error loading cloud-init config")
        return make(
            MultipassError,
            f"multipass could not load the cloud-init user-data: {summary}",
            "It must be a cloud-config YAML mapping; shell scripts and MIME multipart are not "
            "supported (multipass #2047).",
        )
    if "unknown command or alias" in low:  # printed on stdout, exit 1
        return make(
            MultipassError,
            f"this Multipass does not know `{command}`: {summary}",
            "labctl needs Multipass >= 1.12 (>= 1.13 for snapshots); check `multipass version`.",
        )
    if returncode == 1:
        if "is not a valid memory size" in low or "caught an unhandled exception" not in low:
            return make(
                MultipassError,
                f"multipass rejected `{shown}` (exit 1, usage error): {summary}",
                "This is a labctl bug (it built a command line Multipass does not accept); "
                "please report it with the output of `multipass version`.",
            )
        return make(  # #5015: e.g. a missing certificate file; not something labctl passed
            MultipassError,
            f"the multipass client crashed on `{shown}`: {summary}",
            "The Multipass installation may be damaged; try reinstalling or restarting it.",
        )
    return make(MultipassError, f"`{shown}` failed (exit {returncode}): {summary}")


def _launch_timeout(
    make: Callable[[Callable[..., EngineError], str, str | None], EngineError],
    name: str,
    returncode: int,
    low: str,
    timeout: str | None,
) -> EngineError:
    # multipass keeps the instance after any launch timeout (#3314): say so, and how to clean.
    if returncode == 5:
        why = f"no `Launched:` within --timeout {timeout} s" if timeout else "client timeout"
        extra = "It may still be provisioning in the background (#1039)."
    elif "timed out waiting for response" in low:
        why = "SSH never came up (no IP address?)"
        extra = "Often host networking: a firewall or DHCP/bootp problem (multipass #2911)."
    else:
        why = "cloud-init did not finish"
        extra = f"See `multipass exec {name} -- cloud-init status --long` (multipass #1039)."
    return make(
        LaunchTimeoutError,
        f"launching {name} timed out ({why}); multipass left the instance {name} behind",
        f"{extra} Remove it with `labctl down` or `multipass delete --purge {name}` before "
        "launching again, or raise the launch timeout.",
    )


_INSTALL_HINT: Final = (
    "Install Multipass: Linux `sudo snap install multipass`; "
    "macOS `brew install --cask multipass`; Windows the installer from "
    "https://canonical.com/multipass or `winget install Canonical.Multipass`. "
    "If it is installed elsewhere, point LABCTL_MULTIPASS at the executable."
)
_HUNG_CALL_HINT: Final = (
    "multipassd may be wedged (multipass #5080): check whether `multipass list` answers; if not, "
    "restart the daemon (Linux: `sudo snap restart multipass`; macOS: `sudo launchctl kickstart -k "
    "system/com.canonical.multipassd`; Windows: restart the Multipass service) and purge any "
    "half-built instance with `multipass delete --purge NAME`."
)


def not_found_error(executable: str, exc: OSError) -> EngineNotFoundError:
    """The multipass executable could not be started."""
    return EngineNotFoundError(
        f"cannot run multipass ({executable!r}): {exc.strerror or exc}",
        argv=[executable],
        hint=_INSTALL_HINT,
    )


def timeout_error(argv: list[str], timeout: float, output: bytes | str | None) -> EngineError:
    """A multipass call labctl had to give up on after `timeout` seconds (`output`: its stderr)."""
    partial = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    name = _option(argv, "--name")
    if subcommand(argv) == "launch" and name:
        # Past the client's own --timeout: the daemon is stuck and keeps the instance.
        return LaunchTimeoutError(
            f"launching {name}: `{display(argv)}` did not answer within {timeout:.0f} s; "
            f"multipass left the instance {name} behind",
            argv=argv,
            stderr=stderr_tail(partial),
            hint=f"Remove it with `labctl down` or `multipass delete --purge {name}`. "
            + _HUNG_CALL_HINT,
        )
    return CommandTimeoutError(
        f"`{display(argv)}` did not answer within {timeout:.0f} s",
        argv=argv,
        stderr=stderr_tail(partial),
        hint=_HUNG_CALL_HINT,
    )
