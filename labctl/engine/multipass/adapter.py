"""The Multipass engine: the only place in labctl that runs the `multipass` CLI.

Every call goes through `MultipassEngine._run` (argv list, captured text, timeout, failure
mapping). Parsing (`parse.py`) and failure classification (`errors.py`) are pure. What the code
relies on in Multipass's behaviour is written down in docs/engines/multipass.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from labctl.engine.base import (
    OPERATION_TIMEOUT,
    Argv,
    Capabilities,
    ExecResult,
    HealthLine,
    Instance,
    LaunchSpec,
    Snapshot,
    Stdin,
    exec_failure,
)
from labctl.engine.multipass.commands import MultipassCommandLines, whole_seconds
from labctl.engine.multipass.errors import (
    MultipassError,
    classify_failure,
    display,
    is_own_exec_error,
    missing_instances,
    not_found_error,
    stderr_tail,
    subcommand,
    summarize_stderr,
    timeout_error,
)
from labctl.engine.multipass.parse import (
    VersionInfo,
    launched_name,
    parse_info,
    parse_list,
    parse_snapshots,
    parse_version,
    strip_spinner,
)
from labctl.engine.process import bounded_run
from labctl.errors import (
    DaemonUnreachableError,
    EngineError,
    InstanceNotFoundError,
    SnapshotsUnsupportedError,
)

_LOG: Final = logging.getLogger(__name__)

MIN_VERSION: Final[tuple[int, int, int]] = (1, 12, 0)  # a daemon-down error is one line from here
SNAPSHOT_MIN_VERSION: Final[tuple[int, int, int]] = (1, 13, 0)  # snapshot/restore appear
NO_SNAPSHOT_DRIVERS: Final = ("lxd", "libvirt")  # multipass #3328
ENV_EXECUTABLE: Final = "LABCTL_MULTIPASS"
# The subprocess may outlive multipass's own --timeout by this much, so that the client's timer
# (exit 5) fires first and the subprocess timeout only catches a wedged daemon (#5080).
LAUNCH_GRACE: Final = 60.0

CAPABILITIES: Final = Capabilities(
    name="multipass",
    display_name="Multipass",
    instance_noun="VM",
    snapshot_needs_stop=True,
    recovers_deleted=True,
    keeps_labels=False,
    launch_waits_for_cloud_init=True,
    places_instances=False,
)

Runner = Callable[..., subprocess.CompletedProcess[str]]
# Aliases: inside the class body, `list` names the method, not the builtin.
_Argv = list[str]
_Instances = list[Instance]
_Snapshots = list[Snapshot]
_Health = list[HealthLine]


_Argvs = list[list[str]]  # an alias: inside the class, `list` names the method


class MultipassEngine(MultipassCommandLines):
    """Runs multipass commands and returns neutral data; raises EngineError (and subclasses).

    The command lines come from MultipassCommandLines, so what `plan` shows is what runs."""

    capabilities: Final = CAPABILITIES

    def __init__(
        self,
        executable: str | None = None,
        *,
        run: Runner = bounded_run,
        env: Mapping[str, str] | None = None,
        query_timeout: float = 60.0,
    ) -> None:
        """Choose the executable: explicit, else $LABCTL_MULTIPASS, else `multipass` on PATH."""
        self._env = dict(env or {})
        self._executable = (
            executable
            or self._env.get(ENV_EXECUTABLE)
            or os.environ.get(ENV_EXECUTABLE)
            or "multipass"
        )
        self._runner = run
        self.query_timeout = query_timeout

    @property
    def executable(self) -> str:
        """The multipass executable that is run."""
        return self._executable

    # --- the one runner ----------------------------------------------------------------------

    def _full_env(self) -> dict[str, str]:
        return {**os.environ, **self._env}

    def _run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a full argv (the executable first) that one of the *_argv methods built."""
        argv = list(argv)
        # argv only: cloud-init and exec stdin travel on stdin and may hold secrets.
        _LOG.debug("running %s (timeout %.0f s)", shlex.join(argv), timeout)
        kwargs: dict[str, Any] = {
            "capture_output": True,
            "text": True,
            "errors": "replace",
            "timeout": timeout,
            "env": self._full_env(),
            "check": False,
        }
        if input is None:
            kwargs["stdin"] = subprocess.DEVNULL  # multipass would otherwise wait on a prompt
        else:
            kwargs["input"] = input
        try:
            proc = self._runner(argv, **kwargs)
        except (FileNotFoundError, PermissionError) as exc:
            raise not_found_error(self._executable, exc) from exc
        except subprocess.TimeoutExpired as exc:
            raise timeout_error(argv, timeout, exc.stderr) from exc
        _LOG.debug("%s exited %d", subcommand(argv), proc.returncode)
        if check and proc.returncode != 0:
            # Unknown commands are reported on stdout.
            text = proc.stderr if (proc.stderr or "").strip() else (proc.stdout or "")
            raise classify_failure(argv, proc.returncode, text)
        return proc

    # --- queries -----------------------------------------------------------------------------

    def version(self) -> VersionInfo:
        """Client and daemon versions; daemon is None (no error) when multipassd is down."""
        proc = self._run(self.version_argv(), timeout=self.query_timeout)
        return parse_version(proc.stdout)

    def list(self) -> _Instances:
        """All instances, Deleted ones included, in no particular order."""
        proc = self._run(self.list_argv(), timeout=self.query_timeout)
        return parse_list(proc.stdout)

    def info(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`info --format json` for names (all instances if empty); a missing name raises."""
        argv = [self._executable, "info", "--format", "json", *names]
        return parse_info(self._run(argv, timeout=self.query_timeout).stdout)

    def get(self, key: str) -> str:
        """A setting's value, e.g. `local.driver`; `--raw` so empty is "" not `<empty>`."""
        proc = self._run([self._executable, "get", "--raw", key], timeout=self.query_timeout)
        return (proc.stdout or "").strip()

    def list_snapshots(self) -> _Snapshots:
        """Every snapshot of every instance (needs Multipass >= 1.13)."""
        proc = self._run(self.list_snapshots_argv(), timeout=self.query_timeout)
        return parse_snapshots(proc.stdout)

    # --- the daemon: ready, health, snapshot support -----------------------------------------

    def ready(self, info: VersionInfo | None = None) -> str:
        """The daemon answers and is new enough: "multipass 1.16.3" (else an EngineError)."""
        info = info or self.version()
        if info.daemon is None:
            raise DaemonUnreachableError(
                "multipass is installed but its daemon (multipassd) does not answer",
                hint="Start it (Linux: sudo snap restart multipass; macOS/Windows: restart the "
                "Multipass app) and try again.",
            )
        found = info.daemon_tuple()
        if found is not None and found < MIN_VERSION:
            raise MultipassError(
                f"Multipass {info.daemon} is too old; labctl needs {_dotted(MIN_VERSION)} or newer",
                hint="Upgrade it: sudo snap refresh multipass (Linux), brew upgrade multipass (macOS).",
            )
        return f"multipass {info.daemon}"

    def prepare(self) -> str | None:
        return None  # the local daemon needs nothing before a launch

    def prepare_argvs(self) -> _Argvs:
        return []

    def snapshots_unavailable(self, info: VersionInfo | None = None) -> str | None:
        """Why this Multipass cannot snapshot (version, driver), or None when it can."""
        info = info or self.version()
        found = info.daemon_tuple()
        if found is not None and found < SNAPSHOT_MIN_VERSION:
            wanted = _dotted(SNAPSHOT_MIN_VERSION)
            return f"Multipass {info.daemon} has no snapshots (they need {wanted} or newer)"
        try:
            driver = self.get("local.driver")
        except EngineError:
            return None  # unknown: the snapshot call itself will tell
        if driver in NO_SNAPSHOT_DRIVERS:
            return f"the {driver} driver cannot take snapshots (multipass #3328)"
        return None

    def health(self, *, image: str | None = None) -> _Health:
        """doctor's lines: the client, the daemon and its version, the driver, snapshots (the
        image is found at launch: Multipass downloads it then)."""
        lines: _Health = []
        try:
            info = self.version()
        except EngineError as exc:
            return [
                HealthLine("multipass", "fail", exc.message, exc.hint or ""),
                HealthLine("driver", "skip", "needs the daemon"),
                HealthLine("snapshots", "skip", "needs the daemon"),
            ]
        lines.append(HealthLine("multipass", "ok", f"client {info.client} ({self._executable})"))
        try:
            self.ready(info)
        except EngineError as exc:
            lines.append(HealthLine("daemon", "fail", exc.message, exc.hint or ""))
        else:
            lines.append(HealthLine("daemon", "ok", f"multipassd {info.daemon} answers"))
        if info.daemon is None:
            lines.append(HealthLine("driver", "skip", "needs the daemon"))
            lines.append(HealthLine("snapshots", "skip", "needs the daemon"))
            return lines
        driver: str | None
        try:
            driver = self.get("local.driver")
        except EngineError as exc:
            lines.append(HealthLine("driver", "warn", f"cannot read local.driver: {exc.message}"))
            driver = None
        else:
            if driver in NO_SNAPSHOT_DRIVERS:
                lines.append(
                    HealthLine(
                        "driver",
                        "warn",
                        f"{driver} (deprecated; no snapshots, so no baseline and `reset` "
                        "relaunches)",
                        "multipass set local.driver=qemu (with no instances running)",
                    )
                )
            else:
                lines.append(HealthLine("driver", "ok", driver or "(default)"))
        lines.append(_snapshot_line(info.daemon_tuple(), driver))
        return lines

    # --- launch and exec ---------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> None:
        """Launch one instance; on a timeout the instance is left behind (LaunchTimeoutError)."""
        argv = self.launch_argv(spec)
        proc = self._run(
            argv, input=spec.user_data, timeout=whole_seconds(spec.timeout) + LAUNCH_GRACE
        )
        launched = launched_name(proc.stdout or "")
        if launched != spec.name:
            raise MultipassError(
                f"`{display(argv)}` exited 0 but did not report `Launched: {spec.name}`",
                argv=argv,
                returncode=proc.returncode,
                stderr=stderr_tail(proc.stderr or ""),
                hint=f"stdout was: {strip_spinner(proc.stdout or '')[-300:]!r}. "
                f"Check `multipass info {spec.name}`.",
            )

    def exec(
        self, name: str, argv: Argv, *, stdin: Stdin = None, timeout: float, check: bool = False
    ) -> ExecResult:
        """Run argv in the instance; returncode is the remote one (a Stopped VM is auto-started).

        multipass's own failures (instance missing or deleted, daemon down) always raise.
        """
        full = self.exec_argv(name, argv)
        proc = self._run(full, input=stdin, timeout=timeout, check=False)
        result = ExecResult(proc.returncode, proc.stdout or "", proc.stderr or "")
        # exec forwards the remote exit code, which collides with multipass's own 1/2: a remote
        # `cloud-init status` exits 2 for "degraded". Only multipass's own errors start with
        # "exec failed:", and those always raise, so an ExecResult means the command ran.
        if result.returncode != 0 and is_own_exec_error(result.stderr):
            raise classify_failure(full, result.returncode, result.stderr)
        if check and result.returncode != 0:
            why, tail = summarize_stderr(result.stderr), stderr_tail(result.stderr)
            raise exec_failure(MultipassError, name, argv, full, result, why=why, tail=tail)
        return result

    # --- lifecycle ---------------------------------------------------------------------------
    # With no names, start/stop/... act on the "primary" instance, and start even launches it,
    # so an empty name list never reaches multipass.

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        """Start instances (a no-op for running ones); raises on exit 5 / daemon timeouts."""
        if names:
            self._run(
                self.start_argv(names, timeout=timeout),
                timeout=whole_seconds(timeout) + LAUNCH_GRACE,
            )

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        """Stop instances; force powers off (also a Starting instance)."""
        if names:
            self._run(self.stop_argv(names, force=force, timeout=timeout), timeout=timeout)

    def delete(self, names: Sequence[str]) -> None:
        """Purge instances; names that are already gone are not an error."""
        remaining = list(names)
        while remaining:
            try:
                self._run(self.delete_argv(remaining), timeout=OPERATION_TIMEOUT)
            except InstanceNotFoundError as exc:
                # The daemon may refuse the whole call when one name is missing, so retry
                # without the missing ones; the list shrinks every round.
                missing = set(missing_instances(exc.stderr))
                still = [n for n in remaining if n not in missing]
                if len(still) == len(remaining):  # could not tell which: go one by one
                    for single in remaining:
                        with contextlib.suppress(InstanceNotFoundError):
                            self._run(self.delete_argv([single]), timeout=OPERATION_TIMEOUT)
                    return
                remaining = still
                continue
            return

    def recover(self, names: Sequence[str]) -> None:
        """Turn Deleted instances back into Stopped ones."""
        if names:
            self._run(self.recover_argv(names), timeout=OPERATION_TIMEOUT)

    # --- snapshots (Multipass >= 1.13, stopped instances only) ---------------------------------

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        """Snapshot a stopped instance as name.snapshot."""
        self._run(self.snapshot_argv(name, snapshot, comment=comment), timeout=OPERATION_TIMEOUT)

    def restore(self, name: str, snapshot: str) -> None:
        """Restore a stopped instance, discarding its current state (no prompt)."""
        self._run(self.restore_argv(name, snapshot), timeout=OPERATION_TIMEOUT)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Delete one snapshot for good (snapshots can only be purged)."""
        self._run(self.delete_snapshot_argv(name, snapshot), timeout=OPERATION_TIMEOUT)

    # --- interactive -------------------------------------------------------------------------

    def interactive(self, name: str, argv: Sequence[str] | None = None) -> int:
        """`multipass shell NAME` (argv None) or `multipass exec NAME -- argv` on the user's
        terminal (no capture, no timeout); its exit code."""
        full = [self._executable, "shell", name] if argv is None else self.exec_argv(name, argv)
        _LOG.debug("running %s interactively", shlex.join(full))
        try:
            proc = self._runner(full, env=self._full_env(), check=False)
        except (FileNotFoundError, PermissionError) as exc:
            raise not_found_error(self._executable, exc) from exc
        return proc.returncode


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _snapshot_line(version: tuple[int, int, int] | None, driver: str | None) -> HealthLine:
    wanted = _dotted(SNAPSHOT_MIN_VERSION)
    if version is not None and version < SNAPSHOT_MIN_VERSION:
        return HealthLine(
            "snapshots",
            "warn",
            f"Multipass {_dotted(version)} has no snapshots (needs {wanted}); "
            "the baseline is skipped and `reset` relaunches VMs",
            "Upgrade Multipass to get `labctl snapshot` and fast `labctl reset`.",
        )
    if driver in NO_SNAPSHOT_DRIVERS:
        return HealthLine("snapshots", "warn", f"the {driver} driver cannot take snapshots")
    return HealthLine("snapshots", "ok", f"available (Multipass >= {wanted})")


__all__ = [
    "CAPABILITIES",
    "ENV_EXECUTABLE",
    "LAUNCH_GRACE",
    "MIN_VERSION",
    "SNAPSHOT_MIN_VERSION",
    "MultipassEngine",
    "MultipassError",
    "Runner",
    "SnapshotsUnsupportedError",
    "VersionInfo",
]
