"""Validation of a class lab (`class:`, the roster file) and of `hosts:`; called by `load.py`.

A class is a fan-out of per-student labs, so every per-student name must be valid on its own
(instance names, domains) and unique across the class (two students must never share an instance,
a domain or an alias). Roster-file problems are reported as `roster.csv:LINE: message`, lab.yaml
problems as `lab.yaml:LINE:COL: field.path: message` (through `where`).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from labctl.config.files import FileRefusedError, read_limited
from labctl.config.yamlpos import Path_
from labctl.model import ClassRoster, Lab
from labctl.scalars import (
    CLASS_TEMPLATE_DOMAIN,
    LXD_NAME_RE,
    MAX_INSTANCE_NAME,
    MAX_STUDENTS,
    NAME_RE,
    STUDENT_FIELD,
    _domain,
)

MAX_ROSTER_BYTES: Final = 1024 * 1024
# A roster may be any file (a typo, a link): messages quote a value cut short, and only so many.
MAX_QUOTED: Final = 100  # characters of one value
MAX_QUOTED_BAD: Final = 40  # of a line that is not a name at all (it may be anything)
MAX_BAD_NAMES: Final = 10  # invalid names quoted; the rest are counted
_HEADERS: Final = {"student", "students", "name", "username", "user", "login"}

Where = Callable[[Path_, str], str]  # (field path, message) -> one lab.yaml problem line


@dataclass(frozen=True)
class _Entry:
    name: str
    at: str  # "class.students[2]" or "roster.csv:LINE"
    report: Callable[[str], str]  # message -> a full problem line


def check_class(
    lab: Lab, shown: str, base_dir: Path, where: Where, *, named_by: int | None = None
) -> tuple[Lab, list[str]]:
    """Read the roster file (if any) into `class.students` and check the class and the hosts.

    Returns the lab with its students filled in, and the problems (full lines). `named_by`:
    lab.yaml's owner, who must be able to read the roster themselves (labctl may be root).
    """
    problems = _check_hosts(lab, where)
    roster = lab.class_
    if roster is None:
        return lab, problems
    if lab.domain != CLASS_TEMPLATE_DOMAIN:
        problems.append(
            where(
                ("domain",),
                'a class lab takes each student\'s domain from class.domain (like "{student}.xyz"); '
                "remove this one",
            )
        )
    if lab.aliases:
        problems.append(
            where(("aliases",), "a class lab takes its aliases from class.aliases; move them there")
        )
    entries: list[_Entry] = []
    if (roster.students is None) == (roster.roster is None):
        problems.append(
            where(
                ("class",),
                "give the students either inline (students: [alice, bob]) or as a file "
                "(roster: students.csv), not "
                + ("both" if roster.students is not None else "neither"),
            )
        )
    elif roster.students is not None:
        entries = [
            _Entry(
                name,
                f"class.students[{i}]",
                functools.partial(where, ("class", "students", i)),
            )
            for i, name in enumerate(roster.students)
        ]
    else:
        assert roster.roster is not None
        entries, found = _read_roster(roster.roster, shown, base_dir, where, named_by)
        problems += found
        if not entries and not found:
            problems.append(where(("class", "roster"), f"{roster.roster!r} lists no students"))
    if roster.students == []:
        problems.append(where(("class", "students"), "the class has no students"))
    if len(entries) > MAX_STUDENTS:
        problems.append(
            where(("class",), f"{len(entries)} students; at most {MAX_STUDENTS} in one class")
        )
        entries = entries[:MAX_STUDENTS]
    pattern_problems = _check_patterns(roster, where)
    problems += _check_projects(lab, [e.name for e in entries], where)
    problems += pattern_problems + _check_students(lab, roster, entries, not pattern_problems)
    filled = roster.model_copy(update={"students": [e.name for e in entries]})
    return lab.model_copy(update={"class_": filled}), problems


def _check_projects(lab: Lab, students: list[str], where: Where) -> list[str]:
    """Each student's own LXD project (`{student}` in engine.project) must be a valid name: the
    first one that is not is reported (they all share the template's line)."""
    engine = lab.engine
    if engine is None or not engine.per_student_project:
        return []
    for student in students:
        if not NAME_RE.fullmatch(student):
            continue  # reported as a bad student name
        project = engine.project_for(student)
        if not LXD_NAME_RE.fullmatch(project):
            return [
                where(
                    ("engine", "project"),
                    f"student {_quoted(student)}'s project {_quoted(project)} is not a valid LXD "
                    "project name (letters, digits, '.', '_', '-'; at most 63 characters): "
                    "shorten the template",
                )
            ]
    return []


def _check_patterns(roster: ClassRoster, where: Where) -> list[str]:
    found: list[str] = []
    for path, pattern in [
        (("class", "domain"), roster.domain),
        *((("class", "aliases", i), a) for i, a in enumerate(roster.aliases)),
    ]:
        if STUDENT_FIELD not in pattern:
            found.append(
                where(
                    path,
                    f"{pattern!r} must contain {STUDENT_FIELD} (each student needs their own "
                    'domain, like "{student}.xyz")',
                )
            )
        elif "{" in pattern.replace(STUDENT_FIELD, "") or "}" in pattern.replace(STUDENT_FIELD, ""):
            found.append(where(path, f"{pattern!r}: only {STUDENT_FIELD} is replaced"))
    return found


def _check_students(
    lab: Lab, roster: ClassRoster, entries: list[_Entry], check_domains: bool
) -> list[str]:
    found: list[str] = []
    names: dict[str, _Entry] = {}
    instances: dict[str, _Entry] = {}
    domains: dict[str, tuple[_Entry, str]] = {}  # server name -> (student, "domain" | "an alias")
    longest = max(lab.vms, key=lambda vm: len(vm.name))
    bad: list[_Entry] = []
    for entry in entries:
        if not NAME_RE.fullmatch(entry.name):
            bad.append(entry)
            if len(bad) <= MAX_BAD_NAMES:
                found.append(
                    entry.report(
                        f"{_quoted(entry.name, MAX_QUOTED_BAD)} is not a valid student name: use "
                        "letters, digits and hyphens, start with a letter and end with a letter or "
                        "digit (it becomes part of instance names)"
                    )
                )
            continue
        key = entry.name.lower()
        if key in names:
            same = "" if names[key].name == entry.name else f" {_quoted(names[key].name)}"
            found.append(
                entry.report(
                    f"duplicate student {_quoted(entry.name)} (also{same} at {names[key].at}; "
                    "names are compared ignoring case)"
                )
            )
            continue
        names[key] = entry
        instance = f"{lab.name}-{entry.name}-{longest.name}"
        if len(instance) > MAX_INSTANCE_NAME:
            found.append(
                entry.report(
                    f"instance name {_quoted(instance)} (<lab>-<student>-<vm>) is longer than "
                    f"{MAX_INSTANCE_NAME} characters; use a shorter student or lab name"
                )
            )
            continue
        for vm in lab.vms:
            name = f"{lab.name}-{entry.name}-{vm.name}".lower()
            other = instances.get(name)
            if other is not None:
                found.append(
                    entry.report(
                        f"instance {_quoted(name)} of student {_quoted(entry.name)} is also an "
                        f"instance of student {_quoted(other.name)} ({other.at}); rename one of them"
                    )
                )
            instances.setdefault(name, entry)
        own = [("domain", roster.domain_for(entry.name))] if check_domains else []
        own += [("an alias", a) for a in roster.aliases_for(entry.name) if check_domains]
        for kind, server_name in own:
            try:
                _domain(server_name)
            except ValueError:
                found.append(
                    entry.report(
                        f"{kind.removeprefix('an ')} {_quoted(server_name)} of student "
                        f'{_quoted(entry.name)} is not a valid domain name (like "alice.xyz")'
                    )
                )
                continue
            claimed = domains.get(server_name)
            if claimed is not None and claimed[0] is not entry:
                found.append(
                    entry.report(
                        f"{kind} {_quoted(server_name)} of student {_quoted(entry.name)} is also "
                        f"{'the domain' if claimed[1] == 'domain' else 'an alias'} of student "
                        f"{_quoted(claimed[0].name)} ({claimed[0].at})"
                    )
                )
            domains.setdefault(server_name, (entry, kind))
    if len(bad) > MAX_BAD_NAMES:
        found.append(
            bad[MAX_BAD_NAMES].report(
                f"and {len(bad) - MAX_BAD_NAMES} more entries from here on that are not valid "
                "student names (not quoted)"
            )
        )
    return found


def _quoted(value: str, limit: int = MAX_QUOTED) -> str:
    """`value` in quotes, cut to `limit` characters (a roster line may be anything)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def _read_roster(
    raw: str, shown: str, base_dir: Path, where: Where, named_by: int | None
) -> tuple[list[_Entry], list[str]]:
    path = base_dir / raw
    display = str(Path(shown).parent / raw) if Path(shown).parent != Path() else raw
    here = ("class", "roster")
    try:
        data = read_limited(
            path, MAX_ROSTER_BYTES, what="a roster (CSV or text file)", named_by=named_by
        )
    except FileRefusedError as exc:
        hint = " (relative paths start at lab.yaml's folder)" if exc.missing else ""
        return [], [where(here, f"{raw!r}: {exc.message}{hint}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{display}: not UTF-8 text (byte {exc.start})"]
    if "\x00" in text:
        return [], [f"{display}: contains NUL bytes; is this a binary file?"]
    entries: list[_Entry] = []
    problems: list[str] = []
    header_done = False
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            line = reader.line_num
            first = row[0].strip() if row else ""
            if not first or first.startswith("#"):
                continue
            if not header_done:
                header_done = True
                if first.lower() in _HEADERS:
                    continue
            entries.append(
                _Entry(
                    first,
                    f"{display}:{line}",
                    functools.partial(_file_line, f"{display}:{line}"),
                )
            )
    except csv.Error as exc:
        problems.append(f"{display}:{reader.line_num}: not CSV: {exc}")
    return entries, problems


def _file_line(at: str, message: str) -> str:
    return f"{at}: {message}"


def _check_hosts(lab: Lab, where: Where) -> list[str]:
    found: list[str] = []
    if lab.hosts and not lab.is_class and len(lab.hosts) > 1:
        found.append(
            where(
                ("hosts", 1),
                "a lab without class: runs on one host; list one (or add a class: section to "
                "spread students over several)",
            )
        )
    names: dict[str, int] = {}
    servers: dict[tuple[str | None, str | None], int] = {}
    for i, host in enumerate(lab.hosts):
        remote = host.remote.lower() if host.remote else None  # remote names ignore case here
        server = (remote, host.member)  # one cluster's members share its remote
        if host.name.lower() in names:
            found.append(
                where(
                    ("hosts", i, "name"),
                    f"duplicate host name {host.name!r} (also hosts[{names[host.name.lower()]}])",
                )
            )
        names.setdefault(host.name.lower(), i)
        if server in servers:
            what = repr(host.remote) if host.remote else "the local daemon (no remote)"
            if host.member is not None:
                what = f"member {host.member!r} of {what}"
            found.append(
                where(
                    ("hosts", i, "member" if host.member else "remote" if host.remote else "name"),
                    f"{what} is also hosts[{servers[server]}]: one entry per server",
                )
            )
        servers.setdefault(server, i)
        clustered = [
            j
            for j, h in enumerate(lab.hosts)
            if h.member is not None and (h.remote.lower() if h.remote else None) == remote
        ]
        if clustered and host.member is None:
            found.append(
                where(
                    ("hosts", i),
                    f"hosts[{clustered[0]}] names a member of this cluster: give this host one "
                    "too (a student's lab stays on one member, so its LB reaches its apps)",
                )
            )
    return found
