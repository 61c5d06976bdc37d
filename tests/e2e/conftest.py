from __future__ import annotations

from tests.e2e.harness import sim_lab  # noqa: F401  (a fixture for every e2e test)
