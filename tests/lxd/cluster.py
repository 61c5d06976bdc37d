"""A real LXD cluster on this one machine: N member daemons, each with its own LXD_DIR, on their
own loopback addresses, and a host bridge standing in for the classroom LAN.

Members listen on 127.0.1.<n>:MEMBER_PORT (LXD 5.0.2 accepts loopback cluster addresses); the
port is not LXD's usual 8443 so that a developer's own LXD listening on [::]:8443 does not
collide. The cluster has no managed network (`networks: []`): the default profile's eth0 is a
bridged NIC on LAN_BRIDGE, where a dnsmasq of ours (own pid and lease files, a fixed range)
hands out addresses the host reaches directly, as a classroom LAN's DHCP server would. A
managed bridge would not do: every member would have the same subnet behind its own NAT.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.lxd import hostnet
from tests.lxd.daemon import LxdDaemon
from tests.lxd.image import LxdImage
from tests.lxd.instances import poll
from tests.lxd.server import IMAGE_ALIAS, POOL_SIZE, import_image, pool_definition, pool_driver
from tests.lxd.session import DEVICE_PREFIX, LxdRun
from tests.simvm._proc import SimError, run

LAN_BRIDGE: Final = f"{DEVICE_PREFIX}lan0"
LAN_SUBNET: Final = ipaddress.ip_network("10.252.1.0/24")
LAN_HOST: Final = str(LAN_SUBNET.network_address + 1)
DHCP_RANGE: Final = (str(LAN_SUBNET.network_address + 100), str(LAN_SUBNET.network_address + 199))
MEMBER_PORT: Final = 18443
POOL: Final = "data"


def member_address(index: int) -> str:
    return f"127.0.1.{index}:{MEMBER_PORT}"


def port_taken(address: str) -> str | None:
    """A listening socket that would keep a member from binding `address`, or None."""
    host, port = address.rsplit(":", 1)
    for line in run(["ss", "-Hltn"]).stdout.splitlines():
        local = line.split()[3] if len(line.split()) > 3 else ""
        bound_host, _, bound_port = local.rpartition(":")
        if bound_port == port and bound_host in (host, "0.0.0.0", "*", "[::]"):
            return line
    return None


class Lan:
    """LAN_BRIDGE with the host at .1 and a DHCP-only dnsmasq (no DNS: --port=0)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid_file = folder / "lan-dnsmasq.pid"
        self.lease_file = folder / "lan-dnsmasq.leases"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        taken = hostnet.subnet_in_use(str(LAN_SUBNET), DEVICE_PREFIX)
        if taken:
            raise SimError(f"the LXD test LAN {LAN_SUBNET} is routed elsewhere: {taken}")
        hostnet.ensure_bridge(LAN_BRIDGE, f"{LAN_HOST}/{LAN_SUBNET.prefixlen}")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lease_file.touch()
        with (self.folder / "lan-dnsmasq.log").open("ab") as log:
            self.process = self._spawn(log)

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                f"--interface={LAN_BRIDGE}",
                "--bind-interfaces",
                "--except-interface=lo",
                "--port=0",
                f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},1h",
                "--dhcp-authoritative",
                f"--dhcp-leasefile={self.lease_file}",
                f"--pid-file={self.pid_file}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None


