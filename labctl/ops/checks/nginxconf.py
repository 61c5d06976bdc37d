"""Read the `server {}` blocks out of `nginx -T` (the whole configuration nginx loaded), enough to
say whether a student's reverse proxy answers for their domain. Pure: text in, data out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# Real configurations nest a handful of blocks (http, server, location, if); a deeper dump is not
# nginx's (the VM's root can print anything) and is read no further, keeping the scan linear.
MAX_NESTING: Final = 32
_TOKEN: Final = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};#"']+""")


@dataclass(frozen=True)
class ServerBlock:
    names: list[str] = field(default_factory=list)
    listens: list[str] = field(default_factory=list)
    proxy_passes: list[str] = field(default_factory=list)
    upstreams: dict[str, list[str]] = field(default_factory=dict)  # proxied upstream -> servers


def server_blocks(dump: str) -> list[ServerBlock]:
    """Every `http { server { ... } }` block, with the `upstream` groups its proxy_pass names."""
    tokens = [t for t in _TOKEN.findall(dump) if not t.startswith("#")]
    upstreams: dict[str, list[str]] = {}
    servers: list[tuple[list[str], list[str], list[str]]] = []
    stack: list[str] = []  # the block names we are inside
    statement: list[str] = []
    current_upstream = ""
    for word in tokens:
        if word == "{":
            if len(stack) >= MAX_NESTING:
                break
            name = statement[0] if statement else ""
            stack.append(name)
            if name == "upstream" and len(statement) > 1:
                current_upstream = statement[1]
                upstreams[current_upstream] = []
            if name == "server" and "upstream" not in stack[:-1]:
                servers.append(([], [], []))
            statement = []
        elif word == "}":
            if stack and stack.pop() == "upstream":
                current_upstream = ""
            statement = []
        elif word == ";":
            _statement(statement, stack, servers, upstreams, current_upstream)
            statement = []
        else:
            statement.append(word.strip("\"'"))
    blocks = []
    for names, listens, passes in servers:
        used = {
            _upstream_name(p): upstreams[_upstream_name(p)]
            for p in passes
            if _upstream_name(p) in upstreams
        }
        blocks.append(ServerBlock(names, listens, passes, used))
    return blocks


def _statement(
    statement: list[str],
    stack: list[str],
    servers: list[tuple[list[str], list[str], list[str]]],
    upstreams: dict[str, list[str]],
    current_upstream: str,
) -> None:
    if not statement:
        return
    directive, args = statement[0], statement[1:]
    if current_upstream and stack and stack[-1] == "upstream" and directive == "server" and args:
        upstreams[current_upstream].append(args[0])
    elif servers and "server" in stack and "upstream" not in stack:
        names, listens, passes = servers[-1]
        if directive == "server_name":
            names += [a.lower().rstrip(".") for a in args]
        elif directive == "listen" and args:
            listens.append(args[0])
        elif directive == "proxy_pass" and args:
            passes.append(args[0])


def _upstream_name(proxy_pass: str) -> str:
    """`http://backend/` -> `backend` (an upstream group's name, or a host:port)."""
    rest = proxy_pass.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def for_domain(blocks: list[ServerBlock], domain: str) -> list[ServerBlock]:
    return [block for block in blocks if domain.lower() in block.names]
