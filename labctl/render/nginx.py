"""Pure rendering of the load balancer's nginx site; each setting and the measurement behind it:
docs/nginx-failover.md.

lab.yaml values are validated by `labctl.model`; these functions still check every value that
lands in nginx syntax, so a value that slipped through raises ValueError instead of injecting
directives.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Final

from labctl.model import Lab
from labctl.scalars import NAME_RE

SITES_AVAILABLE: Final = "/etc/nginx/sites-available"
SITES_ENABLED: Final = "/etc/nginx/sites-enabled"
PLACEHOLDER_BODY: Final = "labctl: waiting for backends"
# Below Node's 5 s server.keepAliveTimeout, so nginx never reuses a socket Node just closed.
UPSTREAM_KEEPALIVE_TIMEOUT: Final = "4s"
_METHOD_LINES: Final = {"round_robin": None, "least_conn": "least_conn;", "ip_hash": "ip_hash;"}
_SERVER_NAME_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_PORT_RE: Final = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True)
class Backend:
    """One upstream server: the lab VM it runs on and its `IP:port`."""

    vm: str  # lab VM name, e.g. "app1"
    address: str  # "10.1.2.3:3000" or "[fd00::1]:3000"


def nginx_site_path(lab: Lab) -> str:
    """Where the lab's site lives on the LB VM (sites-enabled holds a symlink to it)."""
    return f"{SITES_AVAILABLE}/labctl-{_lab_name(lab)}.conf"


def nginx_enabled_path(lab: Lab) -> str:
    """The sites-enabled symlink that makes nginx load the site."""
    return f"{SITES_ENABLED}/labctl-{_lab_name(lab)}.conf"


def upstream_name(lab: Lab) -> str:
    return f"labctl_{_lab_name(lab)}"


def nginx_time(seconds: float) -> str:
    """A model duration (float seconds) as nginx time: whole seconds as `Ns`, else `Nms` (ceil)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds!r}")
    millis = math.ceil(round(seconds * 1000, 6))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def nginx_seconds(seconds: float) -> str:
    """Whole seconds, rounded up: `server ... fail_timeout=` rejects `ms` ("invalid parameter
    fail_timeout=500ms", nginx 1.22 parses it in seconds)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds!r}")
    return f"{math.ceil(round(seconds, 6))}s"


