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
    MAX_INSTANCE_NAME,
    MAX_STUDENTS,
    NAME_RE,
    STUDENT_FIELD,
    _domain,
)

MAX_ROSTER_BYTES: Final = 1024 * 1024
_HEADERS: Final = {"student", "students", "name", "username", "user", "login"}

Where = Callable[[Path_, str], str]  # (field path, message) -> one lab.yaml problem line


@dataclass(frozen=True)
class _Entry:
    name: str
    at: str  # "class.students[2]" or "roster.csv:LINE"
    report: Callable[[str], str]  # message -> a full problem line


def check_class(lab: Lab, shown: str, base_dir: Path, where: Where) -> tuple[Lab, list[str]]:
    """Read the roster file (if any) into `class.students` and check the class and the hosts.

    Returns the lab with its students filled in, and the problems (full lines).
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
        entries, found = _read_roster(roster.roster, shown, base_dir, where)
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
    problems += pattern_problems + _check_students(lab, roster, entries, not pattern_problems)
    filled = roster.model_copy(update={"students": [e.name for e in entries]})
    return lab.model_copy(update={"class_": filled}), problems


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
    for entry in entries:
        if not NAME_RE.fullmatch(entry.name):
            found.append(
                entry.report(
                    f"{entry.name!r} is not a valid student name: use letters, digits and "
                    "hyphens, start with a letter and end with a letter or digit (it becomes part "
                    "of instance names)"
                )
            )
            continue
        key = entry.name.lower()
        if key in names:
            same = "" if names[key].name == entry.name else f" {names[key].name!r}"
            found.append(
                entry.report(
                    f"duplicate student {entry.name!r} (also{same} at {names[key].at}; names are "
                    "compared ignoring case)"
                )
            )
            continue
        names[key] = entry
        instance = f"{lab.name}-{entry.name}-{longest.name}"
        if len(instance) > MAX_INSTANCE_NAME:
            found.append(
                entry.report(
                    f"instance name {instance!r} (<lab>-<student>-<vm>) is longer than "
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
                        f"instance {name!r} of student {entry.name!r} is also an instance of "
                        f"student {other.name!r} ({other.at}); rename one of them"
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
                        f"{kind.removeprefix('an ')} {server_name!r} of student {entry.name!r} is "
                        'not a valid domain name (like "alice.xyz")'
                    )
                )
                continue
            claimed = domains.get(server_name)
            if claimed is not None and claimed[0] is not entry:
                found.append(
                    entry.report(
                        f"{kind} {server_name!r} of student {entry.name!r} is also "
                        f"{'the domain' if claimed[1] == 'domain' else 'an alias'} of student "
                        f"{claimed[0].name!r} ({claimed[0].at})"
                    )
                )
            domains.setdefault(server_name, (entry, kind))
    return found


def _read_roster(
    raw: str, shown: str, base_dir: Path, where: Where
) -> tuple[list[_Entry], list[str]]:
    path = base_dir / raw
    display = str(Path(shown).parent / raw) if Path(shown).parent != Path() else raw
    here = ("class", "roster")
    try:
        data = read_limited(path, MAX_ROSTER_BYTES, what="a roster (CSV or text file)")
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
                "a lab without class: runs on one Multipass host; list one (or add a class: "
                "section to spread students over several)",
            )
        )
    names: dict[str, int] = {}
    addresses: dict[str | None, int] = {}
    for i, host in enumerate(lab.hosts):
        address = host.address.lower() if host.address else None  # host names ignore case
        if host.name.lower() in names:
            found.append(
                where(
                    ("hosts", i, "name"),
                    f"duplicate host name {host.name!r} (also hosts[{names[host.name.lower()]}])",
                )
            )
        names.setdefault(host.name.lower(), i)
        if address in addresses:
            what = repr(host.address) if host.address else "the local daemon (no address)"
            found.append(
                where(
                    ("hosts", i, "address"),
                    f"{what} is also hosts[{addresses[address]}]: one entry per daemon",
                )
            )
        addresses.setdefault(address, i)
    return found
