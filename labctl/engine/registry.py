"""Open an engine by what lab.yaml's `engine:` says, importing only that engine's code; without
`engine:`, choose one here: Multipass when it is installed, else a usable LXD (and say which).

`probe_engines` is what `labctl doctor` shows about every engine: installed or not, usable or
why not, and the one command that gets it.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from labctl.engine.base import Engine, HealthLine, HealthStatus
from labctl.engine.proxy import EngineProxy
from labctl.errors import EngineError, EngineNotFoundError
from labctl.model import ENGINE_NAMES, EngineName, EngineSettings

if TYPE_CHECKING:  # imported when used: only a lab on LXD loads LXD's code
    from labctl.engine.lxd.initialise import LxdInitialiser

ENGINES: Final = ENGINE_NAMES
DEFAULT_ENGINE: Final = "multipass"
# environment overrides of the engines' executables
EXECUTABLE_VARIABLES: Final = ("LABCTL_MULTIPASS", "LABCTL_LXC", "LABCTL_LXD")
INSTALL_MULTIPASS: Final = "sudo snap install multipass"
INSTALL_LXD: Final = (
    "sudo snap install lxd (Debian: sudo apt-get install lxd), then `labctl lxd-init`"
)


def open_engine(
    settings: EngineSettings | None = None,
    *,
    remote: str | None = None,
    student: str | None = None,
) -> Engine:
    """The engine lab.yaml names (`remote`: an LXD server of `hosts:`; `student`: whose project
    when engine.project holds `{student}`); none named: the one this machine has (chosen at the
    first call, see `AutoEngine`)."""
    if settings is None:
        return AutoEngine()
    if settings.name == "multipass":
        from labctl.engine.multipass.adapter import MultipassEngine

        return MultipassEngine()
    if settings.name == "lxd":
        from labctl.engine.lxd.adapter import LxdEngine
        from labctl.engine.lxd.commands import LxdTarget

        own = settings.per_student_project and student is not None
        return LxdEngine(
            LxdTarget(
                cli=settings.lxd_cli,
                flavour=settings.lxd_cli,
                remote=remote or settings.lxd_remote,
                project=settings.project_for(student),
                # a student's own project has its own default profile, made from these
                profiles=("default",) if own else settings.lxd_profiles,
                instance_type=settings.lxd_type,
                own_project=own,
                source_profiles=settings.lxd_profiles,
            )
        )
    raise EngineNotFoundError(f"engine {settings.name!r} is not one labctl knows ({ENGINES})")


def lxd_initialiser(cli: str = "lxc") -> LxdInitialiser:
    """What initialises the local LXD (`labctl lxd-init`), through `cli` (lxc or incus)."""
    from labctl.engine.lxd.adapter import LxdEngine
    from labctl.engine.lxd.commands import LxdTarget
    from labctl.engine.lxd.initialise import LxdInitialiser

    return LxdInitialiser(LxdEngine(LxdTarget(cli=cli, flavour=cli)))


@dataclass(frozen=True)
class EngineProbe:
    """One engine on this machine: whether labctl can use it, and if not, why and what to do."""

    name: str
    installed: bool
    usable: bool
    detail: str
    hint: str = ""

    def line(self) -> HealthLine:
        """doctor's line: a warning at most (what fails a lab is its own engine's health)."""
        status: HealthStatus = "ok" if self.usable else ("warn" if self.installed else "skip")
        usable = "usable" if self.usable else "not usable"
        return HealthLine("engines", status, f"{self.name}: {usable}: {self.detail}", self.hint)


def _runnable(executable: str) -> str | None:
    """The program that would run: a path only when it is an executable file (an override
    naming a path that is not there is no engine), a bare name looked up on PATH."""
    return shutil.which(executable)  # a name with a directory part is checked as it is


def probe_multipass() -> EngineProbe:
    """Installed is enough to choose it: its daemon is the snap's, and `up` says if it is down."""
    override = os.environ.get("LABCTL_MULTIPASS")
    found = _runnable(override or "multipass")
    if not found:
        why = f" (LABCTL_MULTIPASS={override} is no executable)" if override else ""
        return EngineProbe("multipass", False, False, f"not installed{why}", INSTALL_MULTIPASS)
    return EngineProbe("multipass", True, True, f"installed ({found})")


