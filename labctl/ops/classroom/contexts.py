"""A class turned into per-student contexts: the one place that knows students, hosts and placement.

`lab.yaml`'s `class:` section expands into one `Lab` per student (`Lab.for_student`: name
`<lab>-<student>`, domain from the pattern, same VMs/app/lb/waits). `ClassContext.student_context`
makes each student's `LabContext`: its own state dir and an engine bound to the daemon the
student is placed on. `lab_context` is what a command that acts on one lab gets: the lab's own
context, or the one student's in a class.

Placement (`place`): students are spread over `hosts:` (on an LXD cluster without them: its
members, members.py) by free capacity and the choice is kept in
the class's state dir (`class.json`), so a student's lab stays on its host across runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, cast

from labctl.config.load import LabFile
from labctl.engine.base import Engine, MemberCapacity
from labctl.engine.registry import open_engine
from labctl.errors import ConfigError, LabctlError
from labctl.host import privileged
from labctl.host.agent import StatusAgent, fetch_report
from labctl.host.hostsfile import hosts_path
from labctl.host.probes import Resolver, resolve
from labctl.host.resources import HostResources, host_resources
from labctl.host.state import LabState, state_dir
from labctl.model import EngineHost, Lab
from labctl.ops.classroom.members import ClusterView
from labctl.ops.context import Event, LabContext, RunOptions
from labctl.scalars import size_in_bytes

LOCAL_HOST: Final = "local"  # the host name when lab.yaml lists no hosts: the local daemon


@dataclass(frozen=True)
class HostRef:
    """A server of the class's engine; `remote` None is the local one (else an LXD remote)."""

    name: str
    remote: str | None = None
    index: int | None = None  # position in lab.yaml's hosts:, None when there are none
    declared: EngineHost | None = None
    member: str | None = None  # the cluster member of `remote` a student's lab goes on

    @property
    def measurable(self) -> bool:
        """This machine is the host: the local daemon, not a remote nor a cluster member."""
        return self.remote is None and self.member is None

    @property
    def shown(self) -> str:
        server = self.remote or "local daemon"
        return f"member {self.member} of {server}" if self.member else server


@dataclass
class ClassContext:
    """What a class command works with; `student_context` makes each student's LabContext."""

    lab_file: LabFile
    on_event: Callable[[Event], None] = lambda event: None
    hosts_file: Path = field(default_factory=hosts_path)
    resolver: Resolver = resolve
    sleep: Callable[[float], None] = time.sleep
    probe_interval: float = 2.0
    host: Callable[[], HostResources] = host_resources  # this machine (the local daemon's host)
    can_sudo: Callable[[], bool] = privileged.can_sudo
    # The engine on one of the class's servers (by remote; None: the local one), whatever the
    # project (tests replace it). Default: the engine lab.yaml names, opened once per (server,
    # project).
    engine_for: Callable[[str | None], Engine] | None = None
    state_root: Path | None = None  # where per-lab state dirs go (default: beside lab.yaml)
    status_agent: StatusAgent | None = fetch_report  # see LabContext.status_agent
    options: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        self._engines: dict[tuple[str | None, str], Engine] = {}
        self._engines_lock = threading.Lock()
        self.cluster = ClusterView(self.engine_at)

    @property
    def lab(self) -> Lab:
        return self.lab_file.lab

    @property
    def per_student_projects(self) -> bool:
        return self.lab.engine is not None and self.lab.engine.per_student_project

    def engine_at(self, remote: str | None, student: str | None = None) -> Engine:
        """The engine on the server `remote` (None: the local one), in `student`'s own project
        when each student has one (else the class's project), opened once per (remote,
        project)."""
        own = student if self.per_student_projects else None
        if self.engine_for is not None:
            return self.engine_for(remote)
        settings = self.lab.engine
        project = settings.project_for(own) if settings is not None else ""
        with self._engines_lock:
            if (remote, project) not in self._engines:
                self._engines[remote, project] = open_engine(settings, remote=remote, student=own)
            return self._engines[remote, project]

    def listing_engines(self, remote: str | None, students: list[str]) -> list[Engine]:
        """What to list to see `students`' instances on `remote`: the class's project, or
        each student's own."""
        if not self.per_student_projects:
            return [self.engine_at(remote)]
        return [self.engine_at(remote, student) for student in students]

    def _state(self, lab_name: str) -> LabState:
        if self.state_root is not None:
            return LabState(self.state_root / lab_name)
        return LabState(state_dir(self.lab_file.base_dir, lab_name))

    @property
    def class_state(self) -> LabState:
        return self._state(self.lab.name)

    def hosts(self) -> list[HostRef]:
        """The servers students are placed on: lab.yaml's `hosts:`; without them, on an LXD
        cluster, each of its members (a lab needs one member's network); else this one."""
        if self.lab.hosts:
            return [HostRef(h.name, h.remote, i, h, h.member) for i, h in enumerate(self.lab.hosts)]
        settings = self.lab.engine
        if self.lab.is_class and settings is not None and settings.name == "lxd":
            members = self.cluster.members(settings.remote)
            return [HostRef(m.name, settings.remote, member=m.name) for m in members] or [
                HostRef(LOCAL_HOST)
            ]
        return [HostRef(LOCAL_HOST)]

    def resources(self, host: HostRef) -> tuple[HostResources, str]:
        """What `host` offers, and where that figure comes from (measured / declared / unknown)."""
        declared = host.declared
        stated = declared is not None and bool(declared.cpus or declared.memory or declared.disk)
        if host.measurable:
            measured = self.host()
            if not stated:
                return measured, "measured on this machine"
            return _declared(host, fallback=measured), "declared in lab.yaml (rest measured)"
        found = self.cluster.capacity(host.remote, host.member) if host.member else None
        if isinstance(found, MemberCapacity):
            by_cluster = _member_resources(host, found)
            if not stated:
                return by_cluster, f"measured by the cluster on member {host.member}"
            return (
                _declared(host, fallback=by_cluster),
                "declared in lab.yaml (rest measured by the cluster)",
            )
        if stated:
            return _declared(host), "declared in lab.yaml (remote: not measured)"
        kind = "cluster member" if host.member else "remote"
        where = f"hosts[{host.index}]" if host.index is not None else "a hosts: entry"
        why = f" (not measured: {found})" if found else ""
        return _declared(host), f"{kind}; declare cpus/memory/disk in {where}{why}"

    def student_context(
        self,
        student: str,
        host: HostRef,
        *,
        engine: Engine | None = None,
        launch_slots: threading.BoundedSemaphore | None = None,
    ) -> LabContext:
        lab = self.lab.for_student(student)

        def tagged(event: Event) -> None:
            self.on_event(replace(event, vm=f"{student}:{event.vm}" if event.vm else student))

        return LabContext(
            lab_file=LabFile(lab, self.lab_file.path, self.lab_file.digest),
            engine=engine or self.engine_at(host.remote, student),
            options=self.options,
            on_event=tagged,
            hosts_file=self.hosts_file,
            resolver=self.resolver,
            sleep=self.sleep,
            probe_interval=self.probe_interval,
            state=self._state(lab.name),
            host=lambda: self.resources(host)[0],
            can_sudo=self.can_sudo,
            launch_slots=launch_slots,
            status_agent=self.status_agent,
            student=student,
            member=host.member,
        )


