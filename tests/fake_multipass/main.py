"""Entry point: ``python tests/fake_multipass/main.py <multipass args...>``.

Also appends one JSON line per invocation to ``$FAKE_MULTIPASS_HOME/calls.jsonl``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo's `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.fake_cli import exit_on_sigterm, logged_invocation
from tests.fake_multipass.errors import CommandError


def main(argv: list[str]) -> int:
    from tests.fake_multipass.context import Context
    from tests.fake_multipass.dispatch import command_name, dispatch
    from tests.fake_multipass.state import Store, home_dir, server_address

    exit_on_sigterm()
    entry: dict[str, Any] = {
        "argv": argv,
        "command": command_name(argv)[0],
        "pid": os.getpid(),
        "server_address": server_address(),
        "start_mono": time.monotonic(),
        "start_wall": time.time(),
    }
    try:
        home = home_dir()
    except CommandError as exc:
        sys.stderr.write(exc.message + "\n")
        return exc.code

    def body() -> int:
        before, index = Store(home, entry["server_address"]).count_invocation()
        ctx = Context(
            home,
            entry["server_address"],
            sys.stdin.buffer,
            sys.stdout,
            sys.stderr,
            entry,
            before,
            index,
        )
        try:
            return dispatch(ctx, argv)
        except CommandError as exc:
            stream = sys.stdout if exc.to_stdout else sys.stderr
            stream.write(exc.message + "\n")
            return exc.code

    return logged_invocation(home, entry, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
