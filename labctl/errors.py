"""The one error hierarchy. `cli/app.py` (`guard`) is the only place that catches it and turns it into output."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # a lab that is unhealthy, or a fault outside labctl
EXIT_BAD_INPUT: Final = 2


class LabctlError(Exception):
    """A problem to show the user as one message, with the exit code to end on."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ConfigError(LabctlError):
    """lab.yaml (or a command-line value) is wrong. Carries every problem found, one per line."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class MultipassError(LabctlError):
    """multipass failed, could not be run, or answered something labctl cannot use."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        returncode: int | None = None,
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class MultipassNotFoundError(MultipassError):
    """The multipass executable is missing."""


class DaemonUnreachableError(MultipassError):
    """multipassd is not running or its socket is not accessible."""


class LaunchTimeoutError(MultipassError):
    """A launch timed out; the instance may have been left behind (multipass.md §2.1)."""


class CommandTimeoutError(MultipassError):
    """A multipass call did not finish within labctl's own time limit (and was killed)."""


class ForeignInstanceError(LabctlError):
    """An instance with a lab VM's name exists but does not belong to this lab."""


class ProbeTimeoutError(LabctlError):
    """A readiness probe ran out of time; names what was checked and the last result."""


class HostsFileError(LabctlError):
    """The hosts file could not be read or written."""


class LabBusyError(LabctlError):
    """Another labctl process holds this lab's lock (it is changing the lab right now)."""
