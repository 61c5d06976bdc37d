#!/usr/bin/python3
"""labctl-lb-apply: replace the lab's nginx site with the text on stdin, or change nothing.

Installed on the LB VM as /usr/local/sbin/labctl-lb-apply by cloud-init; labctl runs
`multipass exec LB -- sudo /usr/local/sbin/labctl-lb-apply` with the site on stdin.

- identical to the current site: prints `unchanged`, exit 0 (nginx untouched);
- otherwise backs the current site up (`<site>.bak`), writes the new one and runs `nginx -t`;
  on failure restores the old site, prints nginx's error on stderr and exits 1 without reloading;
  on success reloads nginx (starts it if inactive) and prints `applied`, exit 0.
Exit 2: bad input or setup (empty/oversized/non-UTF-8 stdin, unreadable config, nginx missing).
Exit 3: the site passed `nginx -t` and was kept, but the reload/start failed.

Paths come from /etc/labctl/config.json (`lb.site`); env LABCTL_CONFIG points elsewhere, and the
optional `lb.commands` override the nginx/systemctl argv (tests run it against a tmp nginx).
Python 3 standard library only: it runs on the stock Ubuntu image.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_BAD_INPUT = 2
EXIT_RELOAD_FAILED = 3
MAX_SITE_BYTES = 1_000_000
TIMEOUT = 60
DEFAULT_COMMANDS = {
    "test": ["nginx", "-q", "-t"],
    "is_active": ["systemctl", "is-active", "--quiet", "nginx"],
    "reload": ["systemctl", "reload", "nginx"],
    "start": ["systemctl", "start", "nginx"],
}


class ApplyError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_config(path: Path) -> tuple[Path, dict[str, list[str]]]:
    try:
        lb = json.loads(path.read_text(encoding="utf-8"))["lb"]
        site = Path(lb["site"])
        commands = {**DEFAULT_COMMANDS, **lb.get("commands", {})}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ApplyError(f"cannot read the LB settings in {path}: {exc!r}", EXIT_BAD_INPUT) from exc
    return site, commands


def read_site(data: bytes) -> bytes:
    if len(data) > MAX_SITE_BYTES:
        raise ApplyError(f"site is over {MAX_SITE_BYTES} bytes", EXIT_BAD_INPUT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApplyError(f"site is not UTF-8 text: {exc}", EXIT_BAD_INPUT) from exc
    if not text.strip():
        raise ApplyError("no site on stdin", EXIT_BAD_INPUT)
    return data


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.labctl-tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {exc}")


def apply(site: Path, new: bytes, commands: dict[str, list[str]]) -> str:
    old = site.read_bytes() if site.exists() else None
    if old == new:
        return "unchanged"
    if old is not None:
        write_atomically(site.with_name(site.name + ".bak"), old)
    write_atomically(site, new)
    test = run(commands["test"])
    if test.returncode != 0:
        # Put the old site back before anything can reload nginx with the broken one.
        if old is not None:
            write_atomically(site, old)
        else:
            site.unlink()
        message = (test.stderr or test.stdout).strip() or f"nginx -t failed (rc {test.returncode})"
        raise ApplyError(message, EXIT_REJECTED)
    active = run(commands["is_active"]).returncode == 0
    verb = "reload" if active else "start"
    done = run(commands[verb])
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"rc {done.returncode}"
        raise ApplyError(
            f"site kept (it passed nginx -t) but nginx {verb} failed: {message}",
            EXIT_RELOAD_FAILED,
        )
    return "applied"


def main() -> int:
    try:
        site, commands = load_config(
            Path(os.environ.get("LABCTL_CONFIG", "/etc/labctl/config.json"))
        )
        new = read_site(sys.stdin.buffer.read(MAX_SITE_BYTES + 1))
        site.parent.mkdir(parents=True, exist_ok=True)
        # One apply at a time: two concurrent `labctl up` must not interleave backup and restore.
        with site.with_name(".labctl-lb-apply.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            outcome = apply(site, new, commands)
    except ApplyError as exc:
        sys.stderr.write(f"labctl-lb-apply: {exc}\n")
        return exc.code
    except OSError as exc:
        sys.stderr.write(f"labctl-lb-apply: {exc}\n")
        return EXIT_BAD_INPUT
    sys.stdout.write(outcome + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
