"""Is the lab's domain serving? DNS + HTTP checks, and the one retry policy (tenacity) for waits.

A check sends a bounded number of requests to the address the domain resolves to, with the
domain as Host header (as a browser would), and records which backend answered each one from the
`X-Lab-Backend` header ($upstream_addr) that the rendered nginx site adds.

Every request is bounded in time as a whole (bounded_http.py): the VMs that answer are the
students', and a peer that trickles bytes ends the request at its `timeout` like a silent one.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from labctl.errors import ProbeTimeoutError
from labctl.host import bounded_http

BACKEND_HEADER: Final = "X-Lab-Backend"
BODY_LIMIT: Final = 65536  # bytes of a page that are read; the rest is never received
T = TypeVar("T")
Resolver = Callable[[str], list[str]]


def resolve(name: str) -> list[str]:
    """IPv4 addresses the system resolver (hosts file first, per nsswitch) gives for `name`."""
    try:
        infos = socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None  # None: no HTTP answer at all
    backend: str | None  # the upstream that answered (last address of $upstream_addr)
    error: str = ""
    seconds: float = 0.0


def http_get(ip: str, port: int, host: str, *, path: str = "/", timeout: float = 5.0) -> HttpAnswer:
    """One GET to ip:port with `Host: host`, over within `timeout` seconds in all; never raises."""
    started = time.monotonic()
    try:
        answer = _get(ip, port, host, path=path, timeout=timeout, agent="labctl-probe")
    except (OSError, http.client.HTTPException) as exc:
        return HttpAnswer(
            None, None, error=bounded_http.describe(exc), seconds=time.monotonic() - started
        )
    return HttpAnswer(
        answer.status,
        last_upstream(answer.header(BACKEND_HEADER)),
        seconds=time.monotonic() - started,
    )


def _get(
    ip: str, port: int, host: str, *, path: str, timeout: float, agent: str, limit: int = BODY_LIMIT
) -> bounded_http.Answer:
    headers = {"Host": host, "User-Agent": agent}
    return bounded_http.get(ip, port, path=path, headers=headers, timeout=timeout, body_limit=limit)


def last_upstream(header: str | None) -> str | None:
    """`$upstream_addr` lists every server tried ("a:1, b:1"); the last one answered."""
    if not header:
        return None
    last = header.replace(" : ", ",").split(",")[-1].strip()
    return last or None


@dataclass(frozen=True)
class DomainCheck:
    domain: str
    expected_ip: str | None
    resolved: tuple[str, ...] = ()
    statuses: tuple[int | None, ...] = ()
    backends_seen: frozenset[str] = frozenset()
    expected_backends: frozenset[str] = frozenset()
    error: str = ""
    via: str | None = None  # the address requests went to

    @property
    def resolves(self) -> bool:
        return self.expected_ip is not None and self.expected_ip in self.resolved

    @property
    def serving(self) -> bool:
        return bool(self.statuses) and any(code == 200 for code in self.statuses)

    @property
    def all_backends_seen(self) -> bool:
        return self.expected_backends <= self.backends_seen

    @property
    def missing_backends(self) -> frozenset[str]:
        return self.expected_backends - self.backends_seen

    def healthy(self, *, need_resolution: bool = True) -> bool:
        return (self.resolves or not need_resolution) and self.serving and self.all_backends_seen

    def describe(self) -> str:
        parts = []
        if self.expected_ip and not self.resolves:
            got = ", ".join(self.resolved) or "nothing"
            parts.append(
                f"{self.domain} resolves to {got}, not the load balancer {self.expected_ip}"
            )
        if not self.statuses:
            parts.append(self.error or "no request was sent")
        elif not self.serving:
            codes = sorted({str(code) if code else "no answer" for code in self.statuses})
            parts.append(f"HTTP {'/'.join(codes)}" + (f" ({self.error})" if self.error else ""))
        if self.missing_backends:
            parts.append("backends never seen: " + ", ".join(sorted(self.missing_backends)))
        return "; ".join(parts) or "serving"


def check_domain(
    domain: str,
    *,
    port: int,
    expected_ip: str | None,
    expected_backends: frozenset[str],
    requests: int,
    timeout: float = 5.0,
    deadline: float | None = None,
    resolver: Resolver = resolve,
    use_resolution: bool = True,
) -> DomainCheck:
    """Resolve `domain`, then send up to `requests` GETs; stop early once every backend answered.

    Each GET is over within `timeout` seconds, all of them within `deadline` seconds (default:
    `requests` x `timeout`). With `use_resolution=False` (hosts file not managed) the requests go
    straight to the load balancer's address, still with the domain as Host header.
    """
    end = time.monotonic() + (deadline if deadline is not None else max(1, requests) * timeout)
    resolved = tuple(resolver(domain))
    target = (resolved[0] if resolved else None) if use_resolution else expected_ip
    if expected_ip and expected_ip in resolved:
        target = expected_ip
    if target is None:
        return DomainCheck(
            domain,
            expected_ip,
            resolved,
            expected_backends=expected_backends,
            error=f"{domain} does not resolve",
        )
    statuses: list[int | None] = []
    seen: set[str] = set()
    error = ""
    for _ in range(max(1, requests)):
        left = end - time.monotonic()
        if left <= 0 and statuses:
            error = error or f"out of time after {len(statuses)} requests"
            break
        answer = http_get(target, port, domain, timeout=max(min(timeout, left), 0.001))
        statuses.append(answer.status)
        error = answer.error or error
        if answer.status == 200 and answer.backend:
            seen.add(answer.backend)
        if answer.status is None and not statuses.count(200):
            break  # nothing listens: more requests would only wait longer
        if expected_backends <= seen and answer.status == 200:
            break
    return DomainCheck(
        domain,
        expected_ip,
        resolved,
        tuple(statuses),
        frozenset(seen),
        expected_backends,
        error,
        via=target,
    )


def wait_until(
    attempt: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    interval: float,
    describe: Callable[[T], str],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[T], None] | None = None,
) -> T:
    """Call `attempt` until `done(result)` or `timeout` seconds passed (tenacity).

    Raises ProbeTimeoutError naming `what`, the attempt count and the last result.
    """
    attempts = 0

    def counted() -> T:
        nonlocal attempts
        attempts += 1
        result = attempt()
        if on_retry and not done(result):
            on_retry(result)
        return result

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda result: not done(result)),
        sleep=sleep,
    )
    try:
        return retrying(counted)
    except RetryError as exc:
        last: T = exc.last_attempt.result()
        raise ProbeTimeoutError(
            f"{what}: not ready after {timeout:.0f}s ({attempts} attempts); last: {describe(last)}"
        ) from None


@dataclass
class Tally:
    """Counts of a bounded request loop (drills, e2e tests)."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_backend: dict[str, int] = field(default_factory=dict)
    max_seconds: float = 0.0

    def add(self, answer: HttpAnswer) -> None:
        self.total += 1
        key = str(answer.status) if answer.status else f"error: {answer.error}"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        if answer.backend:
            self.by_backend[answer.backend] = self.by_backend.get(answer.backend, 0) + 1
        self.max_seconds = max(self.max_seconds, answer.seconds)

    @property
    def ok(self) -> int:
        return self.by_status.get("200", 0)


