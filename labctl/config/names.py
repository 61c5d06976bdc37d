"""Rules for the names a lab puts into the hosts file (domain, aliases), beyond their syntax.

The syntax and the always-reserved names (localhost, ip6-*) are field rules in `labctl/model.py`.
Here: names that depend on this machine, passed in as facts so config never reads the host
(`HostFacts`: the hostname and the names the hosts file already has outside labctl's blocks), and
special-use TLDs that get a warning because browsers treat them specially.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from labctl.config.yamlpos import Path_
from labctl.model import Lab

# What browsers do with these TLDs (looked up in their source and docs): a lab under one is reachable with
# curl through the hosts file but not (or not as expected) in a browser.
_TLD_NOTES: Final = {
    "local": "is multicast DNS (RFC 6762): macOS and Linux with nss-mdns ask the local network "
    "for .local names, so lookups can be slow or answered by another device",
    "localhost": "always means this machine (RFC 6761): Chrome and Firefox resolve *.localhost "
    "to 127.0.0.1 themselves and never read the hosts file, so a browser will not reach the lab",
    "test": "is reserved for testing (RFC 6761): fine through the hosts file, never a real site; "
    "browsers search the web for it when typed without http://",
    "example": "is reserved for documentation (RFC 2606): fine through the hosts file, never a "
    "real site; browsers search the web for it when typed without http://",
    "invalid": "is reserved to never resolve (RFC 6761): resolvers may answer 'no such domain' "
    "without reading the hosts file",
}
# Whole TLDs on the HSTS preload list (Google Registry): every browser (Chrome, Firefox, Safari,
# Edge) connects to them over https only, and labctl's load balancer serves plain http.
HSTS_PRELOADED_TLDS: Final = ("dev", "app", "page", "foo", "new", "day")


@dataclass(frozen=True)
class HostFacts:
    """What this machine says about names, gathered by the caller (ops), never by config."""

    hostname: str = ""  # socket.gethostname()
    hosts_names: dict[str, str] = field(default_factory=dict)  # name -> its hosts-file line,
    # for names outside every labctl block


def server_name_paths(lab: Lab) -> list[tuple[Path_, str]]:
    """Every server name the lab (or each student of a class) puts into the hosts file."""
    if lab.class_ is None:
        return [
            (("domain",), lab.domain),
            *((("aliases", i), a) for i, a in enumerate(lab.aliases)),
        ]
    found: list[tuple[Path_, str]] = []
    for student in lab.students:
        found.append((("class", "domain"), lab.class_.domain_for(student)))
        found += [
            (("class", "aliases", i), alias)
            for i, alias in enumerate(lab.class_.aliases_for(student))
        ]
    return found


def host_name_problems(lab: Lab, facts: HostFacts) -> list[tuple[Path_, str]]:
    """Names the machine already uses: its own name, and names in the hosts file outside labctl."""
    found: list[tuple[Path_, str]] = []
    own = facts.hostname.lower().rstrip(".")
    own_names = {own, own.split(".", 1)[0]} - {""}
    seen: set[str] = set()
    for path, name in server_name_paths(lab):
        if name in seen:
            continue
        seen.add(name)
        if name in own_names:
            found.append(
                (
                    path,
                    f"{name!r} is this machine's own name ({facts.hostname}); a hosts entry "
                    "would point it at a lab VM",
                )
            )
        elif name in facts.hosts_names:
            found.append(
                (
                    path,
                    f"{name!r} is already in the hosts file outside labctl's entries "
                    f"({facts.hosts_names[name]!r}); labctl will not point a system name at a lab "
                    "VM: pick another name or remove that line yourself",
                )
            )
    return found


def tld_warnings(lab: Lab) -> list[tuple[Path_, str]]:
    """Special-use TLDs: allowed, but say what browsers will do with them."""
    found: list[tuple[Path_, str]] = []
    seen: set[tuple[Path_, str]] = set()
    for path, name in server_name_paths(lab):
        tld = name.rsplit(".", 1)[-1]
        if tld == name or (path, tld) in seen:  # a single label: no TLD
            continue
        seen.add((path, tld))
        if tld in HSTS_PRELOADED_TLDS:
            found.append(
                (
                    path,
                    f"{name!r}: .{tld} is HSTS-preloaded: browsers only connect to it over https "
                    "and refuse plain http, which is all the lab's load balancer serves; use "
                    "curl, or another TLD for a browser",
                )
            )
        elif tld in _TLD_NOTES:
            found.append((path, f"{name!r}: .{tld} {_TLD_NOTES[tld]}"))
    return found


def hosts_names_outside_labctl(text: str) -> dict[str, str]:
    """name -> its line, for every hosts-file line outside `# BEGIN labctl` / `# END labctl`."""
    names: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# BEGIN labctl "):
            inside = True
            continue
        if line.startswith("# END labctl "):
            inside = False
            continue
        content = line.split("#", 1)[0].split()
        if inside or len(content) < 2:
            continue
        shown = " ".join(content)
        shown = shown if len(shown) <= 80 else shown[:80] + "…"
        for name in content[1:]:
            names.setdefault(name.lower().rstrip("."), shown)
    return names
