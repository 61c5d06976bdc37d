"""Containers on a test daemon: launch with a YAML body on stdin, wait for an address, for
cloud-init and for HTTP. Every wait is bounded and polls; nothing here asserts timings."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from tests.lxd.daemon import LxdDaemon
from tests.simvm._proc import SimError

T = TypeVar("T")
#: straight to the test bridge, whatever *_proxy variables the environment carries
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def launch(
    daemon: LxdDaemon,
    image: str,
    name: str,
    *,
    user_data: str | None = None,
    config: Mapping[str, str] | None = None,
    target: str | None = None,
    timeout: float = 300,
) -> float:
    """`lxc launch IMAGE NAME [--target M] < body.yaml` (the instance's config on stdin, so
    user-data of any size stays out of argv); returns the seconds it took."""
    body: dict[str, Any] = {"config": dict(config or {})}
    if user_data is not None:
        body["config"]["cloud-init.user-data"] = user_data
    argv = ["launch", image, name, *(["--target", target] if target else [])]
    started = time.monotonic()
    daemon.lxc(*argv, input_text=yaml.safe_dump(body), timeout=timeout)
    return time.monotonic() - started


def instance(daemon: LxdDaemon, name: str) -> dict[str, Any]:
    """One instance's `lxc list --format json` record (server-side name filter)."""
    found = [i for i in daemon.lxc_json("list", f"^{name}$") if i["name"] == name]
    if not found:
        raise SimError(f"instance {name} not in `lxc list` of {daemon.name}")
    record: dict[str, Any] = found[0]
    return record


def ipv4(record: Mapping[str, Any], nic: str = "eth0") -> str | None:
    """The global IPv4 address of `nic` in a list record, or None."""
    network = (record.get("state") or {}).get("network") or {}
    for address in (network.get(nic) or {}).get("addresses") or []:
        if address["family"] == "inet" and address["scope"] == "global":
            return str(address["address"])
    return None


def poll(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """probe() until it returns something other than None; SimError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SimError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def wait_ipv4(daemon: LxdDaemon, name: str, timeout: float = 120) -> str:
    return poll(f"an IPv4 address on {name}", lambda: ipv4(instance(daemon, name)), timeout)


def wait_cloud_init(daemon: LxdDaemon, name: str, timeout: float = 600) -> str:
    """`cloud-init status --wait` inside; returns its output (status: done/error...)."""
    proc = daemon.lxc(
        "exec", name, "--", "cloud-init", "status", "--wait", "--long", timeout=timeout, check=False
    )
    if "status:" not in proc.stdout:
        raise SimError(f"cloud-init status in {name}: rc {proc.returncode}: {proc.stderr}")
    return proc.stdout


def http_get(url: str, timeout: float = 3) -> tuple[int, str] | None:
    """(status, body) of a GET to a test host on a test bridge, or None when it does not answer."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None


def wait_http(url: str, expect: str, timeout: float = 60) -> str:
    """Poll until GET url answers 200 with `expect` in the body; returns the body."""

    def probe() -> str | None:
        answer = http_get(url)
        return answer[1] if answer and answer[0] == 200 and expect in answer[1] else None

    return poll(f"{url} to serve {expect!r}", probe, timeout)
