"""A faithful fake of the ``multipass`` 1.16.3 CLI for labctl's test suite.

Run ``python tests/fake_multipass/main.py <args>`` (or the wrapper written by
:mod:`fixture`) exactly like the real ``multipass`` binary. See README.md.
"""

from __future__ import annotations