def _member_resources(host: HostRef, found: MemberCapacity) -> HostResources:
    where = f"pool {found.disk_pool} on member {host.member}" if found.disk_pool else host.shown
    available = max(0, found.memory_total - found.memory_used)
    return HostResources(found.cpus, available, found.disk_free, where, found.memory_total)


def _declared(host: HostRef, fallback: HostResources | None = None) -> HostResources:
    declared = host.declared
    cpus = declared.cpus if declared and declared.cpus else (fallback.cpus if fallback else 0)
    memory = size_in_bytes(declared.memory) if declared and declared.memory else None
    disk = size_in_bytes(declared.disk) if declared and declared.disk else None
    if fallback is not None:
        return HostResources(
            cpus,
            memory if memory is not None else fallback.memory_available,
            disk if disk is not None else fallback.disk_free,
            f"host {host.name}",
            memory if memory is not None else fallback.memory_total,
            fallback.inotify_instances,
        )
    return HostResources(cpus, memory, disk, f"host {host.name}", memory)


def select_students(lab: Lab, names: list[str] | None) -> list[str]:
    """The students a command acts on: those named (--student, any case), else the whole class."""
    if not lab.is_class:
        if names:
            raise ConfigError(
                [f"--student: lab {lab.name!r} has no class: section (it is a single lab)"]
            )
        return []
    students = lab.students
    if not names:
        return students
    by_key = {s.lower(): s for s in students}
    chosen: list[str] = []
    problems: list[str] = []
    for name in names:
        found = by_key.get(name.lower())
        if found is None:
            listed = ", ".join(students[:20]) + (" …" if len(students) > 20 else "")
            problems.append(
                f"--student {name}: not a student of class {lab.name!r} (students: {listed})"
            )
        elif found not in chosen:
            chosen.append(found)
    if problems:
        raise ConfigError(problems)
    return chosen


# --- placement -------------------------------------------------------------------------------------


