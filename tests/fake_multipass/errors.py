"""Exceptions that end a command with a given message and exit code."""

from __future__ import annotations

import datetime as _dt

# Exit codes, include/multipass/cli/return_codes.h + constants.h (docs/engines/multipass.md)
OK = 0
COMMAND_LINE_ERROR = 1
COMMAND_FAIL = 2
TIMEOUT_EXIT_CODE = 5


class CommandError(Exception):
    """Ends the command: ``message`` goes to stderr (or stdout), process exits with ``code``."""

    def __init__(self, message: str, code: int = COMMAND_FAIL, *, to_stdout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.to_stdout = to_stdout


def failed(command: str, message: str, details: str = "") -> CommandError:
    """The client's standard failure line (docs/engines/multipass.md): ``<cmd> failed: <msg>\\n[<details>\\n]``."""
    text = f"{command} failed: {message}"
    if details:
        text += f"\n{details}"
    return CommandError(text, COMMAND_FAIL)


def following_errors(command: str, errors: list[str]) -> CommandError:
    """Multi-instance daemon errors (docs/engines/multipass.md): ``The following errors occurred:\\n...``."""
    return failed(command, "The following errors occurred:\n" + "\n".join(errors))


def usage(message: str) -> CommandError:
    """A client-side parse/validation error: stderr, exit 1."""
    return CommandError(message, COMMAND_LINE_ERROR)


def unhandled(what: str) -> CommandError:
    """An exception escaping the client, printed by top_catch_all (docs/engines/multipass.md), exit 1."""
    stamp = _dt.datetime.now().isoformat(timespec="milliseconds")
    return CommandError(
        f"[{stamp}] [error] [client] Caught an unhandled exception: {what}", COMMAND_LINE_ERROR
    )


def client_timeout(what: str) -> CommandError:
    """The client ``--timeout`` timer fired (docs/engines/multipass.md): stderr message, exit 5."""
    return CommandError(f"Timed out waiting for instance {what}.", TIMEOUT_EXIT_CODE)
