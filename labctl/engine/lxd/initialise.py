"""Initialise a freshly installed LXD for labctl, safely: a preseed with a fixed subnet, shown
before it runs (`labctl lxd-init`).

Never `lxd init --auto` and never `ipv4.address: auto`: to find a free subnet LXD then connects
to port 22 of up to 200 random 10.x addresses (traffic to machines that are not ours). The
preseed names everything instead: a `dir` storage pool (works on any filesystem), one bridge with
the subnet below (or `--subnet`), NAT off (nothing leaves the bridge unless the user passes
`--nat`: a lab that downloads packages or clones apps from the internet needs it), no IPv6,
image auto-update off (no background downloads), and a default profile that gives every
instance a root disk on that pool and a NIC on that bridge. The preseed travels as JSON (which `lxd init` reads
as YAML); labctl writes no YAML but rendering's.

It refuses, changing nothing, when LXD already has a storage pool or its profile a device (an
LXD someone set up is theirs), when the subnet overlaps a route of this machine, or when the
bridge's name is taken by an interface.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from labctl.engine.lxd.server import SetupState

if TYPE_CHECKING:
    from labctl.engine.lxd.adapter import LxdEngine

DEFAULT_SUBNET: Final = "10.172.64.1/24"  # the bridge's own address and its prefix
DEFAULT_BRIDGE: Final = "lxdbr0"
DEFAULT_POOL: Final = "default"
DRIVERS: Final = ("dir", "btrfs")
BTRFS_SIZE: Final = "30GiB"  # a sparse loop file: it grows as containers use it
BRIDGE_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")  # an interface name: 15 at most
POOL_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ROUTES: Final = Path("/proc/net/route")
INTERFACES: Final = Path("/sys/class/net")


@dataclass(frozen=True)
class InitOptions:
    subnet: str = DEFAULT_SUBNET
    bridge: str = DEFAULT_BRIDGE
    pool: str = DEFAULT_POOL
    driver: str = "dir"
    nat: bool = False  # nothing leaves the bridge unless the user asks (--nat)


def preseed(options: InitOptions) -> dict[str, Any]:
    """The `lxd init --preseed` document for `options` (already checked)."""
    pool: dict[str, Any] = {"name": options.pool, "driver": options.driver}
    if options.driver == "btrfs":
        pool["config"] = {"size": BTRFS_SIZE}
    return {
        "config": {"images.auto_update_interval": "0"},
        "storage_pools": [pool],
        "networks": [
            {
                "name": options.bridge,
                "type": "bridge",
                "config": {
                    "ipv4.address": options.subnet,
                    "ipv4.nat": "true" if options.nat else "false",
                    "ipv6.address": "none",
                },
            }
        ],
        "profiles": [
            {
                "name": "default",
                "devices": {
                    "root": {"path": "/", "pool": options.pool, "type": "disk"},
                    "eth0": {"name": "eth0", "network": options.bridge, "type": "nic"},
                },
            }
        ],
    }


def preseed_text(options: InitOptions) -> str:
    return json.dumps(preseed(options), indent=2) + "\n"


def option_problems(
    options: InitOptions, routes: Sequence[ipaddress.IPv4Network], interfaces: Sequence[str]
) -> list[str]:
    """Why these options cannot be used on this machine (empty: they can)."""
    problems: list[str] = []
    try:
        address = ipaddress.IPv4Interface(options.subnet)
    except ValueError:
        return [
            f"--subnet {options.subnet}: not an IPv4 address with a prefix (like 10.172.64.1/24)"
        ]
    network = address.network
    if not network.is_private or network.is_loopback or network.is_link_local:
        problems.append(
            f"--subnet {options.subnet}: not a private range (10/8, 172.16/12, 192.168/16)"
        )
    elif not 16 <= network.prefixlen <= 28:
        problems.append(f"--subnet {options.subnet}: use a prefix between /16 and /28")
    elif address.ip in (network.network_address, network.broadcast_address):
        problems.append(
            f"--subnet {options.subnet}: the bridge needs a host address, like "
            f"{network.network_address + 1}/{network.prefixlen}"
        )
    taken = [str(route) for route in routes if route.prefixlen > 0 and route.overlaps(network)]
    if taken:
        problems.append(
            f"--subnet {options.subnet} overlaps a network this machine already reaches "
            f"({', '.join(taken)}); pick another with --subnet"
        )
    if not BRIDGE_NAME.fullmatch(options.bridge):
        problems.append(
            f"--bridge {options.bridge!r}: an interface name (a letter, then up to 14 letters, "
            "digits, - or _)"
        )
    elif options.bridge in interfaces:
        problems.append(f"--bridge {options.bridge}: an interface of that name exists already")
    if not POOL_NAME.fullmatch(options.pool):
        problems.append(f"--pool {options.pool!r}: letters, digits, '.', '-' or '_' (63 at most)")
    if options.driver not in DRIVERS:
        problems.append(f"--driver {options.driver}: labctl sets up {' or '.join(DRIVERS)}")
    return problems


def already_set_up(state: SetupState) -> str | None:
    """Why an LXD is not labctl's to initialise (someone set it up), or None when it is fresh."""
    if state.initialised:
        return f"LXD {state.version} is already initialised (root disk on {state.root_pool}, {state.nic})"
    if state.pools or state.root_pool or state.nic:
        found = [f"pools {', '.join(state.pools)}" if state.pools else "", state.nic]
        return (
            f"LXD {state.version} is partly set up ({', '.join(f for f in found if f)}; "
            f"{state.missing}): labctl initialises only a fresh LXD"
        )
    return None


def host_routes(path: Path = ROUTES) -> list[ipaddress.IPv4Network]:
    """The IPv4 routes of this machine's main table (/proc/net/route: hex, little-endian)."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    found: list[ipaddress.IPv4Network] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
            found.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
        except ValueError:
            continue
    return found


def host_interfaces(path: Path = INTERFACES) -> list[str]:
    try:
        return sorted(entry.name for entry in path.iterdir())
    except OSError:
        return []


@dataclass(frozen=True)
class InitPlan:
    """What `labctl lxd-init` would do, shown before it runs."""

    options: InitOptions
    preseed: str  # the document on stdin
    argv: list[str]  # the command it runs
    state: SetupState | None  # the daemon as found (None: it did not answer)
    problems: list[str]  # bad options: nothing runs (exit 2)
    refusal: str = ""  # the daemon is not labctl's to initialise: nothing runs

    @property
    def runnable(self) -> bool:
        return self.state is not None and not self.problems and not self.refusal


class LxdInitialiser:
    """Plans and runs the initialisation of the local LXD through the engine's runner."""

    def __init__(
        self,
        engine: LxdEngine,
        *,
        routes: Callable[[], list[ipaddress.IPv4Network]] = host_routes,
        interfaces: Callable[[], list[str]] = host_interfaces,
    ) -> None:
        self.engine = engine
        self._routes = routes
        self._interfaces = interfaces

    def plan(self, options: InitOptions) -> InitPlan:
        """Check the options and the daemon; the daemon not answering raises EngineError."""
        problems = option_problems(options, self._routes(), self._interfaces())
        state = self.engine.setup_state()
        return InitPlan(
            options,
            preseed_text(options),
            self.engine.init_argv(),
            state,
            problems,
            already_set_up(state) or "",
        )

    def apply(self, plan: InitPlan) -> SetupState:
        """Run the preseed (only a runnable plan), then read the daemon's set-up again."""
        if not plan.runnable:
            raise ValueError("not a runnable plan")
        self.engine.initialise(plan.preseed)
        return self.engine.setup_state()
