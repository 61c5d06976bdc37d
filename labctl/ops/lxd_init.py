"""`labctl lxd-init`: set up a freshly installed LXD so that labs run on it, with a preseed the
user sees first (the rules and why: labctl/engine/lxd/initialise.py). The CLI shows the plan and
asks; this module plans and runs, and never prints."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.engine.lxd.initialise import InitOptions, InitPlan, LxdInitialiser
from labctl.engine.lxd.server import SetupState
from labctl.engine.registry import lxd_initialiser
from labctl.errors import ConfigError, LabctlError


@dataclass(frozen=True)
class LxdInitResult:
    plan: InitPlan
    state: SetupState  # the daemon afterwards


def plan_lxd_init(options: InitOptions, initialiser: LxdInitialiser | None = None) -> InitPlan:
    """The plan; bad options are bad input (nothing runs), an LXD that does not answer an
    EngineError (its message says how to start it)."""
    plan = (initialiser or lxd_initialiser()).plan(options)
    if plan.problems:
        raise ConfigError(plan.problems)
    return plan


def run_lxd_init(plan: InitPlan, initialiser: LxdInitialiser | None = None) -> LxdInitResult:
    if plan.refusal:
        raise LabctlError(
            f"{plan.refusal}; nothing was changed",
            hint="labctl initialises only an LXD nobody set up. Finish it by hand (`lxc profile "
            "show default`, `lxc storage list`, `lxc network list`) or name its project, profiles "
            "and remote under engine: in lab.yaml; `labctl doctor` says what labs still need.",
        )
    state = (initialiser or lxd_initialiser()).apply(plan)
    if not state.initialised:
        raise LabctlError(
            f"lxd init ran, but LXD still has {state.missing}",
            hint="`labctl doctor` shows what is there; `lxc profile show default` the profile.",
        )
    return LxdInitResult(plan, state)
