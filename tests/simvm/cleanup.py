"""cleanup_all(prefix): remove everything simvm created under a name prefix, even after a crash."""

from __future__ import annotations

from ._proc import kill_all, link_names, netns_list, netns_pids, run
from .vm import tagged_pids


def cleanup_all(prefix: str) -> None:
    """Kill every process of every netns named prefix*, delete those netns, and every link
    (bridges, veths) named prefix*. Processes are found by netns membership and by the
    SIMVM_NETNS tag that every VM process inherits (orphans whose netns is gone)."""
    if not prefix:
        raise ValueError("cleanup_all needs a non-empty prefix")
    namespaces = [ns for ns in netns_list() if ns.startswith(prefix)]

    def pids() -> list[int]:
        found = set(tagged_pids(prefix))
        for ns in namespaces:
            found.update(netns_pids(ns))
        return sorted(found)

    kill_all(pids)
    for ns in namespaces:
        run(["ip", "netns", "delete", ns], check=False)
    links = [name for name in link_names() if name.startswith(prefix)]
    for name in sorted(links, key=lambda n: n.endswith("br")):  # veths first, bridges last
        if name in link_names():
            run(["ip", "link", "delete", name], check=False)
