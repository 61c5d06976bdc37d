"""KVM or TCG: KVM only when a probe boot with -accel kvm really runs the guest kernel."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Final

from tests.vmimage import Image

#: printed by the guest kernel early in every boot (the known point the probe must reach)
KNOWN_POINT: Final = b"Linux version"
PROBE_SECONDS: Final = 20.0
ENV: Final = "LABCTL_VM_ACCEL"  # kvm|tcg: skip the probe


def probe_accel(image: Image, log: Path) -> str:
    """ "kvm" if /dev/kvm boots the image's kernel to its banner within the bound, else "tcg"."""
    forced = os.environ.get(ENV)
    if forced in ("kvm", "tcg"):
        return forced
    if not Path("/dev/kvm").exists():
        return "tcg"
    argv = [
        "qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256",
        "-kernel",
        str(image.kernel),
        "-append",
        "console=ttyS0 panic=-1",
        "-serial",
        "stdio",
        "-display",
        "none",
        "-no-reboot",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + PROBE_SECONDS
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if KNOWN_POINT in log.read_bytes():
                    return "kvm"
                time.sleep(0.2)
            return "kvm" if KNOWN_POINT in log.read_bytes() else "tcg"
        finally:
            proc.kill()
            proc.wait(timeout=10)