def probe_lxd() -> EngineProbe:
    """Usable: the client is there, the daemon answers, and it was initialised (a storage pool
    and a default profile with a root disk and a network)."""
    from labctl.engine.lxd.adapter import ENV_EXECUTABLE, LxdEngine

    if not _runnable(os.environ.get(ENV_EXECUTABLE) or "lxc"):
        return EngineProbe("lxd", False, False, "not installed", INSTALL_LXD)
    engine = LxdEngine()
    try:
        setup = engine.setup_state()
    except EngineError as exc:
        return EngineProbe("lxd", True, False, exc.message, exc.hint or "")
    if not setup.initialised:
        return EngineProbe(
            "lxd",
            True,
            False,
            f"LXD {setup.version} is installed but not initialised ({setup.missing})",
            "`labctl lxd-init` sets it up with a fixed subnet (it shows what it does and asks "
            "first)",
        )
    return EngineProbe("lxd", True, True, f"LXD {setup.version} answers and is initialised")


def probe_engines() -> list[EngineProbe]:
    return [probe_multipass(), probe_lxd()]


@dataclass(frozen=True)
class EngineChoice:
    """The engine a lab without `engine:` gets on this machine and why; `name` None: none can
    run it, `reason` says why and `hint` how to get one."""

    name: EngineName | None
    reason: str
    hint: str = ""


def decide_engine() -> EngineChoice:
    """Multipass when it is installed, else a usable LXD (asked only then). `up` and `init`
    both decide here, so a starter lab names the engine `up` would take."""
    if probe_multipass().usable:
        return EngineChoice("multipass", "Multipass is installed here")
    # LABCTL_MULTIPASS names the engine: a path that is not there is Multipass's error to word
    if os.environ.get("LABCTL_MULTIPASS"):
        return EngineChoice("multipass", "LABCTL_MULTIPASS names it")
    lxd = probe_lxd()
    if lxd.usable:
        return EngineChoice("lxd", "Multipass is not installed here and LXD is usable")
    if lxd.installed:
        return EngineChoice(
            None,
            f"Multipass is not installed, and LXD is not usable: {lxd.detail}",
            lxd.hint.rstrip(".") + f". Or install Multipass: {INSTALL_MULTIPASS}.",
        )
    return EngineChoice(
        None,
        "labctl needs Multipass or LXD, and neither is installed here",
        f"Install one: Multipass: {INSTALL_MULTIPASS}; or LXD: {INSTALL_LXD}.",
    )


def choose_engine() -> tuple[Engine, str]:
    """The engine for a lab.yaml without `engine:`, and why (EngineNotFoundError if none)."""
    choice = decide_engine()
    if choice.name == "multipass":
        return open_engine(EngineSettings(name="multipass")), "Multipass (no engine: in lab.yaml)"
    if choice.name == "lxd":
        why = "no engine: in lab.yaml and Multipass is not installed"
        return open_engine(EngineSettings(name="lxd")), f"LXD ({why})"
    raise EngineNotFoundError(choice.reason, hint=choice.hint)


class AutoEngine(EngineProxy):
    """The engine this machine has, chosen at the first call (so `validate` and `render` never
    look); `ready()` and `health()` say which and why."""

    def __init__(self) -> None:
        self._chosen: tuple[Engine, str] | None = None
        self._lock = threading.Lock()

    @property
    def inner(self) -> Engine:
        return self._choice()[0]

    def _choice(self) -> tuple[Engine, str]:
        with self._lock:
            if self._chosen is None:
                self._chosen = choose_engine()
            return self._chosen

    def ready(self) -> str:
        engine, why = self._choice()
        return f"{engine.ready()}; engine: {why}"

    def health(self, *, image: str | None = None) -> list[HealthLine]:
        try:
            engine, why = self._choice()
        except EngineError as exc:
            return [HealthLine("engine", "fail", exc.message, exc.hint or "")]
        return [HealthLine("engine", "ok", why), *engine.health(image=image)]
