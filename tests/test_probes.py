from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labctl.errors import ProbeTimeoutError
from labctl.host.probes import check_domain, hammer, http_get, last_upstream, wait_until


class _Handler(BaseHTTPRequestHandler):
    backends = ["10.0.0.1:3000", "10.0.0.2:3000"]
    counter = 0
    status = 200

    def do_GET(self) -> None:
        cls = type(self)
        backend = cls.backends[cls.counter % len(cls.backends)]
        cls.counter += 1
        self.send_response(cls.status)
        self.send_header("X-Lab-Backend", backend)
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(b"hi")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    _Handler.counter, _Handler.status = 0, 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_last_upstream_takes_the_server_that_answered() -> None:
    assert last_upstream("10.0.0.1:3000, 10.0.0.2:3000") == "10.0.0.2:3000"
    assert last_upstream("10.0.0.1:3000") == "10.0.0.1:3000"
    assert last_upstream("10.0.0.1:3000 : 10.0.0.3:3000") == "10.0.0.3:3000"
    assert last_upstream(None) is None and last_upstream("") is None


def test_http_get_sends_the_domain_as_host(server: tuple[str, int]) -> None:
    ip, port = server
    answer = http_get(ip, port, "alvin.xyz")
    assert answer.status == 200 and answer.backend == "10.0.0.1:3000"


def test_http_get_never_raises_on_refused() -> None:
    answer = http_get("127.0.0.1", 1, "x.lab", timeout=1)
    assert answer.status is None and answer.error == "connection refused"


def test_check_domain_sees_every_backend(server: tuple[str, int]) -> None:
    ip, port = server
    expected = frozenset(_Handler.backends)
    check = check_domain(
        "alvin.xyz",
        port=port,
        expected_ip=ip,
        expected_backends=expected,
        requests=10,
        resolver=lambda name: [ip],
    )
    assert check.resolves and check.serving and check.all_backends_seen and check.healthy()
    assert len(check.statuses) == 2  # stops as soon as every backend answered


def test_check_domain_reports_wrong_resolution_and_missing_backends(
    server: tuple[str, int],
) -> None:
    ip, port = server
    _Handler.backends = ["10.0.0.1:3000"]
    try:
        check = check_domain(
            "alvin.xyz",
            port=port,
            expected_ip="10.9.9.9",
            expected_backends=frozenset({"10.0.0.1:3000", "10.0.0.2:3000"}),
            requests=4,
            resolver=lambda name: [ip],
        )
    finally:
        _Handler.backends = ["10.0.0.1:3000", "10.0.0.2:3000"]
    assert not check.resolves and not check.healthy()
    assert check.healthy(need_resolution=False) is False
    assert check.missing_backends == {"10.0.0.2:3000"}
    assert "resolves to 127.0.0.1, not the load balancer 10.9.9.9" in check.describe()
    assert "backends never seen: 10.0.0.2:3000" in check.describe()
    assert len(check.statuses) == 4  # bounded by `requests`


def test_check_domain_unresolvable_sends_nothing() -> None:
    check = check_domain(
        "nowhere.lab",
        port=80,
        expected_ip="10.0.0.1",
        expected_backends=frozenset(),
        requests=5,
        resolver=lambda name: [],
    )
    assert check.statuses == () and check.describe().endswith("nowhere.lab does not resolve")


def test_check_domain_without_resolution_goes_to_the_lb(server: tuple[str, int]) -> None:
    ip, port = server
    check = check_domain(
        "alvin.xyz",
        port=port,
        expected_ip=ip,
        expected_backends=frozenset(_Handler.backends),
        requests=4,
        resolver=lambda name: [],
        use_resolution=False,
    )
    assert check.via == ip and check.healthy(need_resolution=False) and not check.healthy()


def test_wait_until_retries_then_succeeds_without_sleeping() -> None:
    results = iter([1, 2, 3])
    slept: list[float] = []
    value = wait_until(
        lambda: next(results),
        lambda r: r == 3,
        timeout=60,
        interval=2,
        describe=str,
        what="counter",
        sleep=slept.append,
    )
    assert value == 3 and slept == [2, 2]


def test_wait_until_gives_up_with_a_clear_message() -> None:
    with pytest.raises(ProbeTimeoutError) as caught:
        wait_until(
            lambda: "HTTP 502",
            lambda r: False,
            timeout=0.01,
            interval=0,
            describe=lambda r: r,
            what="http://x.lab/",
            sleep=lambda s: None,
        )
    assert caught.value.message.startswith("http://x.lab/: not ready after 0s (")
    assert caught.value.message.endswith("attempts); last: HTTP 502")


def test_hammer_is_bounded_and_tallies(server: tuple[str, int]) -> None:
    ip, port = server
    tally = hammer(ip, port, "alvin.xyz", requests=20, deadline=10)
    assert tally.total == 20 and tally.ok == 20
    assert tally.by_backend == {"10.0.0.1:3000": 10, "10.0.0.2:3000": 10}
    assert hammer(ip, port, "alvin.xyz", requests=1000, deadline=0).total == 0
