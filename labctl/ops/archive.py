"""A `source: path` app, packed into the user-data as a gzipped tar (no mounts needed)."""

from __future__ import annotations

import io
import tarfile
from typing import Final

from labctl.config.files import FileRefusedError, read_limited
from labctl.config.load import LabFile
from labctl.config.sources import MAX_SOURCE_BYTES, walk_source
from labctl.errors import ConfigError

MAX_ARCHIVE_BYTES: Final = 8 * 1024 * 1024


def app_archive(lab_file: LabFile) -> bytes | None:
    """A `source: path` app travels inside the user-data as a gzipped tar (no mounts needed).

    Exactly what `walk_source` allows is packed (config/sources.py: confined, no private files,
    links kept as links); each file is opened without following links and read with a limit.
    """
    src = lab_file.lab.app.source
    if src.path is None:
        return None
    walk = walk_source(lab_file.base_dir, src.path, src.include_private)
    where = ("app", "source", "path")
    if walk.problems:
        raise ConfigError([lab_file.problem(where, problem) for problem in walk.problems])
    buffer = io.BytesIO()
    left = MAX_SOURCE_BYTES
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in walk.entries:
            info = tarfile.TarInfo(f"./{entry.relative}" if entry.relative else ".")
            info.mtime = 0  # the same folder packs to the same bytes
            content = None
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif entry.kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
            else:
                full = walk.root / entry.relative
                try:
                    data = read_limited(full, left, what="an app file", follow_symlinks=False)
                    executable = full.lstat().st_mode & 0o100
                except (FileRefusedError, OSError) as exc:
                    why = exc.message if isinstance(exc, FileRefusedError) else exc.strerror
                    raise ConfigError(
                        [lab_file.problem(where, f"cannot pack {entry.relative!r}: {why}")]
                    ) from None
                left -= len(data)
                info.size, info.mode = len(data), 0o755 if executable else 0o644
                content = io.BytesIO(data)
            tar.addfile(info, content)
    data = buffer.getvalue()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ConfigError(
            [
                lab_file.problem(
                    where,
                    f"{walk.root} packs to {len(data) // 1024} KiB; over "
                    f"{MAX_ARCHIVE_BYTES // 1024 // 1024} MiB does not fit in cloud-init "
                    "user-data (use a git source instead)",
                )
            ]
        )
    return data
