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


class EngineError(LabctlError):
    """The engine (Multipass, LXD, ...) failed, could not be run, or answered something labctl cannot
    use. Use cases catch this and the neutral kinds below; each engine adds its own below them."""

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


class EngineNotFoundError(EngineError):
    """The engine's command-line tool is missing or cannot be run."""


class DaemonUnreachableError(EngineError):
    """The engine's daemon is not running, or this user may not talk to it."""


class LaunchTimeoutError(EngineError):
    """A launch timed out; the engine may have left the instance behind."""


class CommandTimeoutError(EngineError):
    """An engine call did not finish within labctl's own time limit (and was killed)."""


class SnapshotsUnsupportedError(EngineError):
    """This engine (its version, driver or storage) cannot take snapshots."""


class InstanceNotFoundError(EngineError):
    """An instance named in the call does not exist."""


class InstanceExistsError(EngineError):
    """A launch found the name taken (also by a deleted instance that is not purged yet)."""


class ForeignInstanceError(LabctlError):
    """An instance with a lab VM's name exists but does not belong to this lab."""


class ProbeTimeoutError(LabctlError):
    """A readiness probe ran out of time; names what was checked and the last result."""


class HostsFileError(LabctlError):
    """The hosts file could not be read or written."""


class LabBusyError(LabctlError):
    """Another labctl process holds this lab's lock (it is changing the lab right now)."""


class UnsafePathError(LabctlError):
    """A path labctl refuses to use: a link, a FIFO, or a file or folder someone else controls."""

    exit_code = EXIT_BAD_INPUT
