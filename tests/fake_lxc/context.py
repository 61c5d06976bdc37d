"""What one invocation works with: the state, the settings, the parsed arguments, the streams,
and how a reference (`[remote:]name`, `--project`) resolves to a server and a project."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .cli import Parsed, split_remote
from .errors import LxcError
from .faults import Settings
from .state import LOCAL, Server, Store


@dataclass
class Target:
    """Where a command goes: the remote's name (for messages), its server key, the project."""

    remote: str
    server: str
    project: str
    client: str = ""  # the trusted certificate's name, for remotes added with a token
    allowed: tuple[str, ...] = ()  # a restricted certificate's projects


@dataclass
class Context:
    home: Path
    store: Store
    settings: Settings
    args: Parsed
    stdin: BinaryIO
    stdout: TextIO
    stderr: TextIO
    invocations_before: int
    lxd_dir: str
    log: dict[str, Any]  # this invocation's call-log entry (commands may add to it)

    # -- where --------------------------------------------------------------------------------
    def target(self, ref: str = "") -> tuple[Target, str]:
        """Resolve `[remote:]name` (or `remote:` alone) to a Target and the bare name."""
        remote_name, name = split_remote(ref, LOCAL)
        with self.store.transaction(write=False) as root:
            remote = root["remotes"].get(remote_name)
        if remote is None:
            raise LxcError(f'The remote "{remote_name}" doesn\'t exist')
        project = self.args.value("project") or str(remote.get("project") or "default")
        allowed = tuple(remote.get("projects") or ()) if remote.get("restricted") else ()
        client = str(remote.get("client") or "")
        return Target(remote_name, str(remote["server"]), project, client, allowed), name

    def reach(self, target: Target) -> None:
        """The faults every API call meets first: an unreachable daemon, a distrusted client
        certificate, a server certificate that no longer matches the pinned one."""
        address = self.server_address(target)
        if self.settings.unreachable(target.remote, self.invocations_before):
            if target.remote == LOCAL:
                raise LxcError(
                    'Get "http://unix.socket/1.0": dial unix '
                    f"{self.lxd_dir}/unix.socket: connect: no such file or directory"
                )
            raise LxcError(
                f'Get "https://{address}/1.0": Unable to connect to: {address} '
                f"([dial tcp {address}: connect: connection refused])"
            )
        if self.settings.on("certificate_changed", target.remote):
            host = address.rsplit(":", 1)[0]
            raise LxcError(
                f'Get "https://{address}/1.0": x509: certificate is valid for 127.0.0.1, ::1, '
                f"not {host}"
            )
        if self.settings.on("untrusted", target.remote):
            raise LxcError("not authorized")
        if target.client:
            with self.store.transaction(write=False) as root:
                trusted = root["servers"][target.server]["trust"]
            if not any(cert["name"] == target.client for cert in trusted):
                raise LxcError("not authorized")
        if target.allowed and target.project not in target.allowed:
            raise LxcError("not authorized")

    def server_address(self, target: Target) -> str:
        with self.store.transaction(write=False) as root:
            return str(root["servers"][target.server].get("address") or "127.0.0.1:8443")

    @contextmanager
    def server(self, target: Target, write: bool = True) -> Iterator[Server]:
        with self.store.transaction(write) as root:
            yield root["servers"][target.server]

    # -- time ---------------------------------------------------------------------------------
    def sleep(self, knob: str, scope: str | None = None) -> None:
        seconds = self.settings.seconds(knob, scope)
        if seconds > 0:
            time.sleep(seconds)

    # -- output -------------------------------------------------------------------------------
    def out(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def project_exists(server: Server, project: str) -> bool:
    return project in server["projects"]


def key(project: str, name: str) -> str:
    return f"{project}/{name}"


def instances_in(server: Server, project: str) -> dict[str, dict[str, Any]]:
    prefix = f"{project}/"
    return {k[len(prefix) :]: v for k, v in server["instances"].items() if k.startswith(prefix)}
