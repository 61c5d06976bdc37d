"""`labctl check --report DIR`: the report folder, which keeps every run.

    DIR/index.html                 every run, newest first (written by the CLI from the runs)
    DIR/runs/<time>/results.json   one run's results (screenshot paths relative to DIR)
    DIR/runs/<time>/<lab>/*.png    its screenshots

The folder is self-contained: move it, zip it or open it from a USB stick, and it still shows
everything (no network, no absolute paths).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Final

from labctl.errors import LabctlError
from labctl.safefs import PrivateDir, invoking_user, write_output

RUNS: Final = "runs"
RESULTS: Final = "results.json"
INDEX: Final = "index.html"


def new_report_run(directory: Path) -> Path:
    """A new run folder in the report (earlier runs are kept); asked before any check runs.

    DIR is the user's choice (made if missing); `DIR/runs` is labctl's: a real folder of a trusted
    owner that others cannot write (a link planted there is refused, never followed), and each
    run gets a new folder in it. Under sudo they belong to the user who ran sudo."""
    try:
        directory.resolve().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"cannot write the report into {directory}: {exc.strerror}") from None
    runs = PrivateDir.open(
        directory.resolve() / RUNS, create=True, keep_mode=True, label="the report's runs folder"
    )
    assert runs is not None  # create=True: made, or UnsafePathError
    with runs:
        _readable(runs.fd)  # the instructor's browser opens the report as the instructor
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name, suffix = stamp, 1
        while True:
            try:
                os.mkdir(name, 0o755, dir_fd=runs.fd)
                break
            except FileExistsError:
                suffix += 1
                name = f"{stamp}-{suffix}"
            except OSError as exc:
                raise LabctlError(
                    f"cannot write the report into {directory}: {exc.strerror}"
                ) from None
        run = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=runs.fd)
        try:
            _readable(run)
        finally:
            os.close(run)
        return runs.path / name


def save_run(directory: Path, run: Path, document: dict[str, Any]) -> None:
    """Save one run's results, its screenshot paths made relative to the report folder."""
    root = directory.resolve()
    for lab in document.get("labs", []):
        for check in lab.get("checks", []):
            for shot in check.get("screenshots", []):
                shot["file"] = _relative(root, shot["file"])
    _give_away(run)
    _write(run / RESULTS, json.dumps({**document, "run": run.name}, indent=2))


def _readable(fd: int) -> None:
    os.fchmod(fd, 0o755)
    owner = invoking_user()
    if owner is not None:
        os.fchown(fd, *owner)


def _give_away(run: Path) -> None:
    """Under sudo, the run's screenshots (written by the checks) to the user who ran sudo, so
    they can move or delete their report; links are not followed (there are none: labctl made
    every entry of this new folder)."""
    owner = invoking_user()
    if owner is None:
        return
    for folder, dirs, files in os.walk(run):
        for name in [*dirs, *files]:
            os.chown(Path(folder) / name, *owner, follow_symlinks=False)


def report_runs(directory: Path) -> list[dict[str, Any]]:
    """Every run saved in the report folder, newest first (unreadable ones left out)."""
    runs: list[dict[str, Any]] = []
    folder = directory / RUNS
    for run in sorted(folder.iterdir(), reverse=True) if folder.is_dir() else []:
        try:
            document = json.loads((run / RESULTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run interrupted before it was saved
        if isinstance(document, dict):
            runs.append(document)
    return runs


def write_index(directory: Path, html: str) -> Path:
    index = directory / INDEX
    _write(index, html)
    return index


def _relative(root: Path, file: str) -> str:
    try:
        return Path(file).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(file).resolve().as_uri()


def _write(path: Path, text: str) -> None:
    """Atomically (a browser refreshing the report never sees half a file); a link at `path` is
    replaced, not followed; under sudo the file is the invoking user's."""
    try:
        write_output(path, text.encode("utf-8"))
    except OSError as exc:
        raise LabctlError(f"cannot write {path}: {exc.strerror}") from None
