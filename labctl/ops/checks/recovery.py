"""What the checks that stop apps share: bringing the lab back (the app answers, nginx routes to
it again), and seeing whether a stopped app really stopped answering."""

from __future__ import annotations

import time
from typing import Final

from labctl.errors import LabctlError, ProbeTimeoutError
from labctl.host.probes import HttpPage, fetch, wait_until
from labctl.model import Vm
from labctl.ops.checks.base import Target, direct_page
from labctl.ops.drill import Backends

CLIENT_TIMEOUT: Final = 15.0  # above nginx's usual connect/read timeouts: nginx decides
NGINX_FAIL_TIMEOUT: Final = (
    10.0  # nginx's default fail_timeout: how long a failed server is skipped
)
PORT_CLOSE_WAIT: Final = 5.0  # `pm2 stop` returns once the app exited; its port closes with it
POLL: Final = 0.2


class LabLeftChangedError(LabctlError):
    """A check could not restore what it stopped: the run's error (exit 1), not a grade."""


def restore(backends: Backends) -> None:
    """Start every app `backends` stopped; one that cannot be started is the run's error."""
    try:
        backends.restore_all()
    except LabctlError as exc:
        raise LabLeftChangedError(exc.message, hint=exc.hint) from None


def app_answers(target: Target, vm: Vm, *, within: float) -> bool:
    """The app on `vm` answers directly (any status below 500) within `within` seconds."""
    try:
        wait_until(
            lambda: direct_page(target, vm.name),
            lambda page: page.status is not None and page.status < 500,
            timeout=within,
            interval=min(1.0, within),
            describe=lambda page: page.error or f"HTTP {page.status}",
            what=f"the app on {vm.name}",
            sleep=target.ctx.sleep,
        )
    except ProbeTimeoutError:
        return False
    return True


def still_answers(target: Target, vm: Vm) -> HttpPage | None:
    """After `pm2 stop` of the app on `vm`: what its port still answers (None: it stopped
    answering, as a stopped app does). Bounded in count and in time."""
    started = time.monotonic()
    page = direct_page(target, vm.name)
    for _ in range(int(PORT_CLOSE_WAIT / POLL)):
        if page.status is None or time.monotonic() - started > PORT_CLOSE_WAIT:
            break
        target.ctx.sleep(POLL)
        page = direct_page(target, vm.name)
    return None if page.status is None else page


def recover(target: Target, lb_ip: str, vms: list[Vm], behind_lb: set[str]) -> None:
    """Back to serving after a restore: each app in `vms` answers, then nginx routes to the ones
    in `behind_lb` again (it skips a failed server for fail_timeout). They are told apart by this
    run's check file, else by a backend header; with neither, wait fail_timeout once."""
    lab = target.ctx.lab
    for vm in vms:
        app_answers(target, vm, within=lab.waits.serve)
    wanted = {vm.name for vm in vms if vm.name in behind_lb}
    if not wanted:
        return
    check = target.evidence.check_file
    path = check.path if check is not None else "/"

    def backend() -> str | None:
        page = fetch(lb_ip, lab.lb.port, lab.domain, path=path, timeout=CLIENT_TIMEOUT)
        if page.status != 200:
            return None
        return check.owner(page.body) if check is not None else target.backend_of(page.headers)

    first = backend()
    if first is None and check is None:  # nothing tells the backends apart
        target.ctx.sleep(NGINX_FAIL_TIMEOUT)
        return
    seen = {first}
    limit = max(lab.lb.fail_timeout, NGINX_FAIL_TIMEOUT) + 5
    started = time.monotonic()
    for _ in range(int(limit / POLL)):  # bounded in count and in time
        if wanted <= seen or time.monotonic() - started > limit:
            return
        target.ctx.sleep(POLL)
        seen.add(backend())
