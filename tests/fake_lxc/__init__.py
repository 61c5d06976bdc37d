"""A fake `lxc` (LXD 5.0.2's client) for labctl's tests; see README.md."""

from __future__ import annotations