def place(cctx: ClassContext, students: list[str], *, persist: bool) -> dict[str, HostRef]:
    """Host of each student in `students`: the recorded one, else the host with the most free
    capacity (memory, when every host's is known; else the fewest students). `persist` records
    new placements in the class's state dir, so later runs find each lab where it is."""
    hosts = cctx.hosts()
    by_name = {h.name: h for h in hosts}
    saved = cctx.class_state.placements()
    placed: dict[str, HostRef] = {s: by_name[h] for s, h in saved.items() if h in by_name}
    unplaced = [s for s in students if s not in placed]
    if unplaced and len(hosts) > 1:
        rediscovered = _discover(cctx, unplaced, hosts)
        placed.update(rediscovered)
        if persist and rediscovered:
            cctx.class_state.record_placements({s: h.name for s, h in rediscovered.items()})
    if any(s not in placed for s in students):
        # New students go only to hosts that answer (a cluster member down keeps its students).
        down = _down_members(cctx, hosts)
        hosts = [h for h in hosts if h.name not in down] or hosts
    per_student = sum(size_in_bytes(cctx.lab.memory_of(vm)) for vm in cctx.lab.vms)
    capacity: dict[str, int | None] = {}
    for host in hosts:
        found, _ = cctx.resources(host)
        capacity[host.name] = found.memory_total
    known = all(capacity[h.name] is not None for h in hosts)
    load = {
        h.name: sum(1 for s in placed if s in cctx.lab.students and placed[s] is h) for h in hosts
    }
    new: dict[str, str] = {}
    for student in students:
        if student in placed:
            continue
        if known:
            best = max(
                hosts,
                key=lambda h: (
                    cast(int, capacity[h.name]) - load[h.name] * per_student,
                    -load[h.name],
                    -hosts.index(h),
                ),
            )
        else:
            best = min(hosts, key=lambda h: (load[h.name], hosts.index(h)))
        placed[student] = best
        load[best.name] += 1
        new[student] = best.name
    if persist and new:
        cctx.class_state.record_placements(new)
    return {s: placed[s] for s in students}


def _down_members(cctx: ClassContext, hosts: list[HostRef]) -> set[str]:
    """Names of the hosts that are cluster members the engine cannot reach: one list per remote;
    a member is down when the cluster calls it offline, or an instance it holds is listed
    unreachable (at once; the cluster waits for missed heartbeats)."""
    down: set[str] = set()
    placed = list(cctx.class_state.placements())
    for remote in {h.remote for h in hosts if h.member is not None}:
        offline = cctx.cluster.offline(remote)  # also members that hold none of the class yet
        down |= {h.name for h in hosts if h.remote == remote and h.member in offline}
        try:
            listed = [i for e in cctx.listing_engines(remote, placed) for i in e.list()]
        except LabctlError:
            continue  # the remote itself does not answer: capacity and `up` say so
        lost = {inst.location for inst in listed if inst.unreachable}
        down |= {h.name for h in hosts if h.remote == remote and h.member in lost}
    return down


def _discover(cctx: ClassContext, students: list[str], hosts: list[HostRef]) -> dict[str, HostRef]:
    """Where these students' VMs already exist (class.json lost or deleted): one list per
    remote, each instance claimed by the host of its member (a cluster's members share one
    listing) or by the remote's one host.

    Matches exact instance names, so a student "a" never claims student "a-b"'s VMs. A daemon
    that does not answer is skipped; its students are placed as new ones.
    """
    wanted = {
        cctx.lab.for_student(student).instance_name(vm): student
        for student in students
        for vm in cctx.lab.vms
    }
    found: dict[str, HostRef] = {}
    for remote in dict.fromkeys(h.remote for h in hosts):  # in lab.yaml's order
        here = [h for h in hosts if h.remote == remote]
        try:
            listed = [i for e in cctx.listing_engines(remote, students) for i in e.list()]
        except LabctlError:
            continue
        for inst in listed:
            student = wanted.get(inst.name)
            host = next((h for h in here if h.member in (None, inst.location)), None)
            if student is not None and host is not None and student not in found:
                found[student] = host
    return found


def lab_context(
    lab_file: LabFile,
    students: list[str] | None,
    *,
    command: str,
    on_event: Callable[[Event], None] = lambda event: None,
    options: RunOptions | None = None,
) -> LabContext:
    """The context of the one lab a command acts on: a single lab's own, or in a class the one
    student named with --student (exactly one, else exit 2)."""
    if not lab_file.lab.is_class:
        select_students(lab_file.lab, students)  # --student on a single lab: exit 2
        hosts = lab_file.lab.hosts
        return LabContext(
            lab_file=lab_file,
            engine=open_engine(lab_file.lab.engine, remote=hosts[0].remote if hosts else None),
            options=options or RunOptions(),
            on_event=on_event,
            member=hosts[0].member if hosts else None,
        )
    chosen = select_students(lab_file.lab, students) if students else []
    if len(chosen) != 1:
        raise ConfigError(
            [
                f"{command}: lab {lab_file.lab.name!r} is a class; choose exactly one student "
                f"with --student NAME (got {len(chosen) or 'none'})"
            ]
        )
    cctx = ClassContext(lab_file=lab_file, on_event=on_event, options=options or RunOptions())
    [student] = chosen
    return cctx.student_context(student, place(cctx, chosen, persist=False)[student])
