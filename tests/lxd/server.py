"""A standalone LXD server for the tests: one daemon, a `dir` pool, a managed bridge with a
fixed subnet and no NAT, and the test image imported under IMAGE_ALIAS.

Never `lxd init --auto` nor `ipv4.address: auto`: to find a free subnet LXD then connects to
port 22 of random 10.x addresses. The subnet here is fixed and unused by the other test tiers
(the simulated VMs take 10.251.x.0/24).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.lxd.daemon import LxdDaemon
from tests.lxd.image import LxdImage
from tests.lxd.session import DEVICE_PREFIX, LxdRun
from tests.simvm._proc import SimError

IMAGE_ALIAS: Final = "labctl-test"
SERVER_BRIDGE: Final = f"{DEVICE_PREFIX}br0"
SERVER_SUBNET: Final = ipaddress.ip_network("10.252.0.0/24")
POOL: Final = "default"
POOL_DRIVER_ENV: Final = "LABCTL_LXD_POOL_DRIVER"
#: sparse loop file per pool; a dozen test containers use a fraction of it
POOL_SIZE: Final = "12GiB"


def pool_driver() -> str:
    """btrfs on a loop file when this host can (measured: launches 3-4x, snapshots and deletes
    of a running container 15-20x faster than `dir`, and no freeze during a snapshot), else dir;
    $LABCTL_LXD_POOL_DRIVER chooses."""
    wanted = os.environ.get(POOL_DRIVER_ENV)
    if wanted:
        return wanted
    has_btrfs = "btrfs" in Path("/proc/filesystems").read_text()
    return "btrfs" if has_btrfs and shutil.which("mkfs.btrfs") else "dir"


def pool_definition(name: str, driver: str) -> dict[str, Any]:
    pool: dict[str, Any] = {"name": name, "driver": driver}
    if driver != "dir":
        pool["config"] = {"size": POOL_SIZE}
    return pool


def server_preseed(driver: str) -> dict[str, Any]:
    host = f"{SERVER_SUBNET.network_address + 1}/{SERVER_SUBNET.prefixlen}"
    return {
        "config": {"images.auto_update_interval": 0},
        "storage_pools": [pool_definition(POOL, driver)],
        "networks": [
            {
                "name": SERVER_BRIDGE,
                "type": "bridge",
                # no NAT and no routing: nothing leaves the bridge, and LXD leaves
                # net.ipv4.ip_forward alone (with routing on it sets it to 1 host-wide); and
                # LXD's dnsmasq answers only the bridge's own names (`no-resolv`): without it,
                # it forwards a container's lookups (apt's, for one) to the host's nameservers
                "config": {
                    "ipv4.address": host,
                    "ipv4.nat": "false",
                    "ipv4.routing": "false",
                    "ipv6.address": "none",
                    "ipv4.firewall": "false",
                    "raw.dnsmasq": "no-resolv",
                },
            }
        ],
        "profiles": [
            {
                "name": "default",
                "devices": {
                    "root": {"path": "/", "pool": POOL, "type": "disk"},
                    "eth0": {"name": "eth0", "network": SERVER_BRIDGE, "type": "nic"},
                },
            }
        ],
    }


def import_image(daemon: LxdDaemon, image: LxdImage, alias: str = IMAGE_ALIAS) -> float:
    started = time.monotonic()
    daemon.lxc(
        "image", "import", str(image.metadata), str(image.rootfs), "--alias", alias, timeout=600
    )
    return time.monotonic() - started


@dataclass
class LxdServer:
    daemon: LxdDaemon
    driver: str = "dir"
    image_alias: str = IMAGE_ALIAS
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, run: LxdRun, image: LxdImage) -> LxdServer:
        from tests.lxd.hostnet import subnet_in_use

        taken = subnet_in_use(str(SERVER_SUBNET), DEVICE_PREFIX)
        if taken:
            raise SimError(f"the LXD test subnet {SERVER_SUBNET} is routed elsewhere: {taken}")
        server = cls(LxdDaemon(run.root / "server", name="server"), pool_driver())
        server.timings["daemon start"] = server.daemon.start()
        started = time.monotonic()
        server.daemon.init(server_preseed(server.driver))
        server.timings["preseed"] = time.monotonic() - started
        server.timings["image import"] = import_image(server.daemon, image)
        return server

    def stop(self) -> list[str]:
        """Delete every instance and shut the daemon down; returns the instances deleted."""
        deleted: list[str] = []
        if self.daemon.running():
            deleted = self.daemon.delete_all_instances()
        self.daemon.shutdown()
        return deleted