def hammer(
    ip: str, port: int, host: str, *, requests: int, deadline: float, timeout: float = 10.0
) -> Tally:
    """Send up to `requests` sequential GETs, all over within `deadline` seconds (bounded both
    ways: a GET gets at most `timeout` and never more than the time left)."""
    tally = Tally()
    end = time.monotonic() + deadline
    for _ in range(requests):
        left = end - time.monotonic()
        if left <= 0:
            break
        tally.add(http_get(ip, port, host, timeout=min(timeout, left)))
    return tally


@dataclass(frozen=True)
class HttpPage:
    """One GET with what a check needs to judge it: status, headers (lower-case names), body."""

    status: int | None  # None: no HTTP answer at all
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


def fetch(
    ip: str, port: int, host: str, *, path: str = "/", timeout: float = 5.0, limit: int = BODY_LIMIT
) -> HttpPage:
    """GET `path` from ip:port with `Host: host`, over within `timeout` seconds in all, the first
    `limit` bytes of the body; never raises."""
    try:
        answer = _get(ip, port, host, path=path, timeout=timeout, agent="labctl-check", limit=limit)
    except (OSError, http.client.HTTPException) as exc:
        return HttpPage(None, error=bounded_http.describe(exc))
    headers = {name.lower(): value for name, value in answer.headers}
    return HttpPage(answer.status, headers, answer.body.decode("utf-8", errors="replace"))


def retry_attempts(
    attempt: Callable[[], T],
    passed: Callable[[T], bool],
    *,
    attempts: int,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `attempt` up to `attempts` times, `interval` apart, until `passed(result)`; return the
    last result either way (a check's `retry:`)."""
    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda result: not passed(result)),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
    )
    return retrying(attempt)
