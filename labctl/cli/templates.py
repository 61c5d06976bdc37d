"""The starter lab.yaml files `labctl init` writes (commented, so a newcomer can edit them).

Each starter exists for each engine and is put together from shared parts: the lab's own
sections are written once, and only what depends on the engine (the `engine:` block, `image:`,
the sizes, the words for an instance, a class's `hosts:`) comes from that engine's parts. The
`cluster` starter is the class lab on an LXD cluster, so it exists for LXD only.

Each starts with a `# yaml-language-server: $schema=` line naming the schema file `init` writes
beside it, so editors with the YAML language server complete and check the fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from string import Template
from typing import Final

SCHEMA_FILE: Final = "lab.schema.json"
_HEAD: Final = f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n"
_NOTE_COLUMN: Final = 26  # where a line's comment starts, as in the rest of the file


class StarterEngine(StrEnum):
    """The engines a starter is written for (the engine registry's names)."""

    multipass = "multipass"
    lxd = "lxd"


class Starter(StrEnum):
    hello = "hello"
    seed = "seed"
    class_ = "class"
    cluster = "cluster"


# The engines each starter is written for: a cluster is LXD's (Multipass runs on one machine).
ENGINES_OF: Final = {
    Starter.hello: (StarterEngine.multipass, StarterEngine.lxd),
    Starter.seed: (StarterEngine.multipass, StarterEngine.lxd),
    Starter.class_: (StarterEngine.multipass, StarterEngine.lxd),
    Starter.cluster: (StarterEngine.lxd,),
}


def _line(text: str, note: str = "") -> str:
    """One line of YAML with its comment aligned (a long line keeps one space before it)."""
    if not note:
        return text + "\n"
    return f"{text:<{_NOTE_COLUMN - 1}} # {note}\n"


@dataclass(frozen=True)
class _Sizes:
    memory: str
    disk: str
    memory_note: str
    disk_note: str


@dataclass(frozen=True)
class _EngineParts:
    noun: str  # what one instance is called in the comments
    image: str
    small: _Sizes  # the hello app (hello and class labs)
    seed: _Sizes  # the course's dumbflix lab: an npm ci and a production build


_MULTIPASS: Final = _EngineParts(
    noun="VM",
    image=_line('image: "24.04"', "an Ubuntu release Multipass knows (multipass find)"),
    small=_Sizes("1G", "5G", "", ""),
    seed=_Sizes(
        "2G",
        "8G",
        "dumbflix's production build peaks at about 0.5 GB RSS",
        "node_modules alone is ~350 MB",
    ),
)
_LXD: Final = _EngineParts(
    noun="container",
    image=(
        _line('image: "24.04"', "ubuntu:24.04 from Canonical's image server (under incus:")
        + _line("", "images:ubuntu/24.04/cloud), or an alias of `lxc image list`")
    ),
    small=_Sizes(
        "512M",
        "4G",
        "limits.memory, a ceiling: an app container uses 60-90 MiB",
        "the root disk (a quota on btrfs/zfs pools)",
    ),
    seed=_Sizes(
        "1G",
        "6G",
        "limits.memory: dumbflix's build peaks at about 0.5 GB RSS",
        "node_modules alone is ~350 MB",
    ),
)
_PARTS: Final = {StarterEngine.multipass: _MULTIPASS, StarterEngine.lxd: _LXD}


def _engine_block(engine: StarterEngine, remote: str = "local") -> str:
    if engine is StarterEngine.multipass:
        return _line(
            "engine: multipass", "a Multipass VM per instance (LXD: labctl init --engine lxd)"
        )
    remote_note = (
        "this machine's LXD; or an `lxc remote` (lxc remote list)"
        if remote == "local"
        else "an `lxc remote` for any member of the cluster"
    )
    return (
        _line("engine:", "LXD system containers (docs/engines/lxd.md)")
        + _line("  name: lxd")
        + _line(f"  remote: {remote}", remote_note)
        + _line("  project: default", "an LXD project (create one: lxc project create NAME)")
        + _line("  type: container", "container: tens of MiB each; vm: a VM (needs KVM)")
        + _line("  profiles: [default]", "every instance gets them: a root disk and a NIC")
        + _line("  cli: lxc", "lxc for LXD, incus for Incus (the same verbs)")
        + "# Instances install packages from the internet: set a fresh LXD up with NAT,\n"
        + "# `labctl lxd-init --nat` (a fixed subnet; never LXD's --auto).\n"
    )


def _defaults(engine: StarterEngine, sizes: _Sizes) -> str:
    noun = _PARTS[engine].noun
    return (
        _line("defaults:", f"per {noun}, unless the {noun} says otherwise")
        + _line("  cpus: 1", "limits.cpu" if engine is StarterEngine.lxd else "")
        + _line(f"  memory: {sizes.memory}", sizes.memory_note)
        + _line(f"  disk: {sizes.disk}", sizes.disk_note)
    )


_HELLO_APP: Final = """\
app:
  name: hello
  source:
    builtin: hello        # or  git: https://...  or  path: ./my-app (packed into the user-data)
  port: 3000              # the port the app listens on inside each app instance
"""

_THREE_VMS: Final = """\
vms:
  - name: app1
    roles: [app]          # app: runs the app under pm2
  - name: app2
    roles: [app]
  - name: lb
    roles: [lb]           # lb: nginx, load-balancing the domain across the app instances
"""

_QUICK_WAITS: Final = """\
waits:                    # the longest each stage may take before `up` says so
  launch: 10m
  cloud_init: 15m
  serve: 2m
"""


def _hello_app_lab(engine: StarterEngine) -> str:
    """What the hello, class and cluster starters share: image, sizes, the app, three VMs."""
    parts = _PARTS[engine]
    return parts.image + _defaults(engine, parts.small) + _HELLO_APP + _THREE_VMS + _QUICK_WAITS


_HELLO_INTRO: Final = """\
# The fastest lab to try labctl with: two app ${noun}s running the built-in `hello` app
# (it answers with its $noun's name) behind one nginx load balancer. No git, no build.
#   labctl validate     check this file (every problem with its line)
#   labctl plan         what `up` would do, with the exact engine commands
#   labctl up           launch, wire nginx and the hosts entry, wait until the domain serves
#   labctl status       every $noun's state and whether the domain serves
#   labctl down         delete the ${noun}s and the hosts entry
name: hello               # instance names are <name>-<vm>: hello-app1, hello-lb
domain: hello.lab         # labctl adds "<LB IP> hello.lab" to the hosts file (sudo, or --no-hosts)
"""


def _worded(text: str, engine: StarterEngine) -> str:
    """`text` with $noun as this engine calls one instance (string.Template: YAML has no `$`)."""
    return Template(text).substitute(noun=_PARTS[engine].noun)


def _hello(engine: StarterEngine) -> str:
    return _worded(_HELLO_INTRO, engine) + _engine_block(engine) + _hello_app_lab(engine)


_SEED_APP: Final = """\
app:
  name: dumbflix
  source:
    git: https://github.com/dumbwaysdev/dumbflix-frontend
  install: npm ci
  build: npm run build
  start:
    serve: build          # pm2 serve build 3000 --spa: the built files, not the dev server
    spa: true
  port: 3000
  node_version: 20
  env:
    # create-react-app 3.4 (webpack 4) needs the legacy OpenSSL provider on Node >= 17
    NODE_OPTIONS: --openssl-legacy-provider
vms:
  - name: app1
    roles: [app]
  - name: gateway
    roles: [lb, app]      # one instance can be both the load balancer and a backend
lb:
  method: round_robin
  max_fails: 2            # nginx passive health checks: 2 failures ...
  fail_timeout: 5s        # ... take a backend out for 5 s
  keepalive: 16
waits:
  launch: 15m             # npm ci + build on 1 vCPU takes minutes
  cloud_init: 30m
  serve: 3m
manage_hosts: true        # false: labctl prints the hosts line instead of writing it
browser:                  # `labctl check` opens the site in a headless browser, with a screenshot
  wait_for: {selector: .hero}   # "rendered" = the hero banner, not the grey loading skeleton
  paths: [/, /movies]     # /movies is a deep link: it needs nginx + pm2's SPA fallback
"""


_SEED_INTRO: Final = """\
# The course's lab: $noun `app1` runs dumbflix-frontend under pm2; $noun `gateway` runs
# nginx and a second app instance; nginx reverse-proxies and load-balances alvin.xyz across
# both. Put your own name in `name:` and your own domain in `domain:`.
name: alvin
domain: alvin.xyz
aliases: [www.alvin.xyz]  # more names for the same site
"""


def _seed(engine: StarterEngine) -> str:
    parts = _PARTS[engine]
    return (
        _worded(_SEED_INTRO, engine)
        + _engine_block(engine)
        + parts.image
        + _defaults(engine, parts.seed)
        + _SEED_APP
    )


_CLASS_ROSTER: Final = """\
name: web
class:
  students: [alice, bob]  # or  roster: students.csv  (first column; a file beside lab.yaml)
  domain: "{student}.lab" # {student} becomes each student's name, lower-cased
"""

# Commented out: a class starts on one machine; this is how it spreads beyond it.
_LXD_HOSTS_EXAMPLE: Final = """\
# hosts:                  # optional: spread the class over LXD servers (remote: an `lxc remote`
#                         # each) or over the members of an LXD cluster, one entry per member:
#   - {name: server1, member: server1, memory: 128G}  # member: a NAME of `lxc cluster list`
#   - {name: server2, member: server2, memory: 128G}  # memory: what it has free for labs
"""

_CLUSTER_HOSTS: Final = """\
# Each student's whole lab goes on one member of the cluster, students where the cluster
# measures the most memory free (`labctl doctor` shows it), never on a member that is offline.
# Without hosts: every member takes students; list them to use only some, or to set capacity:
# hosts:
#   - {name: server1, member: server1, memory: 128G}  # member: a NAME of `lxc cluster list`
#   - {name: server2, member: server2, memory: 128G}  # memory: what it has free for labs
"""


_CLASS_INTRO: Final = """\
# A class: one lab per student, each with its own ${noun}s (<name>-<student>-<vm>), load
# balancer and domain. Every command acts on the whole class, or on the students named with
# --student NAME.
#   labctl up --student alice      one student's lab
#   labctl status                  a student x $noun matrix
"""


def _class(engine: StarterEngine) -> str:
    if engine is StarterEngine.lxd:
        beyond = _LXD_HOSTS_EXAMPLE + "# A class on an LXD cluster: labctl init cluster\n"
    else:
        beyond = "# A class beyond this machine runs on LXD: labctl init --engine lxd class\n"
    return (
        _worded(_CLASS_INTRO, engine)
        + _CLASS_ROSTER
        + _engine_block(engine)
        + beyond
        + _hello_app_lab(engine)
    )


_CLUSTER_INTRO: Final = """\
# A class on an LXD cluster: one lab per student, each student's whole lab (its app
# containers and its load balancer) on one member, so the LB reaches its apps on that
# member's network. Students are spread over the members by the memory they have free,
# and each stays where it was placed on later runs (.labctl/web/class.json).
# Put the instances on the classroom network (the profile's NIC bridged onto the LAN)
# so your machine and the students' laptops reach each LB: docs/engines/lxd.md.
#   labctl doctor                  each member: does it answer, is there room
#   labctl up                      every student's lab, on its member
#   labctl hosts --student alice   the hosts line alice adds on her laptop
"""


def _cluster(engine: StarterEngine) -> str:
    return (
        _CLUSTER_INTRO
        + _CLASS_ROSTER
        + _engine_block(engine, remote="classroom")
        + _CLUSTER_HOSTS
        + _hello_app_lab(engine)
    )


_BUILDERS: Final = {
    Starter.hello: _hello,
    Starter.seed: _seed,
    Starter.class_: _class,
    Starter.cluster: _cluster,
}


def starter(template: Starter, engine: StarterEngine) -> str:
    """The starter lab.yaml `template` for `engine` (one of ENGINES_OF[template])."""
    if engine not in ENGINES_OF[template]:
        raise ValueError(f"no {template} starter for {engine}")
    return _HEAD + _BUILDERS[template](engine)
