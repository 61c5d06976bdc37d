"""Classroom mode at the use-case level, on in-memory engines (one per server: an LXD remote).

Validation of `class:`/`hosts:`, placement by free capacity, status speed (one listing per host,
VM checks in parallel) and each student's hosts entry pointing at that student's LB.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import pytest

from labctl.config.load import LabFile, parse_lab
from labctl.engine.base import ExecResult, LaunchSpec
from labctl.errors import ConfigError
from labctl.host.resources import HostResources
from labctl.ops.classroom.contexts import ClassContext, place, select_students
from labctl.ops.classroom.status import class_status
from labctl.ops.classroom.up import class_up
from labctl.ops.context import RunOptions
from labctl.render.userdata import VM_STATUS_COMMAND
from tests.lab_world import hosts_file_resolver
from tests.memory_engine import MemoryEngine, MemoryVm

VMS = """\
vms:
  - {name: app1, roles: [app]}
  - {name: app2, roles: [app]}
  - {name: lb, roles: [lb]}
"""


def class_text(students: str, extra: str = "", port: int = 80) -> str:
    return f"""\
name: cls
class:
  students: {students}
  domain: "{{student}}.class.lab"
app: {{name: hello, source: {{builtin: hello}}}}
defaults: {{memory: 1G, disk: 5G}}
lb: {{port: {port}}}
waits: {{launch: 60s, cloud_init: 60s, serve: 5s}}
snapshots: {{baseline: false}}
{VMS}{extra}"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_lab(text)
    return caught.value.problems


def test_a_valid_class_expands_into_one_lab_per_student() -> None:
    lab = parse_lab(class_text("[alice, Bob]"))
    assert lab.is_class and lab.students == ["alice", "Bob"]
    bob = lab.for_student("Bob")
    assert (bob.name, bob.domain, bob.is_class) == ("cls-Bob", "bob.class.lab", False)
    assert [bob.instance_name(vm) for vm in bob.vms] == [
        "cls-Bob-app1",
        "cls-Bob-app2",
        "cls-Bob-lb",
    ]
    assert bob.vms == lab.vms and bob.app == lab.app and bob.waits == lab.waits


@pytest.mark.parametrize(
    ("students", "extra", "expected"),
    [
        ("[alice, Alice]", "", "lab.yaml:3:21: class.students[1]: duplicate student 'Alice'"),
        ("[alice, a_b]", "", "lab.yaml:3:21: class.students[1]: 'a_b' is not a valid name"),
        (
            "[a, " + "b" * 60 + "]",
            "",
            "class.students[1]: instance name 'cls-" + "b" * 60 + "-app1' (<lab>-<student>-<vm>)",
        ),
        ("[]", "", "class.students: the class has no students"),
        (
            "[alice]",
            "engine: lxd\nhosts:\n  - {name: a, remote: x}\n  - {name: b, remote: x}\n",
            "lab.yaml:17:15: hosts[1].remote: 'x' is also hosts[0]",
        ),
    ],
)
def test_class_problems_name_their_line(students: str, extra: str, expected: str) -> None:
    found = problems(class_text(students, extra))
    assert any(expected in p for p in found), found


def test_domain_collisions_between_students_are_reported() -> None:
    text = class_text("[bob, bob-www]").replace(
        '"{student}.class.lab"', '"{student}.class.lab"\n  aliases: ["{student}-www.class.lab"]'
    )
    assert problems(text) == [
        "lab.yaml:3:19: class.students[1]: domain 'bob-www.class.lab' of student 'bob-www' is "
        "also an alias of student 'bob' (class.students[0])"
    ]
    no_field = class_text("[a, b]").replace('"{student}.class.lab"', "shared.lab")
    assert "class.domain: 'shared.lab' must contain {student}" in problems(no_field)[0]
    with_domain = "domain: x.lab\n" + class_text("[a]")
    assert (
        "lab.yaml:1:1: domain: a class lab takes each student's domain" in problems(with_domain)[0]
    )


def test_roster_file_relative_to_lab_yaml(tmp_path: Path) -> None:
    (tmp_path / "roster.txt").write_text("# period 2\nalice\n\ncarol\n")
    text = class_text("[x]").replace("  students: [x]\n", "  roster: roster.txt\n")
    lab = parse_lab(text, str(tmp_path / "lab.yaml"), base_dir=tmp_path)
    assert lab.students == ["alice", "carol"]
    missing = text.replace("roster.txt", "nope.csv")
    with pytest.raises(ConfigError) as caught:
        parse_lab(missing, "lab.yaml", base_dir=tmp_path)
    assert caught.value.problems == [
        "lab.yaml:3:3: class.roster: 'nope.csv': no such file (relative paths start at "
        "lab.yaml's folder)"
    ]


