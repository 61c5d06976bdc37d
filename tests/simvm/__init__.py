"""simvm: simulated Ubuntu cloud VMs on one Linux host (network + mount namespaces).

Used by the fake `multipass` of labctl's test suite so that real rendered cloud-init,
real nginx, Node and pm2 run and talk over real TCP between simulated VMs.
See README.md for what is real, what is shimmed and the known gaps.
"""

from __future__ import annotations

from ._proc import CloudInitTimeout, SimError
from .cleanup import cleanup_all
from .cloudinit import CloudInitResult
from .network import SimNetwork
from .vm import ExecTimeout, SimVM

__all__ = [
    "CloudInitResult",
    "CloudInitTimeout",
    "ExecTimeout",
    "SimError",
    "SimNetwork",
    "SimVM",
    "cleanup_all",
]
