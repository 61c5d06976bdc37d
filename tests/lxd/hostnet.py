"""The host's network state that LXD changes behind our back, snapshotted and put back.

A managed LXD bridge adds iptables rules commented "generated for LXD network <name>" (again,
duplicated, after every daemon restart; `lxc network delete` removes one copy at most) and sets
`net.ipv4.ip_forward=1`, which turns forwarding on for every interface. Other test tiers share
this host, so teardown diffs the rules against a baseline taken before LXD started and restores
the forwarding switches. iptables here may be the nf_tables shim with no `nft` binary, so rules
are read and deleted through `iptables -S` / `-D`, which both backends understand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import shlex
from collections import Counter
from pathlib import Path
from typing import Final

from tests.simvm._proc import SimError, link_names, run

FAMILIES: Final = ("iptables", "ip6tables")
TABLES: Final = ("filter", "nat", "mangle", "raw")
LXD_RULE_MARK: Final = "generated for LXD"
SYSCTL: Final = Path("/proc/sys")

#: "<family> <table>" -> the table's rules as `iptables -S` prints them
Firewall = dict[str, list[str]]


def firewall_snapshot() -> Firewall:
    snapshot: Firewall = {}
    for family in FAMILIES:
        for table in TABLES:
            proc = run([family, "-w", "5", "-t", table, "-S"], check=False)
            if proc.returncode == 0:  # a table the kernel lacks is simply not there
                snapshot[f"{family} {table}"] = proc.stdout.splitlines()
    return snapshot


def ours(rule: str, device_prefix: str) -> bool:
    """A rule LXD made for one of our networks (its comment names it, or it names one of our
    devices); the developer's own LXD networks' rules never match."""
    words = shlex.split(rule)
    mentions_device = any(
        flag in ("-i", "-o") and name.startswith(device_prefix)
        for flag, name in itertools.pairwise(words)
    )
    return f"{LXD_RULE_MARK} network {device_prefix}" in rule or mentions_device


def restore_firewall(baseline: Firewall, device_prefix: str) -> list[str]:
    """Delete every rule (and chain) added since `baseline` that LXD made; return what was
    deleted. Rules someone else added meanwhile stay (they are not ours to judge)."""
    removed: list[str] = []
    for key, now in firewall_snapshot().items():
        family, table = key.split()
        extra = Counter(now) - Counter(baseline.get(key, []))
        added_rules = [line for line in now if line.startswith("-A ") and extra[line] > 0]
        for line in reversed(added_rules):
            if extra[line] == 0 or not ours(line, device_prefix):
                continue
            extra[line] -= 1
            run([family, "-w", "5", "-t", table, "-D", *shlex.split(line)[1:]])
            removed.append(f"{key}: {line}")
        for line in now:
            chain = line.split()[1] if line.startswith("-N ") else ""
            if chain and extra[line] > 0 and ("lxd" in chain.lower()):
                run([family, "-w", "5", "-t", table, "-F", chain])
                run([family, "-w", "5", "-t", table, "-X", chain])
                removed.append(f"{key}: {line}")
    return removed


def leftover_lxd_rules(baseline: Firewall, device_prefix: str) -> list[str]:
    """LXD's rules for our networks that are still there beyond the baseline."""
    left = []
    for key, now in firewall_snapshot().items():
        extra = Counter(now) - Counter(baseline.get(key, []))
        left += [f"{key}: {rule}" for rule in extra.elements() if ours(rule, device_prefix)]
    return left


def forwarding_snapshot() -> dict[str, str]:
    """ip_forward and every interface's IPv4/IPv6 `forwarding` switch, by /proc/sys path."""
    found = {"net/ipv4/ip_forward": (SYSCTL / "net/ipv4/ip_forward").read_text().strip()}
    for family in ("ipv4", "ipv6"):
        for switch in sorted((SYSCTL / "net" / family / "conf").glob("*/forwarding")):
            found[str(switch.relative_to(SYSCTL))] = switch.read_text().strip()
    return found


def restore_forwarding(baseline: dict[str, str]) -> list[str]:
    """Write back what changed; ip_forward first, because writing it resets every interface."""
    changed = []
    ordered = sorted(baseline, key=lambda key: key != "net/ipv4/ip_forward")
    for key in ordered:
        path = SYSCTL / key
        with contextlib.suppress(FileNotFoundError):  # an interface deleted meanwhile
            if path.read_text().strip() != baseline[key]:
                path.write_text(baseline[key] + "\n")
                changed.append(f"{key}={baseline[key]}")
    return changed


def forwarding_changes(baseline: dict[str, str]) -> list[str]:
    """Switches that still differ from the baseline (interfaces that exist in both)."""
    now = forwarding_snapshot()
    return [
        f"{key}: {baseline[key]} -> {now[key]}"
        for key in baseline
        if now.get(key, baseline[key]) != baseline[key]
    ]


def ensure_bridge(name: str, host_cidr: str) -> None:
    """A Linux bridge `name` holding `host_cidr` (the host's address on it), up; idempotent."""
    if name not in link_names():
        run(["ip", "link", "add", name, "type", "bridge"])
    shown = run(["ip", "-o", "-4", "addr", "show", "dev", name]).stdout
    if f" {host_cidr} " not in shown:
        run(["ip", "addr", "add", host_cidr, "dev", name])
    run(["ip", "link", "set", name, "up"])


def subnet_in_use(subnet: str, device_prefix: str) -> str | None:
    """A route to `subnet` through a device that is not ours, or None."""
    net = ipaddress.ip_network(subnet)
    for line in run(["ip", "-4", "route", "show"]).stdout.splitlines():
        words = line.split()
        if not words or words[0] == "default":
            continue
        try:
            routed = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        device = words[words.index("dev") + 1] if "dev" in words else ""
        if routed.overlaps(net) and not device.startswith(device_prefix):
            return line
    return None


def delete_links(device_prefix: str) -> list[str]:
    """Delete every link named `device_prefix`*, and every link enslaved to one of those
    bridges (LXD's host-side veths are named veth<random>); return the names deleted."""
    ours_now = [name for name in link_names() if name.startswith(device_prefix)]
    ports = []
    for bridge in ours_now:
        shown = run(["ip", "-o", "link", "show", "master", bridge], check=False).stdout
        ports += [line.split(":", 2)[1].strip().split("@", 1)[0] for line in shown.splitlines()]
    deleted = []
    for name in [*ports, *ours_now]:
        if name in link_names():
            run(["ip", "link", "delete", name], check=False)
            deleted.append(name)
    left = [name for name in deleted if name in link_names()]
    if left:
        raise SimError(f"links survived deletion: {left}")
    return deleted