def test_select_students() -> None:
    lab = parse_lab(class_text("[alice, bob]"))
    assert select_students(lab, None) == ["alice", "bob"]
    assert select_students(lab, ["BOB", "bob"]) == ["bob"]
    with pytest.raises(ConfigError, match="--student eve: not a student"):
        select_students(lab, ["eve"])


class Daemons:
    """One MemoryEngine per server (an LXD remote; None: the local one)."""

    def __init__(self, ips: dict[str, str] | None = None) -> None:
        self.by_remote: dict[str | None, MemoryEngine] = {}
        self.ips = ips or {}
        self.lock = threading.Lock()

    def __call__(self, remote: str | None) -> MemoryEngine:
        with self.lock:
            if remote not in self.by_remote:
                self.by_remote[remote] = MemoryEngine(ips=self.ips)
        return self.by_remote[remote]


def class_context(tmp_path: Path, text: str, daemons: Daemons, **kwargs: object) -> ClassContext:
    lab = parse_lab(text)
    hosts = tmp_path / "hosts"
    if not hosts.exists():
        hosts.write_text("127.0.0.1 localhost\n")
    return ClassContext(
        lab_file=LabFile(lab, tmp_path / "lab.yaml", "0" * 64),
        hosts_file=hosts,
        resolver=hosts_file_resolver(hosts),
        sleep=lambda s: None,
        probe_interval=0.05,
        host=lambda: HostResources(8, 64 * 1024**3, 500 * 1024**3, "/", 64 * 1024**3),
        can_sudo=lambda: False,
        engine_for=daemons,
        state_root=tmp_path / "state",
        status_agent=None,  # the daemons' VM addresses are not ours to connect to: exec only
        **kwargs,  # type: ignore[arg-type]
    )


def test_placement_follows_free_memory_and_is_stable(tmp_path: Path) -> None:
    hosts = """\
engine: lxd
hosts:
  - {name: big, remote: lab1, cpus: 32, memory: 30G}
  - {name: small, remote: lab2, cpus: 8, memory: 20G}
"""
    names = [f"s{i}" for i in range(8)]
    cctx = class_context(tmp_path, class_text(f"[{', '.join(names)}]", hosts), Daemons())
    placed = {s: h.name for s, h in place(cctx, names, persist=True).items()}
    # 3 GiB per student: big takes students until its free memory drops to small's
    assert sorted(placed.values()).count("big") == 6, placed
    again = {s: h.name for s, h in place(cctx, list(reversed(names)), persist=False).items()}
    assert again == placed


def test_lost_placements_are_found_again_on_the_daemons(tmp_path: Path) -> None:
    hosts = """\
engine: lxd
hosts:
  - {name: big, remote: lab1, cpus: 32, memory: 30G}
  - {name: small, remote: lab2, cpus: 8, memory: 20G}
"""
    daemons = Daemons()
    cctx = class_context(tmp_path, class_text("[s0, s0-x, s1]", hosts), daemons)
    # s0's VMs live on "small" although capacity would now put a new student on "big"
    small = cast(MemoryEngine, daemons("lab2"))
    for vm in cctx.lab.vms:
        name = cctx.lab.for_student("s0").instance_name(vm)
        small.vms[name] = MemoryVm(name, ipv4=["10.9.0.1"])
    placed = {s: h.name for s, h in place(cctx, ["s0", "s0-x", "s1"], persist=True).items()}
    assert placed["s0"] == "small"
    assert placed["s0-x"] == "big" and placed["s1"] == "big"  # new students: by capacity
    assert cctx.class_state.placements()["s0"] == "small"  # recorded for the next run


def test_class_status_is_one_listing_per_host_and_checks_run_in_parallel(tmp_path: Path) -> None:
    names = [f"s{i:02d}" for i in range(20)]  # 60 VMs
    hosts = """\
engine: lxd
hosts:
  - {name: east, remote: lab1}
  - {name: west, remote: lab2}
"""
    ips = {f"cls-{s}-lb": "N/A" for s in names}  # no LB address: no HTTP leaves the test
    daemons = Daemons(ips)
    cctx = class_context(tmp_path, class_text(f"[{', '.join(names)}]", hosts), daemons)
    placement = place(cctx, names, persist=True)
    for student, host in placement.items():
        daemons(host.remote)
        mp = daemons.by_remote[host.remote]
        for vm in ("app1", "app2", "lb"):
            mp.launch(LaunchSpec(f"cls-{student}-{vm}", "24.04", 1, "1G", "5G", "", timeout=60))
    check = 0.4

    def slow_status(name: str, argv: list[str]) -> ExecResult | None:
        if argv == list(VM_STATUS_COMMAND):
            time.sleep(check)
            return ExecResult(0, '{"cloud_init": {"status": "done"}}', "")
        return None

    for mp in daemons.by_remote.values():
        mp.exec_hook = slow_status
        mp.calls.clear()
    started = time.monotonic()
    report = class_status(cctx)
    took = time.monotonic() - started
    assert took < 60 * check / 4, took  # the sum would be 24 s; parallel is about one check
    assert [run.student for run in report.students] == names
    assert all(run.result is not None for run in report.students)
    for mp in daemons.by_remote.values():
        assert len(mp.calls_of("list")) == 1  # one listing for the 10 students on this host
        assert len([c for c in mp.calls_of("exec")]) == 30
    data = report.to_dict()
    assert data["summary"]["students"] == 20 and len(data["students"]) == 20
    assert {row["host"] for row in data["students"]} == {"east", "west"}


