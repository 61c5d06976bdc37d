"""One `labctl check` run's browser: the shared headless browser (one for a whole class) and the
folder that run's screenshots go to, one folder per run so earlier runs stay readable.

Without `--report`, runs go under the lab's state dir (`.labctl/<lab>/screenshots/<run>/`) and
the newest `KEPT_RUNS` are kept; with `--report DIR`, under `DIR/runs/<run>/`, all kept (the
instructor's folder, ops/report.py). A run folder is always new (made by labctl, never reused).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from labctl.host.browser.shared import SharedBrowser
from labctl.host.state import LabState

KEPT_RUNS: Final = 10
SCREENSHOTS: Final = "screenshots"


@dataclass(frozen=True)
class BrowserRun:
    shared: SharedBrowser
    shots: Path  # this run's folder; each lab's screenshots in <shots>/<lab>/


def new_run_dir(parent: Path, *, keep: int | None = KEPT_RUNS, now: float | None = None) -> Path:
    """A new folder for one run under `parent`, named by its local time (sortable); with `keep`,
    older run folders beyond the newest `keep` are deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    run = parent / stamp
    suffix = 1
    while True:
        try:
            run.mkdir(mode=0o755)
            break
        except FileExistsError:
            suffix += 1
            run = parent / f"{stamp}-{suffix}"
    if keep is not None:
        runs = sorted(p for p in parent.iterdir() if p.is_dir() and p.name[:1].isdigit())
        for old in runs[:-keep] if len(runs) > keep else []:
            shutil.rmtree(old, ignore_errors=True)
    return run


def state_run_dir(state: LabState) -> Path:
    """A new run folder in the lab's state dir, which is checked first (a private folder of a
    trusted owner: nobody else can put a link where the screenshots go); the newest
    `KEPT_RUNS` runs are kept."""
    with state.files(create=True) as own:
        assert own is not None  # create=True: made, or UnsafePathError
        screenshots = own.subdir(SCREENSHOTS, create=True, label="the screenshots folder")
        assert screenshots is not None
        screenshots.close()
    return new_run_dir(state.directory / SCREENSHOTS)


@contextlib.contextmanager
def browser_run(labs: Iterable[str], shots: Path) -> Iterator[BrowserRun]:
    """The browser for `labs` (their names; it starts lazily, once they asked) and `shots`;
    closed, its whole process tree killed, on the way out (also on an error or Ctrl-C)."""
    with SharedBrowser(labs) as shared:
        yield BrowserRun(shared, shots)
