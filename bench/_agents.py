"""Stand-in VMs for bench_status: the REAL status agent server (cloud-init/status_agent.py's
Agent, signatures and all) on every fake VM's loopback address, answering a canned report after
`latency` seconds, as the fake's `exec` does for labctl-vm-status.

    python bench/_agents.py LATENCY PORT REPORT_JSON IP=VM_KEY_HEX ...

One process for all the VMs (their CPU is the "VMs'" CPU, not labctl's). Loopback only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _agent_module() -> Any:
    loader = importlib.machinery.SourceFileLoader(
        "status_agent", str(ROOT / "cloud-init/status_agent.py")
    )
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    latency, port, report = float(argv[0]), int(argv[1]), argv[2]
    agent = _agent_module()

    class CannedVm:
        @staticmethod
        def cloud_init_status() -> dict[str, Any]:
            return dict(json.loads(report)["cloud_init"])

        @staticmethod
        def build_report(cloud_init: Any) -> dict[str, Any]:
            time.sleep(latency)  # what the in-VM checks take
            return {**json.loads(report), "cloud_init": cloud_init()}

    servers = []
    for pair in argv[3:]:
        ip, key = pair.split("=")
        if not ip.startswith("127."):
            raise SystemExit(f"loopback only, got {ip}")
        server = agent.Agent((ip, port), bytes.fromhex(key), agent.Reports(CannedVm))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print("ready", flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
