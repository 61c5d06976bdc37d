"""The command lines the LXD engine runs (`lxc`, or `incus` for Incus: same verbs), built in one
place: `adapter.py` runs exactly these and `labctl plan` shows them. Pure: no process starts here.

Every instance name carries the remote (`REMOTE:NAME`; without the prefix `lxc` acts on the
default remote, whatever the project), and every call names the project, so a user's own
`lxc remote switch` or `lxc project switch` never redirects labctl.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from labctl.engine.base import LaunchSpec
from labctl.scalars import size_in_bytes

_Argv = list[str]
LABEL_PREFIX: Final = "user."  # LXD keeps free-form keys under user.*
# `lxc exec` runs as root. Commands run as the image's default user (with sudo), in its home, as
# over `multipass exec`; before cloud-init has created that user (early in the first boot) they
# run as root. A fixed script: the user and the command travel as its arguments, never as text.
# runuser runs a shell that execs the command, because runuser itself exits 1 when it cannot run
# one; the shell exits 127 (not found) or 126 (not executable), as over ssh (measured).
AS_USER_SCRIPT: Final = (
    'u="$1"; shift; if home=$(getent passwd "$u" | cut -d: -f6) && [ -n "$home" ]; then '
    'cd "$home" 2>/dev/null; exec runuser -u "$u" -- sh -c \'exec "$@"\' "$0" "$@"; fi; '
    'exec "$@"'
)


@dataclass(frozen=True)
class LxdTarget:
    """Where labctl's instances live: which CLI, remote, project, profiles, instance type."""

    cli: str = "lxc"  # the executable run (LABCTL_LXC may name another path to it)
    flavour: str = "lxc"  # lxc (LXD) | incus (Incus): which image server and init command
    daemon: str = "lxd"  # LXD's own binary, for `lxd init` (LABCTL_LXD may name another path)
    remote: str = "local"
    project: str = "default"
    profiles: tuple[str, ...] = ("default",)
    instance_type: str = "container"  # container | vm
    user: str = "ubuntu"  # the image's default user: exec runs as it (with sudo)
    # A student's own project (`{student}` in engine.project): `up` creates it, restricted, with
    # a default profile made from `source_profiles` of the default project.
    own_project: bool = False
    source_profiles: tuple[str, ...] = ("default",)


# Ubuntu releases as Multipass names them (`24.04`, `noble`, `lts`): on LXD they come from
# Canonical's `ubuntu:` image server (Incus has no such server: `images:ubuntu/RELEASE/cloud`).
_UBUNTU_RELEASE: Final = re.compile(r"^(?:\d\d\.\d\d|[a-z]+)$")
UBUNTU_CODENAMES: Final = frozenset(
    {"focal", "jammy", "noble", "oracular", "plucky", "questing", "resolute", "lts", "devel"}
)
_MULTIPASS_CHANNELS: Final = {"release": "ubuntu", "daily": "ubuntu-daily"}


def is_ubuntu_release(image: str) -> bool:
    return bool(_UBUNTU_RELEASE.fullmatch(image)) and (
        image[0].isdigit() or image in UBUNTU_CODENAMES
    )


def lxd_image(image: str, *, cli: str = "lxc", remote: str = "local") -> str:
    """lab.yaml's `image:` as an LXD image reference (`REMOTE:ALIAS`).

    `remote:alias` is used as written, except Multipass's channels (`release:24.04` ->
    `ubuntu:24.04`, `daily:24.04` -> `ubuntu-daily:24.04`); an Ubuntu release as Multipass names
    it comes from `ubuntu:` (Incus: `images:ubuntu/RELEASE/cloud`); anything else is an alias on
    the lab's own server (an image imported with `lxc image import --alias`)."""
    prefix, colon, alias = image.partition(":")
    if colon and prefix in _MULTIPASS_CHANNELS and is_ubuntu_release(alias):
        image, prefix, colon = alias, _MULTIPASS_CHANNELS[prefix], ""
        if cli == "lxc":
            return f"{prefix}:{alias}"
    if colon:
        return image
    if is_ubuntu_release(image):
        return f"ubuntu:{image}" if cli == "lxc" else f"images:ubuntu/{image}/cloud"
    return f"{remote}:{image}"


def lxd_size(size: str) -> str:
    """lab.yaml's binary size ("1G", "512M", "1.5G") as LXD writes it ("1024MiB")."""
    return f"{max(1, size_in_bytes(size) // 1024**2)}MiB"


def whole_seconds(timeout: float) -> int:
    return max(1, math.ceil(timeout))


