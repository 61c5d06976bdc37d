"""SimNetwork: one Linux bridge standing in for the Multipass host network (e.g. mpqemubr0)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final

from ._proc import (
    SimError,
    file_lock,
    kill_all,
    link_names,
    netns_list,
    netns_pids,
    read_json,
    run,
    write_json,
)

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9]{0,9}$")


class SimNetwork:
    """A bridge `<name>br` holding the host address .1; VMs hang off it through veths.

    All device names start with `name`, so cleanup_all(prefix) finds them exactly.
    No NAT and no forwarding are configured: traffic stays between the VMs and the host.
    """

    def __init__(self, name: str, subnet: str, state_dir: Path) -> None:
        if not _NAME_RE.match(name):
            raise SimError(f"network name {name!r} must match {_NAME_RE.pattern} (ifname limit)")
        net = ipaddress.ip_network(subnet, strict=True)
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen != 24:
            raise SimError(f"subnet {subnet!r}: only IPv4 /24 subnets are supported")
        self.name = name
        self.subnet = net
        self.state_dir = Path(state_dir)
        self.bridge = f"{name}br"
        self.host_ip = str(net.network_address + 1)

    # -- names derived for VMs -------------------------------------------------------------
    def netns_name(self, vm_name: str) -> str:
        return f"{self.name}-{vm_name}"

    def veth_names(self, ip: str) -> tuple[str, str]:
        """(host side, guest side before rename); unique per IP and <= 15 chars."""
        octet = ipaddress.ip_address(ip).packed[-1]
        return f"{self.name}h{octet}", f"{self.name}g{octet}"

    # -- lifecycle -----------------------------------------------------------------------
    def ensure(self) -> None:
        """Idempotent: bridge up with the host address .1/24."""
        with file_lock(self.state_dir / "network.lock"):
            write_json(
                self.state_dir / "network.json", {"name": self.name, "subnet": str(self.subnet)}
            )
            if self.bridge not in link_names():
                self._check_subnet_free()
                run(["ip", "link", "add", self.bridge, "type", "bridge"])
            addrs = run(["ip", "-o", "-4", "addr", "show", "dev", self.bridge]).stdout
            if f" {self.host_ip}/" not in addrs:
                run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])

    def _check_subnet_free(self) -> None:
        routes = run(["ip", "-4", "route", "show", "to", "match", str(self.host_ip)]).stdout
        for line in routes.splitlines():
            dest = line.split()[0]
            if dest != "default" and ipaddress.ip_network(dest).prefixlen >= 8:
                raise SimError(f"subnet {self.subnet} already routed on this host: {line}")

    def allocate_ip(self) -> str:
        """Next free address in .2-.254, persisted in state_dir/ips.json under a lock."""
        with file_lock(self.state_dir / "network.lock"):
            used = self._read_ips()
            for host in list(self.subnet.hosts())[1:]:
                ip = str(host)
                if ip not in used:
                    used.append(ip)
                    write_json(self.state_dir / "ips.json", sorted(used))
                    return ip
        raise SimError(f"no free address left in {self.subnet}")

    def release_ip(self, ip: str) -> None:
        with file_lock(self.state_dir / "network.lock"):
            used = [u for u in self._read_ips() if u != ip]
            write_json(self.state_dir / "ips.json", sorted(used))

    def _read_ips(self) -> list[str]:
        path = self.state_dir / "ips.json"
        return [str(x) for x in read_json(path)] if path.exists() else []

    def destroy(self) -> None:
        """Remove the bridge and any leftover netns/veths (and their processes) of its VMs."""
        with file_lock(self.state_dir / "network.lock"):
            for ns in netns_list():
                if ns.startswith(f"{self.name}-"):
                    kill_all(lambda ns=ns: netns_pids(ns))
                    run(["ip", "netns", "delete", ns], check=False)
            veth = re.compile(rf"{re.escape(self.name)}[hg]\d{{1,3}}")
            for link in link_names():
                if veth.fullmatch(link):
                    run(["ip", "link", "delete", link], check=False)
            if self.bridge in link_names():
                run(["ip", "link", "delete", self.bridge])
            ips = self.state_dir / "ips.json"
            if ips.exists():
                ips.unlink()