@dataclass
class LxdCluster:
    members: list[LxdDaemon]
    lan: Lan
    driver: str = "dir"
    image_alias: str = IMAGE_ALIAS
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def member(self, name: str) -> LxdDaemon:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def client(self, avoid: str | None = None) -> LxdDaemon:
        """A running member to send `lxc` commands through (not `avoid`)."""
        for member in self.members:
            if member.name != avoid and member.running():
                return member
        raise SimError("no cluster member is running")

    @classmethod
    def start(cls, run: LxdRun, image: LxdImage, size: int = 3) -> LxdCluster:
        folder = run.root / "cluster"
        addresses = [member_address(n) for n in range(1, size + 1)]
        for address in addresses:
            taken = port_taken(address)
            if taken:
                raise SimError(f"cannot start a test cluster member on {address}: {taken}")
        hosts = [address.rsplit(":", 1)[0] for address in addresses]
        members = [
            LxdDaemon(folder / f"m{n}", name=f"m{n}", address=address, no_proxy=hosts)
            for n, address in enumerate(addresses, start=1)
        ]
        cluster = cls(members, Lan(folder), pool_driver())
        started = time.monotonic()
        cluster.lan.start()
        password = secrets.token_hex(16)  # never printed; the run folder is 0711, files 0600
        first = members[0]
        first.start()
        first.init(bootstrap_preseed(first, password, cluster.driver))
        certificate = (first.dir / "cluster.crt").read_text()
        for member in members[1:]:
            member.start()
            member.init(join_preseed(member, first, certificate, password, cluster.driver))
        cluster.timings["cluster formed"] = time.monotonic() - started
        cluster.timings["image import"] = import_image(first, image)
        return cluster

    def stop(self) -> list[str]:
        """Delete every instance, shut every member down (the first one last), stop the LAN."""
        deleted: list[str] = []
        running = [m for m in self.members if m.running()]
        if running:
            deleted = running[0].delete_all_instances()
        # all at once: shut down one by one, the last member would wait for a quorum
        with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
            list(pool.map(lambda member: member.shutdown(timeout=30), self.members))
        self.lan.stop()
        return deleted

    # -- member failures -----------------------------------------------------------------
    def kill_member(self, name: str) -> None:
        """SIGKILL one member's daemon: its containers keep running (their monitors are
        separate processes), but nothing can manage them until it is back."""
        self.member(name).kill()

    def stop_member(self, name: str) -> None:
        """`lxd shutdown` on one member: it stops its containers and exits, like a member
        machine being shut down."""
        self.member(name).shutdown(timeout=60)

    def start_member(self, name: str, timeout: float = 60) -> float:
        """Start a stopped or killed member again; it rejoins with its containers."""
        return self.member(name).start(timeout)

    def wait_settled(self, timeout: float = 120) -> float:
        """Until every member answers for every container: none lists as `Error` and an exec
        through each member reaches a container on each other member. After a member restarts,
        the others reconnect to it only at a later heartbeat (~15 s): a module that starts on
        a cluster the previous one has just restarted waits here, so it starts from three
        members that answer. Returns the seconds it took."""
        started = time.monotonic()

        def settled() -> bool | None:
            for client in self.members:
                listed = client.lxc("list", "--format", "json", check=False, timeout=60)
                if listed.returncode != 0:
                    return None
                rows = json.loads(listed.stdout)
                if any(row["status"] == "Error" for row in rows):
                    return None
                one_per_member = {row["location"]: row["name"] for row in rows}
                for name in one_per_member.values():
                    probe = client.lxc("exec", name, "--", "true", check=False, timeout=60)
                    if probe.returncode != 0:
                        return None
            return True

        poll("every cluster member to answer for its containers", settled, timeout, every=2)
        return time.monotonic() - started


def bootstrap_preseed(first: LxdDaemon, password: str, driver: str) -> dict[str, Any]:
    return {
        "config": {
            "core.https_address": first.address,
            "core.trust_password": password,
            "images.auto_update_interval": 0,
        },
        "storage_pools": [pool_definition(POOL, driver)],
        "networks": [],
        "profiles": [
            {
                "name": "default",
                "devices": {
                    "root": {"path": "/", "pool": POOL, "type": "disk"},
                    "eth0": {
                        "name": "eth0",
                        "nictype": "bridged",
                        "parent": LAN_BRIDGE,
                        "type": "nic",
                    },
                },
            }
        ],
        "cluster": {"server_name": first.name, "enabled": True},
    }


def join_preseed(
    member: LxdDaemon, first: LxdDaemon, certificate: str, password: str, driver: str
) -> dict[str, Any]:
    # a pool's source (and a loop file's size) is the one thing each member sets for itself
    member_config = [{"entity": "storage-pool", "name": POOL, "key": "source", "value": ""}]
    if driver != "dir":
        member_config.append(
            {"entity": "storage-pool", "name": POOL, "key": "size", "value": POOL_SIZE}
        )
    return {
        "cluster": {
            "enabled": True,
            "server_name": member.name,
            "server_address": member.address,
            "cluster_address": first.address,
            "cluster_certificate": certificate,
            "cluster_password": password,
            "member_config": member_config,
        }
    }
