"""Guest-side emulation for the plain backend: cloud-init status, its log, the file table."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import time
from email.utils import formatdate
from typing import Any, BinaryIO

Instance = dict[str, Any]

CLOUD_INIT_VERSION = "25.2-0ubuntu1~24.04.1"
DETAIL = "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]"
OUTPUT_LOG = "/var/log/cloud-init-output.log"
BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished"
ERROR_TEXT = (
    "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
)
WARNING_TEXT = "Failed at merging in cloud config part from p-01: empty cloud config"


def ci_phase(inst: Instance, now: float | None = None) -> str:
    """ "running" until boot-finished is written, then the final result."""
    ci = inst.get("cloud_init") or {}
    done_at = ci.get("done_at")
    now = time.time() if now is None else now
    if done_at is None or now < float(done_at):
        return "running"
    return str(ci.get("result", "done"))


def _wait(inst: Instance, out: BinaryIO) -> None:
    """``--wait``: print a dot every 0.25 s while running (cloud-init's own behaviour)."""
    dotted = False
    while ci_phase(inst) == "running":
        out.write(b".")
        out.flush()
        dotted = True
        time.sleep(0.25)
    if dotted:
        out.write(b"\n")


def cloud_init_status(inst: Instance, args: list[str], out: BinaryIO, err: BinaryIO) -> int:
    wait = "--wait" in args or "-w" in args
    long = "--long" in args or "-l" in args
    fmt = "tabular"
    for i, arg in enumerate(args):
        if arg == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
    if wait:
        _wait(inst, out)
    phase = ci_phase(inst)
    status = {"running": "running", "done": "done", "degraded": "done", "error": "error"}[phase]
    extended = {
        "running": "running",
        "done": "done",
        "degraded": "degraded done",
        "error": "error - done",
    }[phase]
    errors = [ERROR_TEXT] if phase == "error" else []
    recoverable = {"WARNING": [WARNING_TEXT]} if phase == "degraded" else {}
    ci = inst.get("cloud_init") or {}
    stamp = float(ci.get("done_at") or ci.get("started_at") or time.time())
    last_update = formatdate(stamp, usegmt=False).replace("-0000", "+0000")
    if fmt == "json":
        stage_names = ("init", "init-local", "modules-config", "modules-final")
        doc: dict[str, Any] = {
            "boot_status_code": "enabled-by-generator",
            "datasource": "nocloud",
            "detail": DETAIL,
            "errors": errors,
            "extended_status": extended,
            "last_update": last_update,
            "recoverable_errors": recoverable,
            "stage": "modules-final" if phase == "running" else None,
            "status": status,
        }
        for stage in stage_names:
            doc[stage] = {"errors": [], "finished": stamp, "recoverable_errors": {}, "start": stamp}
        if phase == "error":
            doc["modules-final"]["errors"] = errors
        out.write((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    elif long:
        lines = [
            f"status: {status}",
            f"extended_status: {extended}",
            "boot_status_code: enabled-by-generator",
            f"last_update: {last_update}",
            f"detail: {DETAIL}",
        ]
        lines += ["errors:", *(f"\t- {e}" for e in errors)] if errors else ["errors: []"]
        if recoverable:
            lines += ["recoverable_errors:", "WARNING:", f"\t- {WARNING_TEXT}"]
        else:
            lines.append("recoverable_errors: {}")
        out.write(("\n".join(lines) + "\n").encode())
    else:
        out.write(f"status: {status}\n".encode())
    return {"running": 0, "done": 0, "degraded": 2, "error": 1}[phase]


def output_log(inst: Instance) -> str:
    phase = ci_phase(inst)
    ci = inst.get("cloud_init") or {}
    start = float(ci.get("started_at") or time.time())
    when = formatdate(start).replace("-0000", "+0000")
    head = f"Cloud-init v. {CLOUD_INIT_VERSION} running"
    lines = [
        f"{head} 'init-local' at {when}. Up 4.51 seconds.",
        f"{head} 'init' at {when}. Up 5.80 seconds.",
        f"{head} 'modules:config' at {when}. Up 8.02 seconds.",
        f"{head} 'modules:final' at {when}. Up 9.13 seconds.",
    ]
    if phase == "running":
        return "\n".join(lines) + "\n"
    runcmd = (inst.get("user_data") or {}).get("runcmd") or []
    if phase == "error":
        first = runcmd[0] if runcmd else "false"
        word = (first if isinstance(first, str) else str(first[0])).split()[0]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime(start))
        lines += [
            f"/var/lib/cloud/instance/scripts/runcmd: line 2: {word}: command not found",
            f"{stamp} - cc_scripts_user.py[WARNING]: Failed to run module scripts_user "
            "(scripts in /var/lib/cloud/instance/scripts)",
            f"{stamp} - log_util.py[WARNING]: Running module scripts_user (<module "
            "'cloudinit.config.cc_scripts_user' from '/usr/lib/python3/dist-packages/cloudinit/"
            "config/cc_scripts_user.py'>) failed",
        ]
    elif phase == "degraded":
        lines.append(f"{WARNING_TEXT}")
    lines.append(f"{head[:-8]} finished at {when}. Datasource {DETAIL}.  Up 20.47 seconds")
    return "\n".join(lines) + "\n"


def _decode(entry: dict[str, Any]) -> bytes:
    content = entry.get("content", "")
    raw = content.encode() if isinstance(content, str) else bytes(content or b"")
    encoding = str(entry.get("encoding", "text")).lower()
    try:
        if encoding in ("b64", "base64"):
            return base64.b64decode(raw)
        if encoding in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
            return gzip.decompress(base64.b64decode(raw))
        if encoding in ("gz", "gzip"):
            return gzip.decompress(raw)
    except (binascii.Error, OSError):
        return raw
    return raw


def files_from_user_data(user_data: dict[str, Any] | None) -> dict[str, bytes]:
    """The files that ``write_files`` of the user-data would create."""
    result: dict[str, bytes] = {}
    for entry in (user_data or {}).get("write_files") or []:
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        path = str(entry["path"])
        data = _decode(entry)
        if entry.get("append") and path in result:
            data = result[path] + data
        result[path] = data
    return result
