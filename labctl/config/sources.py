"""Rules for where an app comes from: git transports, and the `source: path` folder walk.

The walk is the one place that decides what leaves the host: `validate` reports its problems and
`up`/`render` pack exactly the entries it returns (ops/archive.py app_archive). The folder must resolve
(symlinks followed) inside lab.yaml's folder; symlinks in it must stay inside it (they travel as
links, never followed); private files (keys, .env, credentials) stay home unless
`app.source.include_private` names them; the size is counted while walking, against a limit.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from labctl.config.files import kind_of
from labctl.config.yamlpos import Path_
from labctl.config.yamlscalars import cut
from labctl.model import App

MIB: Final = 1024 * 1024
MAX_SOURCE_BYTES: Final = 64 * MIB  # before compression; the packed app must also fit user-data
MAX_SOURCE_ENTRIES: Final = 20_000
SKIP_DIRS: Final = frozenset({"node_modules", ".git", ".labctl", "__pycache__"})
# Never needed to run an app, and what an attacker would want from an instructor's laptop.
PRIVATE_FILES: Final = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_ecdsa_sk",
    "id_ed25519_sk",
    ".npmrc",
    ".yarnrc.yml",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".htpasswd",
)
PRIVATE_DIRS: Final = frozenset({".ssh", ".gnupg", ".aws", ".docker", ".kube"})
_PUBLIC_ENV: Final = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})

# Git transports a lab needs (git-scm.com/docs/git-clone "GIT URLS"): https, ssh with a host,
# git://, and local paths on the VM (tests). `<transport>::<address>` runs a remote helper (`ext::`
# runs any command, `fd::` talks over file descriptors); an option-like host becomes an ssh option
# (CVE-2017-1000117: `ssh://-oProxyCommand=...`).
_GIT_SCHEMES: Final = ("https", "ssh", "git+ssh", "ssh+git", "git", "file")
_GIT_HOST_RE: Final = re.compile(
    r"^(?:[A-Za-z0-9_.~-]+@)?(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])$"
)
_GIT_URL_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$")
_SCP_LIKE_RE: Final = re.compile(r"^([^/:]+):(?!//)(.*)$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")  # NUL, newlines, ESC: never part of an app's path
MAX_START_PATH: Final = 1000


def git_url_problem(url: str) -> str | None:
    """Which transport rule refuses `url`, or None."""
    if "::" in url.split("/", 1)[0]:
        helper = url.split("::", 1)[0]
        does = "runs any command" if helper == "ext" else "is not a network transport"
        return (
            f"'{helper}::' is a git remote helper that {does}; use https://, ssh://, git:// "
            "or a path"
        )
    if match := _GIT_URL_RE.match(url):
        scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3)
        if scheme not in _GIT_SCHEMES:
            return f"transport {scheme}:// is not allowed (use https://, ssh://, git:// or a path)"
        if scheme == "file":
            if authority or not rest.startswith("/"):
                return "a file:// URL must be an absolute path (file:///srv/repo.git)"
            return None
        host = authority if authority.endswith("]") else authority.rsplit(":", 1)[0]
        if not _git_host_ok(host):
            return f"{scheme}:// needs a host name (and no option-like user or host)"
        return None
    if url.startswith(("/", "./", "../")):
        return None  # a path on the VM (tests use local repositories)
    if match := _SCP_LIKE_RE.match(url):
        if not _git_host_ok(match.group(1)):
            return "an ssh address needs a host name (user@host:path; no option-like user or host)"
        return None
    return 'not a URL git can clone over a network (like "https://github.com/owner/repo")'


def _git_host_ok(host: str) -> bool:
    # `[user@]host`; neither part may start with "-" (it would reach ssh as an option)
    return bool(_GIT_HOST_RE.fullmatch(host)) and not any(
        p.startswith("-") for p in host.split("@")
    )


@dataclass(frozen=True)
class SourceEntry:
    relative: str  # posix path inside the folder; "" is the folder itself
    kind: Literal["dir", "file", "link"]
    target: str = ""  # a link's target, relative and inside the folder
    size: int = 0


@dataclass(frozen=True)
class SourceWalk:
    root: Path
    entries: tuple[SourceEntry, ...] = ()
    total_bytes: int = 0
    left_home: tuple[str, ...] = ()  # private files not packed
    not_files: tuple[str, ...] = ()  # FIFOs, sockets, devices: never read, never packed
    problems: tuple[str, ...] = ()  # messages for app.source.path

    def has(self, relative: str, kind: str) -> bool:
        inner = PurePosixPath(relative.strip("/") or ".").as_posix()
        inner = "" if inner == "." else inner
        return any(e.relative == inner and e.kind == kind for e in self.entries)


def is_private(relative: str, include: Sequence[str]) -> bool:
    """A file or folder that stays home unless `include` (fnmatch patterns) names it."""
    name = relative.rsplit("/", 1)[-1]
    private = name in PRIVATE_DIRS or (
        name not in _PUBLIC_ENV and any(fnmatch.fnmatchcase(name, p) for p in PRIVATE_FILES)
    )
    return private and not any(
        fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in include
    )


def source_dir_problem(base_dir: Path | None, raw: str) -> str | None:
    """Why `source.path` is not a folder labctl can walk (its text; with `base_dir`, the folder
    too), or None. Never raises: a name too long, a folder without permission or a control
    character is a problem of the field."""
    if _CONTROL.search(raw):
        return f"{cut(raw)!r} contains a control character; a path has none"
    if not raw or len(raw) > MAX_START_PATH:
        return f"{cut(raw)!r} is not a folder path"
    if base_dir is None:
        return None
    try:
        mode = (base_dir / raw).stat().st_mode
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"{cut(raw)!r}: {exc.strerror or 'cannot be read'}"
        mode = 0
    if not stat.S_ISDIR(mode):
        return f"{raw!r} is not a directory (relative paths start at lab.yaml's folder)"
    return None


def walk_source(base_dir: Path, raw: str, include: Sequence[str] = ()) -> SourceWalk:
    """What a `source: path` app would pack, or the problems that refuse it."""
    base = base_dir.resolve()
    problem = source_dir_problem(base_dir, raw)
    if problem is not None:
        return SourceWalk(base_dir / raw, problems=(problem,))
    root = (base_dir / raw).resolve()
    if root != base and base not in root.parents:
        return SourceWalk(
            root,
            problems=(
                f"{raw!r} resolves to {root}, outside lab.yaml's folder {base}; the app must be "
                "inside that folder (symlinks are followed)",
            ),
        )
    return _Walker(root, include).walk()


@dataclass
class _Walker:
    root: Path
    include: Sequence[str]
    entries: list[SourceEntry] = field(default_factory=list)
    total: int = 0
    left_home: list[str] = field(default_factory=list)
    not_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def walk(self) -> SourceWalk:
        self.entries.append(SourceEntry("", "dir"))
        pending = [""]
        while pending and not self._full():
            self._directory(pending.pop(), pending)
        return SourceWalk(
            self.root,
            tuple(self.entries),
            self.total,
            tuple(self.left_home),
            tuple(self.not_files),
            tuple(self.problems),
        )

    def _full(self) -> bool:
        if self.total > MAX_SOURCE_BYTES:
            self.problems.append(
                f"holds more than {MAX_SOURCE_BYTES // MIB} MiB of files (stopped counting); an "
                "app packed into user-data must be smaller: leave build output out, or use a "
                "git source (node_modules and .git are never packed)"
            )
            return True
        if len(self.entries) > MAX_SOURCE_ENTRIES:
            self.problems.append(
                f"holds more than {MAX_SOURCE_ENTRIES} files and folders (stopped counting); "
                "use a git source"
            )
            return True
        return False

    def _directory(self, relative: str, pending: list[str]) -> None:
        here = self.root / relative if relative else self.root
        try:
            with os.scandir(here) as listing:
                names = sorted(entry.name for entry in listing)
        except OSError as exc:
            self.problems.append(f"cannot read folder {relative or '.'!r}: {exc.strerror or exc}")
            return
        for name in names:
            child = f"{relative}/{name}" if relative else name
            if self._full():
                return
            self._entry(child, pending)

    def _entry(self, child: str, pending: list[str]) -> None:
        name = child.rsplit("/", 1)[-1]
        full = self.root / child
        try:
            info = full.lstat()
        except OSError as exc:
            self.problems.append(f"cannot read {child!r}: {exc.strerror or exc}")
            return
        mode = info.st_mode
        if stat.S_ISDIR(mode) and name in SKIP_DIRS:
            return
        if is_private(child, self.include):
            self.left_home.append(child)
            return
        if stat.S_ISLNK(mode):
            self._link(child, full)
        elif stat.S_ISDIR(mode):
            self.entries.append(SourceEntry(child, "dir"))
            pending.append(child)
        elif stat.S_ISREG(mode):
            if info.st_nlink > 1:
                self.problems.append(
                    f"{child!r} is a hard link ({info.st_nlink} names for one file); labctl packs "
                    "only files that live in the app folder: copy it instead"
                )
                return
            if not os.access(full, os.R_OK):
                self.problems.append(f"cannot read {child!r}: permission denied")
                return
            self.entries.append(SourceEntry(child, "file", size=info.st_size))
            self.total += info.st_size
        else:
            self.not_files.append(f"{child} ({kind_of(mode)})")

    def _link(self, child: str, full: Path) -> None:
        try:
            target = str(full.readlink())
        except OSError as exc:
            self.problems.append(f"cannot read link {child!r}: {exc.strerror or exc}")
            return
        resolved = Path(os.path.realpath(full))
        if resolved != self.root and self.root not in resolved.parents:
            self.problems.append(
                f"{child!r} is a symlink to {target!r}, outside the app folder; labctl never "
                "follows it (copy what the app needs into the folder, or remove the link)"
            )
            return
        parent = (self.root / child).parent
        relative = os.path.relpath(resolved, parent)
        self.entries.append(SourceEntry(child, "link", target=PurePosixPath(relative).as_posix()))


def start_path_problem(key: Literal["script", "serve"], value: str) -> str | None:
    """Why `start.script` / `start.serve` cannot be that path, whatever the source: it must stay
    inside the app's folder, and a script must name a file (pm2 would run the folder)."""
    parts = value.split("/")
    if _CONTROL.search(value):
        return f"{cut(value)!r} contains a control character; a path has none"
    if not value or value.startswith("/") or ".." in parts or len(value) > MAX_START_PATH:
        return f"{cut(value, 100)!r} must be a path inside the app's folder"
    if key == "script" and parts[-1] in ("", "."):
        return f"{value!r} names a folder; script: names the Node file pm2 runs (like server.js)"
    return None


def start_problems(walk: SourceWalk, app: App) -> list[tuple[Path_, str]]:
    """`start.script` must be a file and `start.serve` a folder of what gets packed; unless
    `app.build` runs first on the VM (it may make them), they must also exist."""
    start = app.start
    if start is None or walk.problems:
        return []
    found: list[tuple[Path_, str]] = []
    for key, value, kind in (("script", start.script, "file"), ("serve", start.serve, "dir")):
        other = "dir" if kind == "file" else "file"
        # a folder where a file belongs (or the reverse): no build turns one into the other
        if value is not None and walk.has(value, other):
            found.append(
                (
                    ("app", "start", key),
                    f"{value!r} is a {'folder' if other == 'dir' else 'file'} in app.source.path; "
                    + ("script: names a Node file" if key == "script" else "serve: names a folder"),
                )
            )
        elif value is not None and app.build is None and not walk.has(value, kind):
            what = "a file" if kind == "file" else "a folder"
            found.append(
                (
                    ("app", "start", key),
                    f"{value!r} is not {what} in app.source.path (or it is left out as "
                    "private), and no app.build makes it",
                )
            )
    return found
