"""One LXD daemon with a private LXD_DIR, started by hand (PID 1 may not be systemd), and lxcfs.

Every daemon runs with `http_proxy`/`https_proxy` pointing at a closed loopback port: LXD
requests an image-server index at every start whatever its configuration says, and this ends
that request at loopback without a name lookup. `no_proxy` lists the cluster members' loopback
addresses so their own traffic goes direct. The `lxc` client gets its own LXD_CONF, so the
developer's `~/.config/lxc` (remotes, certificates) is neither read nor written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from tests.simvm._proc import SimError, pid_alive, run

CLOSED_PROXY: Final = "http://127.0.0.1:9"  # discard port: nothing listens, connect is refused
LXCFS_MOUNT: Final = Path("/var/lib/lxcfs")
PROXY_VARS: Final = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def daemon_environ(lxd_dir: Path, conf_dir: Path, no_proxy: Sequence[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", *PROXY_VARS)}
    env.update({var: CLOSED_PROXY for var in PROXY_VARS})
    bypass = ",".join(["127.0.0.1", "localhost", *no_proxy])
    env.update(no_proxy=bypass, NO_PROXY=bypass, LXD_DIR=str(lxd_dir), LXD_CONF=str(conf_dir))
    return env


class LxdDaemon:
    """`lxd` on `lxd_dir`; `lxc()` talks to it over its unix socket."""

    def __init__(
        self,
        lxd_dir: Path,
        *,
        name: str = "lxd",
        address: str | None = None,
        no_proxy: Sequence[str] = (),
    ) -> None:
        self.dir = lxd_dir
        self.name = name
        self.address = address  # host:port of core.https_address, for cluster members
        self.conf_dir = lxd_dir.parent / f"{lxd_dir.name}.client"
        self.env = daemon_environ(lxd_dir, self.conf_dir, no_proxy)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.dir / "lxd.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60) -> float:
        """Start the daemon and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)  # containers' unprivileged root must traverse to its rootfs
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "lxd.out").open("ab") as out:
            # own session: a Ctrl-C in the terminal reaches pytest (which tears down), not lxd
            self.process = subprocess.Popen(
                ["lxd", "--logfile", str(self.log)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return time.monotonic() - started

    def wait_ready(self, timeout: float = 60) -> None:
        proc = run(
            ["lxd", "waitready", f"--timeout={int(timeout)}"],
            timeout=timeout + 10,
            check=False,
            env=self.env,
        )
        if proc.returncode != 0 or not self.running():
            raise SimError(
                f"LXD daemon {self.name} did not become ready: {proc.stderr.strip()} "
                f"(log: {self.log_tail()})"
            )

    def init(self, preseed: Mapping[str, Any]) -> None:
        self.lxd("init", "--preseed", input_text=yaml.safe_dump(dict(preseed), sort_keys=False))

    def lxd(self, *args: str, input_text: str | None = None, timeout: float = 120) -> str:
        proc = run(
            ["lxd", *args],
            timeout=timeout,
            check=False,
            env=self.env,
            input_bytes=None if input_text is None else input_text.encode(),
        )
        if proc.returncode != 0:
            raise SimError(f"lxd {args[0]} on {self.name} failed: {proc.stderr.strip()}")
        return proc.stdout

    def lxc(
        self, *args: str, input_text: str | None = None, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `lxc ARGS` against this daemon (stdin closed unless input_text is given)."""
        proc = run(
            ["lxc", *args],
            timeout=timeout,
            check=False,
            env=self.env,
            input_bytes=b"" if input_text is None else input_text.encode(),
        )
        if check and proc.returncode != 0:
            raise SimError(
                f"lxc {' '.join(args)} on {self.name}: rc {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def lxc_json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.lxc(*args, "--format", "json", timeout=timeout).stdout)

    def instance_names(self) -> list[str]:
        return [inst["name"] for inst in self.lxc_json("list", "--all-projects")]

    def delete_all_instances(self) -> list[str]:
        names = self.instance_names()
        for inst in self.lxc_json("list", "--all-projects"):
            self.lxc(
                "delete",
                "--force",
                "--project",
                inst["project"],
                inst["name"],
                timeout=120,
                check=False,
            )
        return names

    def shutdown(self, timeout: float = 60) -> None:
        """`lxd shutdown` (stops the containers too), then SIGKILL if it is still there."""
        if self.running():
            run(
                ["lxd", "shutdown", f"--timeout={int(timeout)}"],
                timeout=timeout + 10,
                check=False,
                env=self.env,
            )
        self._reap(10)

    def kill(self) -> None:
        """SIGKILL the daemon process only: its containers (own monitors) keep running."""
        if self.process is not None and self.running():
            self.process.send_signal(signal.SIGKILL)
        self._reap(10)

    def _reap(self, timeout: float) -> None:
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


class Lxcfs:
    """lxcfs on /var/lib/lxcfs (where LXD looks for it): reused when already mounted (the
    developer's own LXD may run one), else started here and stopped again by `stop()`."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def mounted() -> bool:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        return any(line.split()[1] == str(LXCFS_MOUNT) for line in mounts)

    def ensure(self, timeout: float = 10) -> bool:
        """True when this call started lxcfs."""
        if self.mounted():
            return False
        LXCFS_MOUNT.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["lxcfs", "--foreground", f"--pidfile={self.pid_file}", str(LXCFS_MOUNT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.mounted():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SimError(f"lxcfs did not mount {LXCFS_MOUNT}")
            time.sleep(0.05)
        return True

    @staticmethod
    def stop_pid(pid: int, timeout: float = 10) -> None:
        """Stop an lxcfs this run started (also one a killed run left behind) and unmount."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if Lxcfs.mounted():
            run(["umount", "-l", str(LXCFS_MOUNT)], check=False)

    def stop(self) -> None:
        if self.process is not None:
            self.stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.process = None
