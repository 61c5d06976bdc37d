"""`up`'s last wait: the domain serves through every backend only when a whole round answered
200 and a round a moment later did too. nginx's reload leaves its old workers (the placeholder
site's 503) accepting for a moment after the new ones answer, so one good round is not enough."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest

from labctl.errors import ProbeTimeoutError
from labctl.host.probes import DomainCheck
from labctl.ops.wire import RELOAD_SETTLE, wait_serving

BACKENDS = frozenset({"10.77.0.11:3000", "10.77.0.12:3000"})
BOTH = (200, 200)
LB = "10.77.0.20"


def round_of(*statuses: int) -> DomainCheck:
    seen = BACKENDS if statuses.count(200) >= 2 else frozenset()
    return DomainCheck("hello.lab", LB, (LB,), statuses, seen, BACKENDS, via=LB)


class Script:
    """The rounds the LB answers, one per probe, and the sleeps the wait took."""

    def __init__(self, rounds: Iterable[DomainCheck]) -> None:
        self.rounds: Iterator[DomainCheck] = iter(rounds)
        self.probes = 0
        self.sleeps: list[float] = []

    def probe(self, *_: object, **__: object) -> DomainCheck:
        self.probes += 1
        return next(self.rounds)


def wait(make_world, script: Script, serve: str = "5s") -> DomainCheck:  # type: ignore[no-untyped-def]
    world = make_world(serve=serve)
    ctx = replace(world.ctx, probe_domain=script.probe, sleep=script.sleeps.append)
    return wait_serving(ctx, LB, BACKENDS, use_resolution=False, what="http://hello.lab/")


def test_a_round_with_a_placeholder_answer_among_the_200s_is_not_serving_yet(make_world) -> None:
    script = Script(
        [
            round_of(200, 503, 200),  # both backends seen, an old worker's 503 among them
            round_of(*BOTH),  # the new site alone ...
            round_of(503, 503, 503),  # ... yet a moment later an old worker still answers
            round_of(*BOTH),
            round_of(*BOTH),  # confirmed
        ]
    )
    check = wait(make_world, script)
    assert check.statuses == BOTH and script.probes == 5
    assert script.sleeps.count(RELOAD_SETTLE) == 2  # one pause before each confirming round


def test_a_lab_that_keeps_mixing_503_into_its_answers_times_out_and_says_so(make_world) -> None:
    script = Script(itertools.repeat(round_of(200, 503, 200)))  # bounded by waits.serve
    with pytest.raises(ProbeTimeoutError) as raised:
        wait(make_world, script, serve="1s")
    assert "also HTTP 503 among them" in raised.value.message
