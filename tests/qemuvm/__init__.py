"""qemuvm: real VMs (qemu, TCG or KVM) for the fake multipass's `vm` backend.

The bridge and the cleanup are simvm's (tests/simvm: SimNetwork, cleanup_all): a TAP is named
like simvm's veths and qemu carries simvm's process tag.
"""

from __future__ import annotations

from .accel import probe_accel
from .machine import QemuVM

__all__ = ["QemuVM", "probe_accel"]
