"""The command lines the Multipass engine runs, built in one place: `adapter.py` runs exactly
these, and `labctl plan` shows them. Pure: no process is started here."""

from __future__ import annotations

import math
from collections.abc import Sequence

from labctl.engine.base import LaunchSpec

_Argv = list[str]


def whole_seconds(timeout: float) -> int:
    """multipass wants a positive integer, else exit 1 "--timeout value has to be ..."."""
    return max(1, math.ceil(timeout))


class MultipassCommandLines:
    """argv lists, starting with the executable."""

    _executable: str

    def version_argv(self) -> _Argv:
        return [self._executable, "version", "--format", "json"]

    def list_argv(self) -> _Argv:
        return [self._executable, "list", "--format", "json"]

    def list_snapshots_argv(self) -> _Argv:
        return [self._executable, "list", "--snapshots", "--format", "json"]

    def launch_argv(self, spec: LaunchSpec) -> _Argv:
        """The exact argv `launch` runs (the user-data goes on stdin)."""
        return [
            self._executable,
            "launch",
            "--name",
            spec.name,
            "--cpus",
            str(spec.cpus),
            "--memory",
            spec.memory,
            "--disk",
            spec.disk,
            "--timeout",
            str(whole_seconds(spec.timeout)),
            # stdin, not a path: the snap client cannot read /tmp or outside $HOME (#3693).
            "--cloud-init",
            "-",
            spec.image,
        ]

    def exec_argv(self, name: str, argv: Sequence[str]) -> _Argv:
        """`--` guards the command from multipass's own option parsing."""
        return [self._executable, "exec", name, "--", *argv]

    def start_argv(self, names: Sequence[str], *, timeout: float) -> _Argv:
        return [self._executable, "start", "--timeout", str(whole_seconds(timeout)), *names]

    def stop_argv(self, names: Sequence[str], *, force: bool, timeout: float) -> _Argv:
        # multipass stop has no timer of its own: `timeout` bounds the subprocess only.
        return [self._executable, "stop", *(["--force"] if force else []), *names]

    def delete_argv(self, names: Sequence[str]) -> _Argv:
        return [self._executable, "delete", "--purge", *names]

    def recover_argv(self, names: Sequence[str]) -> _Argv:
        return [self._executable, "recover", *names]

    def snapshot_argv(self, name: str, snapshot: str, *, comment: str) -> _Argv:
        comment_args = ["--comment", comment] if comment else []
        return [self._executable, "snapshot", "--name", snapshot, *comment_args, name]

    def restore_argv(self, name: str, snapshot: str) -> _Argv:
        # Without --destructive the client prompts, and fails (exit 1) without a terminal.
        return [self._executable, "restore", "--destructive", f"{name}.{snapshot}"]

    def delete_snapshot_argv(self, name: str, snapshot: str) -> _Argv:
        return [self._executable, "delete", "--purge", f"{name}.{snapshot}"]
