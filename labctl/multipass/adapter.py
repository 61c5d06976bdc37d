"""The Multipass adapter: the only place in labctl that runs the `multipass` CLI.

Every call goes through `Multipass._run` (argv list, captured text, timeout, failure mapping).
Parsing (`labctl.multipass.parse`) and failure classification (`labctl.multipass.errors`) are
pure; their public names are re-exported here.
Section numbers (§) refer to /work/shared/reference/multipass.md.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from labctl.errors import (
    MultipassError,
)
from labctl.multipass.errors import (
    InstanceExistsError,
    InstanceNotFoundError,
    SnapshotsUnsupportedError,
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
from labctl.multipass.parse import (
    ExecResult,
    Instance,
    Snapshot,
    VersionInfo,
    launched_name,
    parse_info,
    parse_list,
    parse_snapshots,
    parse_version,
    strip_spinner,
)

__all__ = [
    "ENV_EXECUTABLE",
    "LAUNCH_GRACE",
    "MIN_VERSION",
    "OPERATION_TIMEOUT",
    "SNAPSHOT_MIN_VERSION",
    "ExecResult",
    "Instance",
    "InstanceExistsError",
    "InstanceNotFoundError",
    "Multipass",
    "Runner",
    "Snapshot",
    "SnapshotsUnsupportedError",
    "VersionInfo",
    "classify_failure",
    "launched_name",
    "parse_info",
    "parse_list",
    "parse_snapshots",
    "parse_version",
    "strip_spinner",
]

_LOG: Final = logging.getLogger(__name__)

MIN_VERSION: Final[tuple[int, int, int]] = (1, 12, 0)  # single-line daemon-down stderr (§1.3)
SNAPSHOT_MIN_VERSION: Final[tuple[int, int, int]] = (1, 13, 0)  # snapshot/restore appear (§2.8)
ENV_EXECUTABLE: Final = "LABCTL_MULTIPASS"
# The subprocess may outlive multipass's own --timeout by this much, so that the client's timer
# (exit 5, §2.1) fires first and the subprocess timeout only catches a wedged daemon (#5080).
LAUNCH_GRACE: Final = 60.0
# delete/recover/snapshot/restore have no client timer; delete halts a running VM first (§2.7).
OPERATION_TIMEOUT: Final = 300.0

Runner = Callable[..., subprocess.CompletedProcess[str]]
# Aliases: inside the class body, `list` names the method, not the builtin.
_Argv = list[str]
_Instances = list[Instance]
_Snapshots = list[Snapshot]


def _whole_seconds(timeout: float) -> int:
    # multipass wants a positive integer, else exit 1 "--timeout value has to be ..." (§2.1).
    return max(1, math.ceil(timeout))


class Multipass:
    """Runs multipass commands and returns parsed data; raises MultipassError subclasses."""

    def __init__(
        self,
        executable: str | None = None,
        *,
        run: Runner = subprocess.run,
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
        args: Sequence[str],
        *,
        input: str | None = None,
        timeout: float,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self._executable, *args]
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
            # Unknown commands are reported on stdout (§1.6).
            text = proc.stderr if (proc.stderr or "").strip() else (proc.stdout or "")
            raise classify_failure(argv, proc.returncode, text)
        return proc

    # --- queries -----------------------------------------------------------------------------

    def version(self) -> VersionInfo:
        """Client and daemon versions; daemon is None (no error) when multipassd is down."""
        proc = self._run(["version", "--format", "json"], timeout=self.query_timeout)
        return parse_version(proc.stdout)

    def list(self) -> _Instances:
        """All instances, Deleted ones included, in no particular order (§2.3)."""
        proc = self._run(["list", "--format", "json"], timeout=self.query_timeout)
        return parse_list(proc.stdout)

    def info(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`info --format json` for names (all instances if empty); a missing name raises."""
        proc = self._run(["info", "--format", "json", *names], timeout=self.query_timeout)
        return parse_info(proc.stdout)

    def get(self, key: str) -> str:
        """A setting's value, e.g. `local.driver` (§2.11); `--raw` so empty is "" not `<empty>`."""
        proc = self._run(["get", "--raw", key], timeout=self.query_timeout)
        return (proc.stdout or "").strip()

    def list_snapshots(self) -> _Snapshots:
        """Every snapshot of every instance (needs Multipass >= 1.13)."""
        proc = self._run(["list", "--snapshots", "--format", "json"], timeout=self.query_timeout)
        return parse_snapshots(proc.stdout)

    # --- launch and exec ---------------------------------------------------------------------

    def launch_argv(
        self, *, name: str, image: str, cpus: int, memory: str, disk: str, timeout: float
    ) -> _Argv:
        """The exact argv `launch` runs (cloud-init goes on stdin), starting with the executable."""
        return [
            self._executable,
            "launch",
            "--name",
            name,
            "--cpus",
            str(cpus),
            "--memory",
            memory,
            "--disk",
            disk,
            "--timeout",
            str(_whole_seconds(timeout)),
            # stdin, not a path: the snap client cannot read /tmp or outside $HOME (§2.1, #3693).
            "--cloud-init",
            "-",
            image,
        ]

    def launch(
        self,
        *,
        name: str,
        image: str,
        cpus: int,
        memory: str,
        disk: str,
        cloud_init: str,
        timeout: float,
    ) -> None:
        """Launch one instance; on a timeout the instance is left behind (LaunchTimeoutError)."""
        argv = self.launch_argv(
            name=name, image=image, cpus=cpus, memory=memory, disk=disk, timeout=timeout
        )
        proc = self._run(argv[1:], input=cloud_init, timeout=_whole_seconds(timeout) + LAUNCH_GRACE)
        launched = launched_name(proc.stdout or "")
        if launched != name:
            raise MultipassError(
                f"`{display(argv)}` exited 0 but did not report `Launched: {name}`",
                argv=argv,
                returncode=proc.returncode,
                stderr=stderr_tail(proc.stderr or ""),
                hint=f"stdout was: {strip_spinner(proc.stdout or '')[-300:]!r}. "
                f"Check `multipass info {name}`.",
            )

    def exec_argv(self, name: str, argv: Sequence[str]) -> _Argv:
        """The exact argv `exec` runs, starting with the executable; `--` guards the command."""
        return [self._executable, "exec", name, "--", *argv]

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float,
        check: bool = False,
    ) -> ExecResult:
        """Run argv in the instance; returncode is the remote one (a Stopped VM is auto-started).

        multipass's own failures (instance missing or deleted, daemon down) always raise.
        """
        full = self.exec_argv(name, argv)
        proc = self._run(full[1:], input=stdin, timeout=timeout, check=False)
        result = ExecResult(proc.returncode, proc.stdout or "", proc.stderr or "")
        # exec forwards the remote exit code, which collides with multipass's own 1/2 (§1.1): a
        # remote `cloud-init status` exits 2 for "degraded". Only multipass's own errors start with
        # "exec failed:" (§2.4), and those always raise, so an ExecResult means the command ran.
        if result.returncode != 0 and is_own_exec_error(result.stderr):
            raise classify_failure(full, result.returncode, result.stderr)
        if check and result.returncode != 0:
            raise MultipassError(
                f"`{shlex.join(argv)}` in {name} exited {result.returncode}: "
                f"{summarize_stderr(result.stderr)}",
                argv=full,
                returncode=result.returncode,
                stderr=stderr_tail(result.stderr),
            )
        return result

    # --- lifecycle ---------------------------------------------------------------------------
    # With no names, start/stop/... act on the "primary" instance, and start even launches it
    # (§2.6), so an empty name list never reaches multipass.

    def start(self, names: Sequence[str], *, timeout: float) -> None:
        """Start instances (a no-op for running ones); raises on exit 5 / daemon timeouts."""
        if not names:
            return
        seconds = _whole_seconds(timeout)
        self._run(["start", "--timeout", str(seconds), *names], timeout=seconds + LAUNCH_GRACE)

    def stop(self, names: Sequence[str], *, force: bool = False, timeout: float) -> None:
        """Stop instances; force powers off (also a Starting instance, §2.6)."""
        if not names:
            return
        self._run(["stop", *(["--force"] if force else []), *names], timeout=timeout)

    def delete(self, names: Sequence[str], *, purge: bool = True) -> None:
        """Delete instances; names that are already gone are not an error."""
        remaining = list(names)
        while remaining:
            args = ["delete", *(["--purge"] if purge else []), *remaining]
            try:
                self._run(args, timeout=OPERATION_TIMEOUT)
            except InstanceNotFoundError as exc:
                # The daemon may refuse the whole call when one name is missing ([I] §2.7), so
                # retry without the missing ones; the list shrinks every round.
                missing = set(missing_instances(exc.stderr))
                still = [n for n in remaining if n not in missing]
                if len(still) == len(remaining):  # could not tell which: go one by one
                    for single in remaining:
                        self._delete_one(single, purge=purge)
                    return
                remaining = still
                continue
            return

    def _delete_one(self, name: str, *, purge: bool) -> None:
        with contextlib.suppress(InstanceNotFoundError):
            self._run(["delete", *(["--purge"] if purge else []), name], timeout=OPERATION_TIMEOUT)

    def recover(self, names: Sequence[str]) -> None:
        """Turn Deleted instances back into Stopped ones (§2.7)."""
        if not names:
            return
        self._run(["recover", *names], timeout=OPERATION_TIMEOUT)

    # --- snapshots (Multipass >= 1.13, stopped instances only, §2.8) ---------------------------

    def snapshot(self, name: str, snapshot: str, *, comment: str = "") -> None:
        """Snapshot a stopped instance as name.snapshot."""
        comment_args = ["--comment", comment] if comment else []
        self._run(["snapshot", "--name", snapshot, *comment_args, name], timeout=OPERATION_TIMEOUT)

    def restore(self, name: str, snapshot: str) -> None:
        """Restore a stopped instance, discarding its current state (no prompt)."""
        # Without --destructive the client prompts, and fails (exit 1) without a TTY (§2.8).
        self._run(["restore", "--destructive", f"{name}.{snapshot}"], timeout=OPERATION_TIMEOUT)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Delete one snapshot for good (snapshots can only be purged, §2.7)."""
        self._run(["delete", "--purge", f"{name}.{snapshot}"], timeout=OPERATION_TIMEOUT)

    # --- interactive -------------------------------------------------------------------------

    def interactive(self, args: Sequence[str]) -> int:
        """Run e.g. ["shell", name] on the user's terminal (no capture, no timeout); exit code."""
        argv = [self._executable, *args]
        _LOG.debug("running %s interactively", shlex.join(argv))
        try:
            proc = self._runner(argv, env=self._full_env(), check=False)
        except (FileNotFoundError, PermissionError) as exc:
            raise not_found_error(self._executable, exc) from exc
        return proc.returncode