def render_nginx_site(lab: Lab, backends: list[Backend], *, last_resort: bool | None = None) -> str:
    """The LB site with real upstreams, for `labctl-lb-apply`.

    last_resort (default: wherever the method allows `backup`) lists every backend a second time
    as a `backup` peer with max_fails=0, see _last_resort_lines.
    """
    if not backends:
        # nginx refuses an empty upstream ("no servers are inside upstream"); ship the
        # placeholder site instead.
        raise ValueError("no backends: render_placeholder_site() is the site for a lab without any")
    lb = lab.lb
    upstream = upstream_name(lab)
    lines = [_header(lab), f"upstream {upstream} {{"]
    # Without a shared zone every worker keeps its own failure state: a dead
    # backend is then tried and failed once per worker, and a returning one is skipped by the
    # workers that have not retried it yet. The zone makes all workers agree.
    lines.append(f"    zone {upstream} 64k;")
    method = _METHOD_LINES[lb.method]
    if method:
        lines.append(f"    {method}")
    for backend in backends:
        address = _backend_address(backend.address)
        if not NAME_RE.fullmatch(backend.vm):
            raise ValueError(f"invalid backend VM name {backend.vm!r}")
        lines.append(
            f"    server {address} max_fails={int(lb.max_fails)} "
            f"fail_timeout={nginx_seconds(lb.fail_timeout)};  # {backend.vm}"
        )
    if last_resort is None:
        last_resort = supports_last_resort(lab)
    if last_resort:
        lines += _last_resort_lines(backends)
    if lb.keepalive > 0:
        # Needs HTTP/1.1 and an empty Connection header below on nginx < 1.29.7.
        lines += [
            f"    keepalive {int(lb.keepalive)};",
            f"    keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};",
        ]
    next_upstream = "error timeout http_502 http_503 http_504"
    if lb.retry_non_idempotent:
        next_upstream += " non_idempotent"  # retries POSTs too: duplicates become possible
    lines += [
        "}",
        "",
        "server {",
        *_listen_lines(lab),
        "    # Which backend answered; `always` keeps it on 5xx answers too.",
        "    add_header X-Lab-Backend $upstream_addr always;",
        "",
        "    location / {",
        f"        proxy_pass http://{upstream};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        # The 60 s defaults stall every request on a dead or hung VM (docs/nginx-failover.md).
        f"        proxy_connect_timeout {nginx_time(lb.connect_timeout)};",
        f"        proxy_read_timeout {nginx_time(lb.read_timeout)};",
        f"        proxy_next_upstream {next_upstream};",
        *(
            # Each backend once, as without the backup peers: they must not double the time a
            # request spends on hung backends before its 504.
            [f"        proxy_next_upstream_tries {len(backends)};"] if last_resort else []
        ),
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def supports_last_resort(lab: Lab) -> bool:
    """`backup` is refused with hash, ip_hash and random ("balancing method does not support
    parameter backup" from `nginx -t`)."""
    return lab.lb.method in ("round_robin", "least_conn")


def _last_resort_lines(backends: list[Backend]) -> list[str]:
    # nginx uses backup peers only once every primary is marked failed. After an outage of every
    # backend (a redeploy, a restart of all app VMs) the primaries stay skipped for fail_timeout,
    # while these peers (max_fails=0: never marked failed) carry live requests: the first request
    # after the apps return gets its 200 (docs/nginx-failover.md). During the outage they
    # still answer 502/504, as before. One dead backend never reaches them: the others serve.
    lines = [
        "    # Last resort: the same backends, used only while every server above is marked down."
    ]
    for backend in backends:
        address = _backend_address(backend.address)
        lines.append(f"    server {address} backup max_fails=0;  # {backend.vm}")
    return lines


def render_placeholder_site(lab: Lab) -> str:
    """The site shipped at launch, before app IPs are known: 503, same listen and server_name."""
    lines = [
        _header(lab),
        "server {",
        *_listen_lines(lab),
        "    default_type text/plain;",
        "    add_header Retry-After 10 always;",
        "",
        "    location / {",
        f'        return 503 "{PLACEHOLDER_BODY}\\n";',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _header(lab: Lab) -> str:
    return (
        f"# Managed by labctl for lab {_lab_name(lab)}: `labctl up` replaces this file through\n"
        "# labctl-lb-apply. Edits here are lost.\n"
    )


def _listen_lines(lab: Lab) -> list[str]:
    names = [_server_name(name) for name in lab.server_names]
    port = int(lab.lb.port)
    if not 1 <= port <= 65535:
        raise ValueError(f"invalid LB port {port}")
    # default_server: requests by IP (no matching Host) reach the lab, not the welcome page.
    return [f"    listen {port} default_server;", f"    server_name {' '.join(names)};", ""]


def _lab_name(lab: Lab) -> str:
    if not NAME_RE.fullmatch(lab.name):
        raise ValueError(f"invalid lab name {lab.name!r}")
    return lab.name


def _server_name(name: str) -> str:
    if not _SERVER_NAME_RE.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid server name {name!r}")
    return name


def _backend_address(address: str) -> str:
    """Accept only `IPv4:port` or `[IPv6]:port`: hostnames would be resolved once at load and fail
    hard when unknown, and anything else could inject directives."""
    host, sep, port = address.rpartition(":")
    if not sep or not _PORT_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"backend address must be IP:port, got {address!r}")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        raise ValueError(f"backend address must be IP:port, got {address!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        # `fe80::1%eth0`: the scope id is free text, so it could carry `;` or `}`.
        raise ValueError(f"scoped IPv6 backends are not supported, got {address!r}")
    if (ip.version == 6) != bracketed:
        raise ValueError(f"IPv6 backends are written [addr]:port, got {address!r}")
    return f"[{ip.compressed}]:{int(port)}" if bracketed else f"{ip.compressed}:{int(port)}"
