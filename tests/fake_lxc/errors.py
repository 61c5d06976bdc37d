"""How the real client fails: `Error: <text>` on stderr and exit 1 for every LXD error
(`lxc/main.go`); only `exec` passes the remote command's own status through."""

from __future__ import annotations


class LxcError(Exception):
    """Printed as `Error: <message>` on stderr; exit `code` (1 for everything but exec)."""

    def __init__(self, message: str, code: int = 1, *, stdout: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.stdout = stdout  # what the real client printed before failing ("Creating x")


def not_found() -> LxcError:
    return LxcError("Instance not found")


def member_unreachable(address: str, method: str, path: str, stdout: str = "") -> LxcError:
    return LxcError(
        f'{method} "https://{address}{path}": Unable to connect to: {address} '
        f"([dial tcp {address}: connect: connection refused])",
        stdout=stdout,
    )
