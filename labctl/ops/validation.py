"""The checks of a lab.yaml that need this machine, run by both `validate` and `up` (and `plan`,
`render`) after `load_lab`: the `source: path` walk (config/sources.py), names the machine already
uses (its hostname, hosts-file lines outside labctl's blocks), special-use TLD warnings and free
disk. Problems are `FILE:LINE:COL: field: message` lines (exit 2); warnings go to stderr.

config/ never reads the host (tests/test_structure.py), so the facts are gathered here and passed
in (config/names.py HostFacts).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from labctl.config.load import LabFile
from labctl.config.names import (
    HostFacts,
    host_name_problems,
    hosts_names_outside_labctl,
    tld_warnings,
)
from labctl.config.sources import start_problems, walk_source
from labctl.config.yamlpos import Path_
from labctl.errors import ConfigError, LabctlError
from labctl.host.hostsfile import hosts_path, read_hosts
from labctl.host.resources import HostResources, host_resources
from labctl.model import Lab
from labctl.ops.context import RunOptions
from labctl.scalars import size_in_bytes

GIB = 1024**3


@dataclass(frozen=True)
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def host_facts(hosts_file: Path) -> tuple[HostFacts, list[str]]:
    """This machine's name and the hosts-file names outside labctl's blocks (+ read warnings)."""
    try:
        text = read_hosts(hosts_file)
    except LabctlError as exc:
        return HostFacts(hostname=socket.gethostname()), [f"warning: {exc.message}"]
    return HostFacts(socket.gethostname(), hosts_names_outside_labctl(text)), []


def check_lab(
    lab_file: LabFile,
    *,
    hosts_file: Path | None = None,
    options: RunOptions | None = None,
    facts: HostFacts | None = None,
    host: HostResources | None = None,
) -> Findings:
    lab = lab_file.lab
    problems: list[str] = []
    warnings: list[str] = []
    src = lab.app.source
    if src.path is not None:
        walk = walk_source(lab_file.base_dir, src.path, src.include_private)
        where: Path_ = ("app", "source", "path")
        problems += [lab_file.problem(where, message) for message in walk.problems]
        problems += [lab_file.problem(p, m) for p, m in start_problems(walk, lab.app)]
        if walk.left_home:
            warnings.append(
                lab_file.problem(
                    where,
                    f"not packed, private: {_some(walk.left_home)} (name them in "
                    "app.source.include_private to pack them)",
                )
            )
        if walk.not_files:
            warnings.append(lab_file.problem(where, f"not packed: {_some(walk.not_files)}"))
    if lab.manage_hosts and not (options and options.no_hosts):
        # names matter only when labctl writes the hosts entry
        if facts is None:
            facts, more = host_facts(hosts_file or hosts_path())
            warnings += more
        problems += [lab_file.problem(p, m) for p, m in host_name_problems(lab, facts)]
    warnings += [lab_file.problem(p, m) for p, m in tld_warnings(lab)]
    warnings += _disk(lab_file, host or host_resources())
    return Findings(sorted(set(problems), key=_position), [f"warning: {w}" for w in warnings])


def require_valid(lab_file: LabFile, options: RunOptions | None = None) -> list[str]:
    """check_lab on this machine, raising ConfigError on problems; returns the warnings."""
    findings = check_lab(lab_file, options=options)
    if findings.problems:
        raise ConfigError(findings.problems)
    return findings.warnings


def _disk(lab_file: LabFile, host: HostResources) -> list[str]:
    lab = lab_file.lab
    copies = max(1, len(lab.students)) if lab.hosts == [] else 0  # remote hosts: declared, not here
    if host.disk_free is None or not copies:
        return []
    wanted = copies * sum(size_in_bytes(lab.disk_of(vm)) for vm in lab.vms)
    if wanted <= host.disk_free:
        return []
    return [
        lab_file.problem(
            _disk_path(lab_file, lab),
            f"the lab's VM disks add up to {wanted / GIB:.1f} GiB; {host.disk_free / GIB:.1f} GiB "
            f"free in {host.disk_path}: `up` refuses to launch new VMs that do not fit (--force "
            "launches anyway)",
        )
    ]


def _disk_path(lab_file: LabFile, lab: Lab) -> Path_:
    """The disk: key the user wrote (defaults or a VM), else vms."""
    positions = lab_file.loaded.positions if lab_file.loaded else {}
    for path in [("defaults", "disk"), *(("vms", i, "disk") for i in range(len(lab.vms)))]:
        if path in positions:
            return path
    return ("vms",)


def _some(items: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _position(line: str) -> tuple[int, int, str]:
    parts = line.split(":", 3)
    try:
        return int(parts[1]), int(parts[2]), line
    except (IndexError, ValueError):
        return 0, 0, line
