"""Entry point: `python tests/fake_lxc/main.py <lxc args...>` (the `lxc` wrapper execs this).

Appends one JSON line per invocation to `$FAKE_LXC_HOME/calls.jsonl` (argv, command, rc,
monotonic start/end, and for launch/init/exec the stdin received); while a call runs,
`running/<pid>-<ns>.json` holds its partial entry, so a call killed with SIGKILL still shows.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo's `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.fake_lxc.errors import LxcError


def main(argv: list[str]) -> int:
    from tests.fake_cli import exit_on_sigterm, logged_invocation
    from tests.fake_lxc.cli import command_path
    from tests.fake_lxc.dispatch import run

    exit_on_sigterm()
    entry: dict[str, Any] = {
        "argv": argv,
        "command": command_path(argv)[0],
        "pid": os.getpid(),
        "start_mono": time.monotonic(),
        "start_wall": time.time(),
    }
    try:
        from tests.fake_lxc.state import home_dir

        home = home_dir()
    except LxcError as exc:
        sys.stderr.write(exc.message + "\n")
        return exc.code
    return logged_invocation(home, entry, lambda: run(home, argv, entry))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