class LxdCommandLines:
    """argv lists, starting with the CLI."""

    target: LxdTarget

    def _name(self, name: str) -> str:
        return f"{self.target.remote}:{name}"

    def _project(self) -> _Argv:
        return ["--project", self.target.project]

    def version_argv(self) -> _Argv:
        # The server's own document: version, API extensions, whether it is clustered.
        return self.query_argv("/1.0")

    def query_argv(self, path: str, *, in_project: bool = False) -> _Argv:
        """`lxc query REMOTE:PATH` (a GET of the REST API, JSON out). `lxc query` refuses
        --project, so a project-scoped path carries it as `?project=`."""
        if in_project:
            path += ("&" if "?" in path else "?") + f"project={quote(self.target.project)}"
        return [self.target.cli, "query", f"{self.target.remote}:{path}"]

    def remote_list_argv(self) -> _Argv:
        return [self.target.cli, "remote", "list", "--format", "json"]

    def image_ref(self, image: str) -> str:
        return lxd_image(image, cli=self.target.flavour, remote=self.target.remote)

    def init_argv(self) -> _Argv:
        """Initialise the local daemon from a preseed on stdin (Incus: `incus admin init`)."""
        if self.target.flavour == "incus":
            return [self.target.cli, "admin", "init", "--preseed"]
        return [self.target.daemon, "init", "--preseed"]

    def list_argv(self) -> _Argv:
        return [
            self.target.cli,
            "list",
            f"{self.target.remote}:",
            "--format",
            "json",
            *self._project(),
        ]

    def list_one_argv(self, name: str) -> _Argv:
        """`lxc list` of one instance: a name filter is a regular expression, so anchored."""
        return [
            self.target.cli, "list", f"{self.target.remote}:", f"^{name}$", "--format", "json",
            *self._project(),
        ]  # fmt: skip

    def list_snapshots_argv(self) -> _Argv:
        return self.list_argv()  # the listing carries each instance's snapshots

    def launch_argv(self, spec: LaunchSpec) -> _Argv:
        """`lxc launch IMAGE REMOTE:NAME`; the config (user-data, labels, limits) goes on stdin
        as the instance document, so the user-data never shows in a process list."""
        profiles = [arg for profile in self.target.profiles for arg in ("--profile", profile)]
        vm = ["--vm"] if self.target.instance_type == "vm" else []
        target = ["--target", spec.target] if spec.target else []
        image = self.image_ref(spec.image)
        return [
            self.target.cli, "launch", image, self._name(spec.name), *vm, *profiles,
            "--device", f"root,size={lxd_size(spec.disk)}", *target, *self._project(),
        ]  # fmt: skip

    def exec_argv(self, name: str, argv: Sequence[str]) -> _Argv:
        """As the image's default user (`runuser` sets HOME and USER), in its home."""
        return [
            self.target.cli, "exec", self._name(name), *self._project(), "--",
            "sh", "-c", AS_USER_SCRIPT, "labctl-exec", self.target.user, *argv,
        ]  # fmt: skip

    def shell_argv(self, name: str) -> _Argv:
        return [
            self.target.cli, "exec", self._name(name), *self._project(), "--", "su", "-l",
            self.target.user,
        ]  # fmt: skip

    def start_argv(self, names: Sequence[str], *, timeout: float) -> _Argv:
        return [self.target.cli, "start", *map(self._name, names), *self._project()]

    def stop_argv(self, names: Sequence[str], *, force: bool, timeout: float) -> _Argv:
        # Without --timeout, lxc stop waits forever for a clean shutdown.
        how = ["--force"] if force else ["--timeout", str(whole_seconds(timeout))]
        return [self.target.cli, "stop", *map(self._name, names), *how, *self._project()]

    def delete_argv(self, names: Sequence[str]) -> _Argv:
        return [self.target.cli, "delete", *map(self._name, names), "--force", *self._project()]

    def recover_argv(self, names: Sequence[str]) -> _Argv:
        return []  # LXD deletes for good: there is nothing to recover

    def snapshot_argv(self, name: str, snapshot: str, *, comment: str) -> _Argv:
        return [self.target.cli, "snapshot", self._name(name), snapshot, *self._project()]

    def restore_argv(self, name: str, snapshot: str) -> _Argv:
        return [self.target.cli, "restore", self._name(name), snapshot, *self._project()]

    def delete_snapshot_argv(self, name: str, snapshot: str) -> _Argv:
        return [self.target.cli, "delete", f"{self._name(name)}/{snapshot}", *self._project()]

    # --- a student's own project and their access to it (projects.py) ----------------------

    def project_create_argv(self, config: Sequence[tuple[str, str]]) -> _Argv:
        settings = [arg for key, value in config for arg in ("--config", f"{key}={value}")]
        return [self.target.cli, "project", "create", self._name(self.target.project), *settings]

    def profile_device_add_argv(
        self, profile: str, device: str, kind: str, settings: Sequence[tuple[str, str]]
    ) -> _Argv:
        return [
            self.target.cli, "profile", "device", "add", self._name(profile), device, kind,
            *(f"{key}={value}" for key, value in settings), *self._project(),
        ]  # fmt: skip

    def token_request_argv(self, trust_name: str) -> _Argv:
        """A join token for a client restricted to the lab's project: `POST /1.0/certificates`
        through `lxc query`, so on any remote (on LXD 5.0, `config trust add` reaches the local
        daemon only: its one positional is a certificate file). It answers with the token's
        operation, whose metadata holds the secret (stdout only: never in argv)."""
        request = {
            "name": trust_name,
            "type": "client",
            "restricted": True,
            "projects": [self.target.project],
            "token": True,
        }
        path = f"{self.target.remote}:/1.0/certificates"
        return [self.target.cli, "query", "-X", "POST", path, "-d", json.dumps(request)]

    def operation_delete_argv(self, operation: str) -> _Argv:
        """Cancel an operation: for a pending join token, revoke it (any remote)."""
        path = f"{self.target.remote}:/1.0/operations/{quote(operation, safe='')}"
        return [self.target.cli, "query", "-X", "DELETE", path]

    def trust_list_argv(self) -> _Argv:
        remote = f"{self.target.remote}:"
        return [self.target.cli, "config", "trust", "list", remote, "--format", "json"]

    def trust_remove_argv(self, fingerprint: str) -> _Argv:
        return [self.target.cli, "config", "trust", "remove", self._name(fingerprint)]

    def student_command(self, remote: str, token: str, instance: str) -> str:
        """What a student runs on their own machine: add the server as `remote` with the token
        (the remote then defaults to the student's project) and open a shell as the image's
        user in `instance`. The plain client name: the instructor's LABCTL_LXC is a path here."""
        cli = self.target.flavour
        add = [cli, "remote", "add", remote, token]
        shell = [cli, "exec", f"{remote}:{instance}", "--", "su", "-l", self.target.user]
        return f"{shlex.join(add)} && {shlex.join(shell)}"
