"""labctl: declarative Multipass web labs (Node apps under pm2 behind an nginx load balancer)."""

from __future__ import annotations

__version__ = "0.1.0"
