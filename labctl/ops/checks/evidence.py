"""What one `labctl check` run learns once and its checks share: the run's check file (a random
token per app VM that only the app itself serves), the answers the domain gave for it, and, for an
app labctl cannot make serve a file, what the domain answered with the apps stopped in turn.

Pure data: checkfile.py writes and reads the file, stopping.py stops the apps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckFile:
    """This run's check file: the folder it is written into on each app VM, the URL path every
    app serves it at, each app VM's token, and, per app VM, why its app did not answer its own
    token directly ('' when it did)."""

    folder: str
    path: str
    tokens: dict[str, str]
    direct: dict[str, str]

    def owner(self, body: str) -> str | None:
        """The app VM whose token `body` is (None: no token of this run)."""
        text = body.strip()
        return next((vm for vm, token in self.tokens.items() if token == text), None)

    @property
    def proven(self) -> list[str]:
        """The app VMs whose app answered its own token directly."""
        return [vm for vm, why in self.direct.items() if not why]


@dataclass(frozen=True)
class DomainSample:
    """Requests for the check file through the LB, with the domain as Host."""

    requests: int
    tokens: Counter[str] = field(default_factory=Counter)  # app VM -> answers with its token
    codes: Counter[str] = field(default_factory=Counter)  # "200", "502", "timed out" -> count
    foreign: int = 0  # 200 answers without a token of this run: not the app's
    claimed: Counter[str] = field(default_factory=Counter)  # what their headers named (a hint)
    foreign_text: str = ""  # the start of one such answer, for the reason


@dataclass(frozen=True)
class StopProof:
    """For an app labctl cannot plant a file in: the domain's answers with only one app running
    (per app VM), and with every app stopped. Only the apps' own answers change with their state;
    a reply nginx makes up by itself does not."""

    alone: dict[str, Counter[str]] = field(default_factory=dict)
    all_down: Counter[str] = field(default_factory=Counter)
    error: str = ""  # why the apps could not be stopped in turn

    def served_alone(self, vm: str) -> bool:
        return self.alone.get(vm, Counter()).get("200", 0) > 0

    @property
    def served_all_down(self) -> bool:
        return self.all_down.get("200", 0) > 0


@dataclass
class Evidence:
    """Filled on first need during one run (the lab does not change between the looking checks)."""

    file_tried: bool = False
    check_file: CheckFile | None = None  # None: the app cannot serve one (or not tried yet)
    written: list[str] = field(default_factory=list)  # app VMs the file was written on
    sample: DomainSample | None = None
    stop_proof: StopProof | None = None


def shown(codes: Counter[str]) -> str:
    """`3 x 200, 1 x 502`, or `no requests`."""
    return ", ".join(f"{n} x {code}" for code, n in sorted(codes.items())) or "no requests"
