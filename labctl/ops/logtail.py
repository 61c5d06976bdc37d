"""While `up` waits for a VM's cloud-init, show the last line of its output log as it changes.

`cloud-init status --wait` prints nothing useful for up to waits.cloud_init (30 min by default),
so a user cannot tell `npm ci` running from a hung VM. A background thread reads
/var/log/cloud-init-output.log's last line through the engine's exec every LOG_TAIL_INTERVAL
seconds (each read bounded by LOG_TAIL_TIMEOUT) and emits it as a `log` Event when it changed.
A read that fails is skipped: the tail is a courtesy, never a reason for `up` to fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from labctl.errors import LabctlError
from labctl.model import Vm
from labctl.ops.context import LabContext
from labctl.render.userdata import CLOUD_INIT_LOG_COMMAND

LOG_TAIL_INTERVAL: Final = 3.0  # seconds between reads: one short exec per VM, modest on the daemon
LOG_TAIL_TIMEOUT: Final = 10.0  # one read never blocks longer than this
MAX_LINE: Final = 200  # characters kept of a line (a progress bar can be one huge line)


def last_line(text: str) -> str:
    """The last non-blank line, with carriage-return redraws (npm, apt progress) resolved."""
    for line in reversed(text.splitlines()):
        shown = line.rsplit("\r", 1)[-1].strip()
        if shown:
            return shown[:MAX_LINE]
    return ""


@contextmanager
def tail_cloud_init_log(
    ctx: LabContext, vm: Vm, *, stage: str = "cloud-init", interval: float = LOG_TAIL_INTERVAL
) -> Iterator[None]:
    """Emit (stage, "log", line) for `vm` while the block runs (launch or the cloud-init wait)."""
    stop = threading.Event()
    name = ctx.instance(vm)

    def follow() -> None:
        shown = ""
        while not stop.wait(interval):
            try:
                result = ctx.engine.exec(name, CLOUD_INIT_LOG_COMMAND(1), timeout=LOG_TAIL_TIMEOUT)
            except LabctlError:
                continue  # a timeout or a busy daemon: try again next time
            line = last_line(result.stdout) if result.returncode == 0 else ""
            if line and line != shown and not stop.is_set():
                shown = line
                ctx.emit(stage, "log", line, vm=vm.name)

    thread = threading.Thread(target=follow, name=f"log-{vm.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