class PerIpLb:
    """Stand-ins for two students' nginx, each on its own loopback IP and the same port:
    round robin over the `server` lines labctl pushed to that LB VM."""

    def __init__(self, targets: dict[str, tuple[MemoryEngine, str]], port: int = 0) -> None:
        self.servers: list[ThreadingHTTPServer] = []
        self.port = port
        for ip, (mp, instance) in targets.items():
            self.servers.append(ThreadingHTTPServer((ip, self.port), self._handler(mp, instance)))
            self.port = self.servers[-1].server_address[1]
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()

    @staticmethod
    def _handler(mp: MemoryEngine, instance: str) -> type[BaseHTTPRequestHandler]:
        counter = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                servers = re.findall(r"server (\S+:\d+)", mp.vms[instance].site)
                counter[0] += 1
                if not servers:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Lab-Backend", servers[counter[0] % len(servers)])
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def two_lbs() -> Iterator[tuple[Daemons, PerIpLb]]:
    ips = {
        "cls-alice-lb": "127.0.0.21",
        "cls-alice-app1": "10.77.1.1",
        "cls-alice-app2": "10.77.1.2",
        "cls-bob-lb": "127.0.0.22",
        "cls-bob-app1": "10.77.2.1",
        "cls-bob-app2": "10.77.2.2",
    }
    daemons = Daemons(ips)
    daemons("lab1"), daemons("lab2")
    east, west = daemons.by_remote["lab1"], daemons.by_remote["lab2"]
    lbs = PerIpLb({"127.0.0.21": (east, "cls-alice-lb"), "127.0.0.22": (west, "cls-bob-lb")})
    yield daemons, lbs
    lbs.close()


def test_each_students_hosts_entry_points_at_its_own_lb_on_its_own_daemon(
    tmp_path: Path, two_lbs: tuple[Daemons, PerIpLb]
) -> None:
    daemons, lbs = two_lbs
    hosts = """\
engine: lxd
hosts:
  - {name: east, remote: lab1}
  - {name: west, remote: lab2}
"""
    cctx = class_context(tmp_path, class_text("[alice, bob]", hosts, port=lbs.port), daemons)
    result = class_up(replace(cctx, options=RunOptions(max_parallel=2)))
    assert result.ok, [
        (r.student, r.error, r.result and r.result.failures) for r in result.students
    ]
    east, west = daemons.by_remote["lab1"], daemons.by_remote["lab2"]
    assert sorted(east.vms) == ["cls-alice-app1", "cls-alice-app2", "cls-alice-lb"]
    assert sorted(west.vms) == ["cls-bob-app1", "cls-bob-app2", "cls-bob-lb"]
    text = (tmp_path / "hosts").read_text()
    assert "# BEGIN labctl cls-alice\n127.0.0.21\talice.class.lab\n# END labctl cls-alice" in text
    assert "# BEGIN labctl cls-bob\n127.0.0.22\tbob.class.lab\n# END labctl cls-bob" in text
    assert "10.77.1.1:3000" in east.vms["cls-alice-lb"].site
    assert "10.77.2.1:3000" not in east.vms["cls-alice-lb"].site
    bob = next(r for r in result.students if r.student == "bob")
    assert bob.host == "west" and bob.result is not None and bob.result.lb_ip == "127.0.0.22"


def test_hints_in_class_output_carry_the_student() -> None:
    from labctl.cli.printers.wiring import for_student

    hint = "Run `labctl down` (or multipass delete --purge x) and `labctl up` again."
    assert for_student(hint, "s04") == (
        "Run `labctl down --student s04` (or multipass delete --purge x) and "
        "`labctl up --student s04` again."
    )
    exec_hint = "Full log: `labctl exec app1 -- sudo cat /var/log/cloud-init-output.log`"
    assert for_student(exec_hint, "s04") == (
        "Full log: `labctl exec app1 --student s04 -- sudo cat /var/log/cloud-init-output.log`"
    )
    assert for_student(hint, None) == hint
