"""What the fake CLIs (tests/fake_multipass, tests/fake_lxc) share: the settings file every
invocation reads, the call log every invocation writes (one JSON line per finished invocation,
a marker per running one), and their controllers' common part (the wrapper script on PATH,
settings, canned exec answers, reading the call log)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the controller's imports; each fake invocation loads this module too
    import subprocess


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock. Here, not imported: every fake invocation loads this module, and
    the fakes' own lock modules pull in more than a per-call start-up should pay for."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_settings(home: Path) -> dict[str, Any]:
    """`settings.json` in the fake's state folder ({} when there is none)."""
    path = home / "settings.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: settings must be a JSON object")
    return data


def exit_on_sigterm() -> None:
    """SIGTERM ends an invocation as a killed process would (128 + 15), after its log entry."""
    import signal

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def logged_invocation(home: Path, entry: dict[str, Any], body: Callable[[], int]) -> int:
    """Run one invocation's body with a running marker (so a call killed with SIGKILL still
    shows), then append its entry, with rc and end times, to calls.jsonl."""
    running = home / "running"
    running.mkdir(exist_ok=True)
    marker = running / f"{os.getpid()}-{time.monotonic_ns()}.json"
    marker.write_text(json.dumps(entry))
    rc = 1
    try:
        rc = body()
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        rc = 130
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        entry.update(end_mono=time.monotonic(), end_wall=time.time(), rc=rc)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with file_lock(home / "calls.lock"), (home / "calls.jsonl").open("a") as log:
            log.write(line)
        marker.unlink(missing_ok=True)
    return rc


class FakeCli:
    """A fake CLI's state folder and its `bin/<name>` wrapper (`exec python main.py "$@"`)."""

    #: the settings the fake knows (a typo in a test raises instead of silently doing nothing)
    known_settings: ClassVar[frozenset[str]] = frozenset()
    #: the environment variable that points the fake at its state folder
    home_variable: ClassVar[str] = ""

    def __init__(self, root: Path, name: str, main: Path, python: str) -> None:
        self.root = Path(root)
        self.home = self.root / "state"
        self.bin_dir = self.root / "bin"
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.executable = self.bin_dir / name
        self.executable.write_text(f'#!/bin/sh\nexec "{python}" "{main}" "$@"\n')
        self.executable.chmod(self.executable.stat().st_mode | 0o110)  # u+x, g+x
        #: env vars to add to a subprocess environment
        self.env: dict[str, str] = {self.home_variable: str(self.home)}

    def base_environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) + env + the wrapper's folder first on PATH."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run_with(
        self, args: Sequence[str], env: Mapping[str, str], input: str | bytes | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        import subprocess

        data = input.decode() if isinstance(input, bytes) else input
        return subprocess.run(
            [str(self.executable), *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
            check=False,
        )

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return read_settings(self.home)

    def _save_settings(self, data: dict[str, Any]) -> None:
        path = self.home / "settings.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)

    def _invocations(self) -> int:
        raise NotImplementedError

    def configure(self, **settings: Any) -> None:
        """Merge knobs into settings.json (a value of None removes the key)."""
        unknown = set(settings) - self.known_settings
        if unknown:
            raise ValueError(f"unknown {self.executable.name} fake settings: {sorted(unknown)}")
        data = self.settings()
        if "fail_after_calls" in settings:
            data["fail_after_calls_base"] = self._invocations()
        for key, value in settings.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._save_settings(data)

    def reset(self) -> None:
        """Drop every setting (latencies, faults, canned exec responses)."""
        self._save_settings({})

    def on_exec(
        self,
        instance: str,
        argv_prefix: Sequence[str],
        stdout: str = "",
        stderr: str = "",
        rc: int = 0,
        delay: float = 0,
        repeat: int = 1,
    ) -> None:
        """Canned answer for `exec <instance> -- <argv starting with prefix>` ("*" = any);
        stdout and stderr are each written `repeat` times, interleaved (a VM printing megabytes)."""
        data = self.settings()
        responses = list(data.get("exec_responses", []))
        responses.append(
            {
                "instance": instance,
                "argv_prefix": list(argv_prefix),
                "stdout": stdout,
                "stderr": stderr,
                "rc": rc,
                "delay": delay,
                "repeat": repeat,
            }
        )
        data["exec_responses"] = responses
        self._save_settings(data)

    # -- call log ------------------------------------------------------------------------------
    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        """Finished invocations (calls.jsonl) plus still-running or killed ones (rc None)."""
        entries: list[dict[str, Any]] = []
        log = self.home / "calls.jsonl"
        with file_lock(self.home / "calls.lock"):
            if log.exists():
                entries = [json.loads(line) for line in log.read_text().splitlines() if line]
        running = self.home / "running"
        if running.exists():
            for marker in running.glob("*.json"):
                try:
                    entry = json.loads(marker.read_text())
                except (OSError, ValueError):
                    continue
                entry.update(rc=None, end_mono=None, end_wall=None, alive=_alive(entry["pid"]))
                entries.append(entry)
        entries.sort(key=lambda e: float(e["start_mono"]))
        if command is not None:
            entries = [e for e in entries if e.get("command") == command]
        return entries

    def max_concurrent(self, command: str = "launch") -> int:
        """The largest number of `command` invocations whose [start, end] overlapped."""
        events: list[tuple[float, int]] = []
        now = time.monotonic()
        for e in self.calls(command):
            end = e["end_mono"] if e["end_mono"] is not None else now
            events += [(float(e["start_mono"]), 1), (float(end), -1)]
        best = current = 0
        for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):
            current += delta
            best = max(best, current)
        return best


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
