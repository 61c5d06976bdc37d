"""The fake `lxd` daemon binary, for what labctl asks of it: `lxd init --preseed` with the
preseed on stdin (YAML, or JSON, which is YAML). It sets the fake server up as the preseed says
(its storage pools, networks and profile devices, and its server config) and records the
preseed in the call log, so tests see exactly what labctl handed LXD. Anything else exits 1 with
the real binary's words for an unknown command.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo's `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def apply_preseed(server: dict[str, Any], preseed: dict[str, Any]) -> None:
    server["uninitialised"] = False
    server["config"] = dict(preseed.get("config") or {})
    server["pools"] = [
        {"name": p["name"], "driver": p["driver"], "config": dict(p.get("config") or {})}
        for p in preseed.get("storage_pools") or []
    ]
    server["networks"] = {
        n["name"]: dict(n.get("config") or {}) for n in preseed.get("networks") or []
    }
    for profile in preseed.get("profiles") or []:
        key = f"default/{profile['name']}"
        server["profiles"].setdefault(key, {"description": "", "config": {}, "devices": {}})
        server["profiles"][key]["devices"] = dict(profile.get("devices") or {})


def main(argv: list[str]) -> int:
    import yaml

    from tests.fake_cli import exit_on_sigterm, logged_invocation
    from tests.fake_lxc.state import LOCAL, Store, home_dir

    exit_on_sigterm()
    home = home_dir()
    entry: dict[str, Any] = {
        "argv": ["lxd", *argv],
        "command": "lxd " + (argv[0] if argv else ""),
        "pid": os.getpid(),
        "start_mono": time.monotonic(),
        "start_wall": time.time(),
    }

    def body() -> int:
        if argv != ["init", "--preseed"]:
            sys.stderr.write(f'Error: unknown command "{" ".join(argv)}" for "lxd"\n')
            return 1
        text = sys.stdin.read()
        entry["stdin"] = text
        with Store(home).transaction() as root:
            apply_preseed(root["servers"][LOCAL], yaml.safe_load(text) or {})
        return 0

    return logged_invocation(home, entry, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
