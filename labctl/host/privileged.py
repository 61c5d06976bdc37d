"""Replace a root-owned file through `sudo`: the one process labctl starts besides multipass.

Used only for the hosts file when labctl itself is not allowed to write it (and by `doctor` to
ask whether that would work: `sudo -n true`). Two argv calls, no
shell: copy the new text next to the target, then rename it over the target (atomic on one
filesystem).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

_TIMEOUT: Final = 120.0  # sudo may prompt for a password on a terminal


class PrivilegeError(Exception):
    pass


def replace_file(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", delete=False, prefix="labctl-", encoding="utf-8") as tmp:
        tmp.write(text)
    staged = path.parent / f".{path.name}.labctl-new"
    # -n (never prompt) when nobody can answer a prompt
    sudo = ["sudo"] if sys.stdin.isatty() else ["sudo", "-n"]
    try:
        _run([*sudo, "cp", "--", tmp.name, str(staged)])
        _run([*sudo, "chmod", "644", "--", str(staged)])
        _run([*sudo, "mv", "-f", "--", str(staged), str(path)])
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def can_sudo() -> bool:
    """Whether `sudo -n true` works: labctl could write the hosts file without a prompt."""
    try:
        done = subprocess.run(
            ["sudo", "-n", "true"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except FileNotFoundError:
        raise PrivilegeError("sudo is not installed") from None
    except subprocess.TimeoutExpired:
        raise PrivilegeError("sudo did not finish in time") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise PrivilegeError(f"sudo: {last}")
