"""Start a headless browser in a private temporary profile, and always kill its whole tree.

POSIX: `os.posix_spawn` in a new session (so one `killpg` reaches every helper process), with
the CDP pipe on fds 3 and 4. Windows: `subprocess.Popen` in a new process group, CDP over a
websocket, `taskkill /T` for the tree. stdin/stdout/stderr go to the null device: the browser's
stderr is noise (Debian's wrapper script, D-Bus, GPU probes) and is never read.

`Browser` is a context manager: leaving it (normally, on an error or on Ctrl-C) closes the
browser, kills whatever of its tree is left, reaps it and deletes the profile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from labctl.host.browser.cdp import CdpConnection
from labctl.host.browser.discover import BrowserExecutable, find_browser
from labctl.host.browser.errors import BrowserError
from labctl.host.browser.transport import PipeTransport, Transport, WebSocketTransport
from labctl.host.browser.websocket import WebSocket, WebSocketError

TransportKind = Literal["pipe", "websocket"]
# More --host-resolver-rules, after the lab's own (the first matching rule wins); e.g. keep the
# browser off the internet: "MAP * ~NOTFOUND, EXCLUDE localhost" (the tests do).
RULES_ENV: Final = "LABCTL_BROWSER_RULES"
WINDOW: Final = (1280, 800)
START_TIMEOUT: Final = 30.0
_CLOSE_GRACE: Final = 3.0
# Quiet, private, reproducible: no first-run UI, no calls home, no https upgrade of the lab's
# http:// domain, no sync or extensions, scrollbars hidden in screenshots.
BASE_ARGS: Final = (
    "--headless",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-extensions",
    "--disable-sync",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=Translate,MediaRouter,OptimizationHints,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,AutofillServerCommunication",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-color-profile=srgb",
    # The students' LBs are on the classroom's own network: a proxy meant for the internet
    # (http_proxy, the desktop's settings) must not stand between labctl and them.
    "--no-proxy-server",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def default_transport() -> TransportKind:
    return "websocket" if sys.platform == "win32" else "pipe"


def browser_args(
    profile: Path, *, transport: TransportKind, resolver_rules: Iterable[str], as_root: bool
) -> list[str]:
    """The browser's command-line flags (after its executable)."""
    args = [*BASE_ARGS, f"--user-data-dir={profile}"]
    args.append("--remote-debugging-pipe" if transport == "pipe" else "--remote-debugging-port=0")
    rules = ", ".join(resolver_rules)
    if rules:
        args.append(f"--host-resolver-rules={rules}")
    if as_root:
        args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return [*args, "about:blank"]


