"""Proof that the domain's answers come from the apps, for an app labctl cannot make serve a
check file (started by `script:` or `command:`): stop the apps in turn and watch the answers.

With only app X running the domain must answer 200; with every app stopped it must not. A reply
nginx makes up by itself (a static page, a header naming a backend) does not change when the
apps stop, so it fails the second part; an answer that appears only while X runs came from X.
Everything stopped is started again in `finally`, and the check waits until the apps answer
and nginx routes to them again, as the failover check does. Done once per run, shared by
lb-serves, reverse-proxy and load-balancing.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Final

from labctl.host.probes import fetch
from labctl.ops.checks.base import Target
from labctl.ops.checks.evidence import StopProof
from labctl.ops.checks.recovery import (
    CLIENT_TIMEOUT,
    NGINX_FAIL_TIMEOUT,
    POLL,
    app_answers,
    recover,
    restore,
)
from labctl.ops.drill import Backends

ALL_DOWN_REQUESTS: Final = 6


def stop_proof(target: Target) -> StopProof:
    """The run's stop proof, made on first need."""
    if target.evidence.stop_proof is None:
        target.evidence.stop_proof = _prove(target)
    return target.evidence.stop_proof


def _prove(target: Target) -> StopProof:
    ctx, lab = target.ctx, target.ctx.lab
    lb_ip = target.lab_ip
    if lb_ip is None:
        return StopProof(error=target.unreachable(lab.lb_vm) or "the LB has no address")
    down = [why for vm in lab.app_vms if (why := target.unreachable(vm))]
    if down:
        return StopProof(error="; ".join(down))
    apps = lab.app_vms
    backends = Backends(ctx, "app")
    alone: dict[str, Counter[str]] = {}
    all_down: Counter[str] = Counter()
    try:
        for vm in apps:
            restore(backends)  # the app stopped for the previous one runs again
            for other in apps:
                if other != vm:
                    backends.take_down(other)
            app_answers(target, vm, within=lab.waits.serve)
            alone[vm.name] = _served(target, lb_ip)
        backends.take_down(apps[-1])  # the others are still down: now every app is
        for _ in range(ALL_DOWN_REQUESTS):
            page = fetch(lb_ip, lab.lb.port, lab.domain, timeout=CLIENT_TIMEOUT)
            all_down[str(page.status) if page.status else (page.error or "no answer")] += 1
    finally:
        restore(backends)
        recover(target, lb_ip, apps, {vm.name for vm in apps})
    return StopProof(alone, all_down)


def _served(target: Target, lb_ip: str) -> Counter[str]:
    """The codes of requests to the domain until one gets 200, bounded: nginx may still skip
    the app that just came back for its fail_timeout."""
    lab = target.ctx.lab
    limit = max(lab.lb.fail_timeout, NGINX_FAIL_TIMEOUT) + 5
    codes: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(int(limit / POLL)):  # bounded in count and in time
        page = fetch(lb_ip, lab.lb.port, lab.domain, timeout=CLIENT_TIMEOUT)
        codes[str(page.status) if page.status else (page.error or "no answer")] += 1
        if page.status == 200 or time.monotonic() - started > limit:
            break
        target.ctx.sleep(POLL)
    return codes
