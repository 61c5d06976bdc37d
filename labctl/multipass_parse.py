"""Pure functions over multipass output: JSON parsing, spinner stripping, failure classification.

Nothing here runs a process; `labctl.multipass` is the only module that does. Everything is
tested on recorded text (tests/fixtures/multipass/), like python-vagrant's `_parse_status`.
Section numbers (§) refer to /work/shared/reference/multipass.md.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from labctl.errors import DaemonUnreachableError, LaunchTimeoutError, MultipassError

STDERR_TAIL_LINES: Final = 10
_EXCERPT_CHARS: Final = 120

_CSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SPINNER_TAIL_RE: Final = re.compile(r"\s+[|/\\-]?$")
_LAUNCHED_RE: Final = re.compile(r"^Launched: (\S+)$", re.MULTILINE)
_VERSION_RE: Final = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)")
_LOG_LINE_RE: Final = re.compile(r"^\[[^\]]*\] \[(\w+)\] \[[^\]]*\] (.*)$")
_FAILED_PREFIX_RE: Final = re.compile(r"^[a-z][\w-]* failed: ")
_MISSING_RE: Final = re.compile(r"""instance ["']([^"']+)["'] does not exist""", re.IGNORECASE)
_OWN_EXEC_ERROR_RE: Final = re.compile(r"^(exec|info) failed: ", re.MULTILINE)


class InstanceNotFoundError(MultipassError):
    """An instance named in the command does not exist (multipass.md §5)."""


class InstanceExistsError(MultipassError):
    """launch: the name is taken by a live or a Deleted instance (multipass.md §2.1)."""


class SnapshotsUnsupportedError(MultipassError):
    """The backend cannot take snapshots (lxd/libvirt, multipass #3328)."""


@dataclass(frozen=True)
class Instance:
    """One entry of `multipass list --format json` (§3.3)."""

    name: str
    state: str
    ipv4: tuple[str, ...]
    release: str

    @property
    def ip(self) -> str | None:
        """The management IP, ipv4[0] (§7.2), or None when it is missing, "N/A" or "UNKNOWN"."""
        if not self.ipv4:
            return None
        try:
            ipaddress.IPv4Address(self.ipv4[0])
        except ValueError:
            return None
        return self.ipv4[0]


@dataclass(frozen=True)
class VersionInfo:
    """Client and daemon versions; daemon is None when multipassd did not answer (§1.3)."""

    client: str
    daemon: str | None

    def daemon_tuple(self) -> tuple[int, int, int] | None:
        """The daemon version as (major, minor, patch); None if unknown or unparseable."""
        return _version_tuple(self.daemon)

    def client_tuple(self) -> tuple[int, int, int] | None:
        """The client version as (major, minor, patch); None if unparseable."""
        return _version_tuple(self.client)


@dataclass(frozen=True)
class ExecResult:
    """What a command run by `multipass exec` returned; returncode is the remote one (§1.1)."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Snapshot:
    """One snapshot from `multipass list --snapshots --format json` (§3.4); parent "" is a root."""

    instance: str
    name: str
    parent: str
    comment: str


def _version_tuple(text: str | None) -> tuple[int, int, int] | None:
    # "1.16.3", "1.16.3+mac", "1.16.3+win", "1.17.0-dev.123+gabcdef12" (§2.10)
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
    # By key and type, never by position or text: 1.17-dev reorders keys and adds `zone` (§3).
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
            instances.append(
                Instance(
                    name=name,
                    state=_field(item, "state", str, "Unknown", where),
                    ipv4=ipv4,
                    release=_field(item, "release", str, "", where),
                )
            )
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return instances


def parse_info(text: str) -> dict[str, dict[str, Any]]:
    """Parse `multipass info --format json`: instance name -> its object, as printed (§3.1)."""
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
    """Parse `multipass list --snapshots --format json` (§3.4), sorted by instance then name."""
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
                snapshots.append(
                    Snapshot(
                        instance=instance,
                        name=name,
                        parent=_field(snap, "parent", str, "", where),
                        comment=_field(snap, "comment", str, "", where),
                    )
                )
    except TypeError as exc:
        raise _bad_output(command, str(exc), text) from None
    return sorted(snapshots, key=lambda s: (s.instance, s.name))


# --- launch stdout ---------------------------------------------------------------------------


def strip_spinner(text: str) -> str:
    """Remove the spinner noise that multipass draws on stdout even without a TTY (§1.5)."""
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


# --- failures --------------------------------------------------------------------------------


def _meaningful_lines(stderr: str) -> list[str]:
    lines = []
    for raw in _CSI_RE.sub("", stderr).splitlines():
        line = raw.strip()
        if not line or line.startswith("***"):  # e.g. the blueprint deprecation banner (§8.12)
            continue
        logged = _LOG_LINE_RE.match(line)
        if logged:  # "[ts] [level] [category] message" (§1.4): keep errors only
            if logged[1] not in ("error", "critical"):
                continue
            line = logged[2].removeprefix("Caught an unhandled exception: ")
        lines.append(line)
    return lines


def summarize_stderr(stderr: str) -> str:
    """The first meaningful stderr line, joined with the detail lines it introduces (§1.2)."""
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
    """Names that a `does not exist` error mentions, in both quoting styles (§5)."""
    return _MISSING_RE.findall(stderr)


def is_own_exec_error(stderr: str) -> bool:
    """Whether exec's stderr is multipass's own error, not the remote command's (§2.4)."""
    return _OWN_EXEC_ERROR_RE.search(_CSI_RE.sub("", stderr)) is not None


def subcommand(argv: list[str]) -> str:
    """The multipass subcommand in argv (the first non-option after the executable)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), "")


def display(argv: list[str]) -> str:
    """argv as a shell-quoted `multipass ...` line for messages, shortened if long."""
    shown = shlex.join(["multipass", *argv[1:]])
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


def classify_failure(argv: list[str], returncode: int, stderr: str) -> MultipassError:
    """The most specific MultipassError for a failed call: by exit code, then stderr (§9)."""
    command = subcommand(argv)
    shown = display(argv)
    summary = summarize_stderr(stderr)
    low = stderr.lower()

    def make(
        cls: Callable[..., MultipassError], message: str, hint: str | None = None
    ) -> MultipassError:
        return cls(
            message, argv=list(argv), returncode=returncode, stderr=stderr_tail(stderr), hint=hint
        )

    # §1.3: exit 2 (NOT_FOUND), whatever the command; access denied is PERMISSION_DENIED.
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

    if returncode == 5:  # the client's own --timeout timer (§1.1), e.g. start
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
            "A Deleted instance still holds its name until purged (§2.1): "
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
    if "unknown or unreachable" in low:  # §2.1, #3680: image info not fetched yet
        return make(
            MultipassError,
            f"`{shown}`: {summary}",
            "The daemon may still be starting or the host may be offline; wait a minute and retry.",
        )
    if "unable to find an image matching" in low:
        return make(MultipassError, f"`{shown}`: {summary}", "List images with `multipass find`.")
    if "cloud-init config" in low or "cloud-init configuration" in low:  # §2.1
        return make(
            MultipassError,
            f"multipass could not load the cloud-init user-data: {summary}",
            "It must be a cloud-config YAML mapping; shell scripts and MIME multipart are not "
            "supported (multipass #2047).",
        )
    if "unknown command or alias" in low:  # §1.6: printed on stdout, exit 1
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
    make: Callable[[Callable[..., MultipassError], str, str | None], MultipassError],
    name: str,
    returncode: int,
    low: str,
    timeout: str | None,
) -> MultipassError:
    # multipass keeps the instance after any launch timeout (§2.1, #3314): say so, and how to clean.
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
