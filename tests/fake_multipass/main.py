"""Entry point: ``python tests/fake_multipass/main.py <multipass args...>``.

Also appends one JSON line per invocation to ``$FAKE_MULTIPASS_HOME/calls.jsonl``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo's `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.fake_multipass.errors import CommandError


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _write_log(home: Path, entry: dict[str, Any]) -> None:
    from tests.fake_multipass.state import file_lock

    line = json.dumps(entry, sort_keys=True) + "\n"
    with file_lock(home / "calls.lock"), (home / "calls.jsonl").open("a") as handle:
        handle.write(line)


def main(argv: list[str]) -> int:
    from tests.fake_multipass.context import Context
    from tests.fake_multipass.dispatch import command_name, dispatch
    from tests.fake_multipass.state import Store, home_dir, server_address

    signal.signal(signal.SIGTERM, _terminate)
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
    running = home / "running"
    running.mkdir(exist_ok=True)
    marker = running / f"{os.getpid()}-{time.monotonic_ns()}.json"
    marker.write_text(json.dumps(entry))
    rc = 1
    try:
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
            rc = dispatch(ctx, argv)
        except CommandError as exc:
            stream = sys.stdout if exc.to_stdout else sys.stderr
            stream.write(exc.message + "\n")
            rc = exc.code
        except KeyboardInterrupt:
            rc = 130
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        entry.update(end_mono=time.monotonic(), end_wall=time.time(), rc=rc)
        _write_log(home, entry)
        marker.unlink(missing_ok=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