class Browser:
    """A running headless browser and its CDP connection. Use `with Browser.start(...)`."""

    def __init__(
        self,
        executable: BrowserExecutable,
        profile: Path,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
    ) -> None:
        self.executable = executable
        self.profile = profile
        self.pid = pid
        self._popen = popen
        self._exited = threading.Event()
        self.exit_code: int | None = None
        self.connection: CdpConnection | None = None
        self.product = ""
        self._closed = False
        threading.Thread(target=self._reap, name="browser-reaper", daemon=True).start()

    @classmethod
    def start(
        cls,
        executable: BrowserExecutable | None = None,
        *,
        resolver_rules: Iterable[str] = (),
        transport: TransportKind | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Browser:
        """Start the browser and connect; BrowserError (after cleaning up) when it cannot."""
        executable = executable or find_browser()
        kind = transport or default_transport()
        profile = _profile_dir(executable)
        extra = [rule.strip() for rule in os.environ.get(RULES_ENV, "").split(",") if rule.strip()]
        args = browser_args(
            profile, transport=kind, resolver_rules=[*resolver_rules, *extra], as_root=_is_root()
        )
        argv = [str(executable.path), *args]
        pipe: PipeTransport | None = None
        try:
            if sys.platform == "win32":
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
                )
                browser = cls(executable, profile, popen.pid, popen)
            else:
                pid, pipe = _spawn(argv, with_pipe=kind == "pipe")
                browser = cls(executable, profile, pid, None)
        except OSError as exc:
            shutil.rmtree(profile, ignore_errors=True)
            raise BrowserError(f"cannot start {executable.path}: {exc.strerror or exc}") from None
        try:
            channel: Transport = pipe if pipe is not None else browser._websocket(timeout)
            browser.connection = CdpConnection(channel)
            version = browser.connection.call("Browser.getVersion", timeout=timeout)
            browser.product = str(version.get("product", ""))
        except BaseException:
            if pipe is not None and browser.connection is None:
                pipe.close()
            browser.close()
            raise
        return browser

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def cdp(self) -> CdpConnection:
        assert self.connection is not None
        return self.connection

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def _websocket(self, timeout: float) -> Transport:
        """Wait for DevToolsActivePort (port, then the browser's websocket path) and connect."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._exited.is_set():
                raise BrowserError(self._died())
            with contextlib.suppress(OSError, ValueError, WebSocketError):
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    websocket = WebSocket.connect("127.0.0.1", int(lines[0]), lines[1])
                    return WebSocketTransport(websocket)
            time.sleep(0.05)
        raise BrowserError(f"{self.executable.name} opened no debugging port within {timeout:.0f}s")

    def _died(self) -> str:
        return f"{self.executable.name} exited at start (exit {self.exit_code})"

    def _reap(self) -> None:
        try:
            if self._popen is not None:
                self.exit_code = self._popen.wait()
            else:
                _, status = os.waitpid(self.pid, 0)
                self.exit_code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass
        self._exited.set()

    def close(self) -> None:
        """Close the browser, kill what is left of its process tree, reap it, delete the profile."""
        if self._closed:
            return
        self._closed = True
        connection = self.connection
        if connection is not None and not connection.closed and self.running:
            with contextlib.suppress(BrowserError):
                connection.call("Browser.close", timeout=_CLOSE_GRACE)
            self._exited.wait(_CLOSE_GRACE)
        self._kill_tree()
        self._exited.wait(10.0)
        if connection is not None:
            connection.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _kill_tree(self) -> None:
        if sys.platform == "win32":
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["taskkill", "/PID", str(self.pid), "/T", "/F"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=15,
                    check=False,
                )
            if self._popen is not None:
                with contextlib.suppress(OSError):
                    self._popen.kill()
            return
        # Its own session: the process group holds the browser, its zygote, renderers and GPU
        # helper, also after the browser process itself has gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _spawn(argv: list[str], *, with_pipe: bool) -> tuple[int, PipeTransport | None]:
    """posix_spawn in a new session; with the pipe, the child's fd 3 reads labctl's commands
    and its fd 4 writes the answers."""
    import fcntl  # POSIX only

    def high(fd: int) -> int:
        # Above 4, so the dup2 actions below never overwrite one another's source.
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    devnull = high(os.open(os.devnull, os.O_RDWR))
    actions: list[tuple[int, int, int]] = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
    ]
    ours: list[int] = []
    theirs: list[int] = [devnull]
    if with_pipe:
        command_read, command_write = (high(fd) for fd in os.pipe())
        event_read, event_write = (high(fd) for fd in os.pipe())
        actions += [
            (os.POSIX_SPAWN_DUP2, command_read, 3),
            (os.POSIX_SPAWN_DUP2, event_write, 4),
        ]
        ours, theirs = [event_read, command_write], [*theirs, command_read, event_write]
    try:
        pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)
    except OSError:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return pid, PipeTransport(ours[0], ours[1]) if with_pipe else None


def _profile_dir(executable: BrowserExecutable) -> Path:
    """A fresh private profile; a snap browser gets it under $HOME (a snap has its own /tmp)."""
    parent: Path | None = None
    if executable.snap:
        parent = Path.home() / "snap" / executable.path.name / "common"
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="labctl-browser-", dir=parent))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def probe_browser(timeout: float = START_TIMEOUT) -> str:
    """Start the browser and ask its version: what `labctl doctor` reports as usable.

    BrowserUnavailableError (none here) or BrowserError (it does not start)."""
    executable = find_browser()
    with Browser.start(executable, timeout=timeout) as browser:
        return f"{browser.product or executable.name} ({executable.path})"
