#!/usr/bin/python3
"""cloud-init shim for simvm: bind-mounted over /usr/bin/cloud-init inside a simulated VM.

`cloud-init status [--wait] [--long] [--format json|yaml|tabular]` reports like
cloud-init >= 23.4 (as on current Ubuntu images): status / extended_status, exit codes
0 = done, 1 = error, 2 = degraded (recoverable errors). The host's cloud-init (22.4.2 on
Debian 12) reads the same files but knows neither `degraded` nor exit code 2, hence this shim.
It reads the real files cloud-init writes: /run/cloud-init/status.json and result.json.
Every other subcommand (schema, --version, ...) runs the host's real cloud-init code.
Stdlib only, Python >= 3.10 (runs under the host's /usr/bin/python3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

RUN_DIR = "/run/cloud-init"
STATUS = os.path.join(RUN_DIR, "status.json")
RESULT = os.path.join(RUN_DIR, "result.json")
TABULAR_LONG = (
    "extended_status: {extended}\nboot_status_code: {boot}\n{last_update}detail: {detail}\n"
    "errors:{errors}\nrecoverable_errors:{recoverable}"
)


def details() -> dict[str, Any]:
    v1: dict[str, Any] = {}
    if os.path.exists(STATUS):
        try:
            with open(STATUS) as fh:
                v1 = json.load(fh).get("v1", {})
        except (OSError, ValueError):
            v1 = {}
    if os.path.exists(os.path.join(RUN_DIR, "enabled")):
        boot, boot_detail = (
            "enabled-by-generator",
            "Cloud-init enabled by systemd cloud-init-generator",
        )
    else:
        boot, boot_detail = "unknown", "Systemd generator may not have run yet."
    ds_text = v1.get("datasource") or ""
    detail = ds_text or (f"Running in stage: {v1['stage']}" if v1.get("stage") else boot_detail)
    latest = 0.0
    errors: list[str] = []
    recoverable: dict[str, list[str]] = {}
    for _key, stage in sorted(v1.items()):
        if isinstance(stage, dict):
            latest = max(latest, stage.get("start") or 0, stage.get("finished") or 0)
            errors.extend(stage.get("errors", []))
            for level, msgs in stage.get("recoverable_errors", {}).items():
                recoverable.setdefault(level, []).extend(msgs)
    if os.path.exists(STATUS) and not os.path.exists(RESULT):
        running = "running"
    elif latest > 0:
        running = "done"
    else:
        running = "not started"
    condition = "error" if errors else "degraded" if recoverable else "healthy"
    if condition == "error":
        status, extended = "error", f"error - {running}"
    elif condition == "degraded" and running in ("done", "running"):
        status, extended = running, f"degraded {running}"
    else:
        status = extended = running
    v1.pop("datasource", None)
    return {
        "datasource": ds_text.partition(" ")[0].lower().replace("datasource", ""),
        "boot_status_code": boot,
        "status": status,
        "extended_status": extended,
        "detail": detail,
        "errors": errors,
        "recoverable_errors": recoverable,
        "last_update": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(latest))
        if latest
        else "",
        **v1,
        "_running": running,
        "_condition": condition,
    }


def print_status(args: argparse.Namespace, info: dict[str, Any]) -> None:
    public = {k: v for k, v in info.items() if not k.startswith("_")}
    if args.format == "json":
        print(json.dumps(public, indent=2, sort_keys=True, separators=(",", ": ")))
        return
    if args.format == "yaml":
        for key in sorted(public):
            print(f"{key}: {json.dumps(public[key])}")
        return
    print(("\n" if args.wait else "") + f"status: {info['status']}")
    if args.long:
        errors = "\n\t- " + "\n\t- ".join(info["errors"]) if info["errors"] else " []"
        rec = info["recoverable_errors"]
        recoverable = (
            "\n"
            + "\n".join(
                f"{k}:\n\t- " + "\n\t- ".join(i.replace("\n", " ") for i in v)
                for k, v in rec.items()
            )
            if rec
            else " {}"
        )
        last = f"last_update: {info['last_update']}\n" if info["last_update"] else ""
        print(
            TABULAR_LONG.format(
                extended=info["extended_status"],
                boot=info["boot_status_code"],
                last_update=last,
                detail=info["detail"],
                errors=errors,
                recoverable=recoverable,
            )
        )


def status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cloud-init status")
    parser.add_argument("--format", choices=["json", "tabular", "yaml"], default="tabular")
    parser.add_argument("-l", "--long", action="store_true")
    parser.add_argument("-w", "--wait", action="store_true")
    args = parser.parse_args(argv)
    info = details()
    while args.wait and info["_running"] in ("not started", "running"):
        if args.format == "tabular":
            sys.stdout.write(".")
            sys.stdout.flush()
        time.sleep(0.25)
        info = details()
    print_status(args, info)
    return {"error": 1, "degraded": 2}.get(info["_condition"], 0)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "status":
        return status(argv[1:])
    code = "import sys; from cloudinit.cmd.main import main; sys.exit(main())"
    os.execv("/usr/bin/python3", ["/usr/bin/python3", "-c", code, *argv])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
