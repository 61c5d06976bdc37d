"""Recovery of the rendered site on a real nginx, with loopback backends only.

The last-resort `backup` peers must make the first request after every backend returns a 200,
where the same site without them keeps answering 502 for fail_timeout; and while every backend
is down the course's lesson still holds: 502 when they refuse, 504 when they hang, and a hung
lab costs a request each backend's read timeout once, not twice.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from labctl.render.userdata import Backend, render_nginx_site
from tests.test_rendered_real_tools import (
    HELLO_LAB,
    backend_argv,
    free_port,
    get,
    lab_from,
    loopback_only,
    need,
    started,
    variant,
    wait_for_port,
    write_wrapper,
)

HOSTS = {"app1": "127.0.0.2", "app2": "127.0.0.3"}


def _site(tmp_path: Path, lb_port: int, ports: dict[str, int], *, last_resort: bool) -> Path:
    lab = lab_from(
        variant(
            HELLO_LAB,
            lb={
                "port": lb_port,
                "fail_timeout": "5s",
                "connect_timeout": "1s",
                "read_timeout": "1s",
            },
        )
    )
    backends = [Backend(vm, f"{HOSTS[vm]}:{ports[vm]}") for vm in ("app1", "app2")]
    site = render_nginx_site(lab, backends, last_resort=last_resort)
    assert ("backup max_fails=0" in site) is last_resort
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "site.conf"
    path.write_text(loopback_only(site, lb_port))
    return write_wrapper(tmp_path, path)


def _outage_then_return(tmp_path: Path, *, last_resort: bool) -> tuple[list[int], int, float]:
    """Both backends die, are asked for 20 times, come back: (statuses while down, first status
    after the return, seconds until the first 200 after the return)."""
    nginx = need("nginx")
    lb_port = free_port()
    ports = {vm: free_port(ip) for vm, ip in HOSTS.items()}
    wrapper = _site(tmp_path, lb_port, ports, last_resort=last_resort)
    argv = {vm: backend_argv(HOSTS[vm], ports[vm], vm, tmp_path) for vm in HOSTS}
    with started([nginx, "-c", str(wrapper), "-g", "daemon off;"]) as proxy:
        wait_for_port("127.0.0.1", lb_port, proxy)
        with started(*argv["app1"]) as app1, started(*argv["app2"]) as app2:
            wait_for_port(HOSTS["app1"], ports["app1"], app1)
            wait_for_port(HOSTS["app2"], ports["app2"], app2)
            assert {get(lb_port)[0] for _ in range(4)} == {200}
        # Both are gone (the context exits stopped them): every primary gets marked failed.
        down = [get(lb_port)[0] for _ in range(20)]
        with started(*argv["app1"]) as app1, started(*argv["app2"]) as app2:
            wait_for_port(HOSTS["app1"], ports["app1"], app1)
            wait_for_port(HOSTS["app2"], ports["app2"], app2)
            back = time.monotonic()
            first = get(lb_port)[0]
            status = first
            while status != 200 and time.monotonic() - back < 10:  # bounded: 10 s, 20/s
                time.sleep(0.05)
                status = get(lb_port)[0]
            return down, first, time.monotonic() - back


@pytest.mark.slow
def test_last_resort_peers_serve_the_first_request_after_every_backend_returns(
    tmp_path: Path,
) -> None:
    down, first, gap = _outage_then_return(tmp_path / "with", last_resort=True)
    assert down == [502] * 20  # all backends down: still nginx's 502, the drill's lesson
    assert first == 200 and gap < 1.0, (first, gap)


@pytest.mark.slow
def test_without_last_resort_peers_the_site_stays_down_for_fail_timeout(tmp_path: Path) -> None:
    """The control: the same site without the backup peers (what ip_hash labs get)."""
    down, first, gap = _outage_then_return(tmp_path / "without", last_resort=False)
    assert down == [502] * 20
    assert first == 502 and gap > 2.0, (first, gap)


@pytest.mark.slow
def test_hung_backends_give_504_after_one_read_timeout_each(tmp_path: Path) -> None:
    """Backends that accept and never answer: 504, after read_timeout x 2 backends (tries=2), not
    x 4 (primaries and backups)."""
    nginx = need("nginx")
    lb_port = free_port()
    listeners = []
    try:
        for ip in HOSTS.values():
            sock = socket.socket()
            sock.bind((ip, 0))
            sock.listen(64)  # the kernel completes the handshakes; nobody ever reads
            listeners.append(sock)
        ports = {vm: s.getsockname()[1] for vm, s in zip(HOSTS, listeners, strict=True)}
        wrapper = _site(tmp_path, lb_port, ports, last_resort=True)
        with started([nginx, "-c", str(wrapper), "-g", "daemon off;"]) as proxy:
            wait_for_port("127.0.0.1", lb_port, proxy)
            for _ in range(3):  # the first marks them failed; then the backup peers are used
                sent = time.monotonic()
                status = get(lb_port)[0]
                took = time.monotonic() - sent
                assert status in (502, 504) and took < 3.5, (status, took)
            assert status == 504 and took > 1.5, (status, took)
    finally:
        for sock in listeners:
            sock.close()
