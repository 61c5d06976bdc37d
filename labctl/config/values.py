"""Rules for lab.yaml values whose meaning depends on what runs on the VM: env names
bash or labctl own, ports sshd or a non-root app cannot have, `start:` options that would be
ignored, local image files. Called from `load.cross_check`; each rule
returns (field path, message) pairs, reported with the line of that field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from labctl.config.files import kind_of
from labctl.config.sources import git_url_problem
from labctl.config.yamlpos import Path_
from labctl.model import Lab

SSH_PORT: Final = 22  # sshd on every Ubuntu image (Multipass reaches its VMs through it)
FIRST_UNPRIVILEGED_PORT: Final = 1024  # Ubuntu's net.ipv4.ip_unprivileged_port_start
# `bash -c 'UID=1'` fails with "readonly variable": provision-app.sh sources app.env under set -e.
_BASH_READONLY: Final = frozenset({"UID", "EUID", "PPID", "SHELLOPTS", "BASHOPTS", "BASH_VERSINFO"})
# bash computes these itself (tested: an assignment is dropped or replaced at once).
_BASH_DYNAMIC: Final = frozenset(
    {
        "GROUPS",
        "RANDOM",
        "SRANDOM",
        "SECONDS",
        "LINENO",
        "HISTCMD",
        "DIRSTACK",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "PIPESTATUS",
        "FUNCNAME",
        "OPTIND",
        "OPTARG",
        "OPTERR",
    }
)
# provision-app.sh runs install/build with app.env exported into a clean environment it sets up.
_PROVISIONING: Final = {
    "PATH": "provisioning finds node, npm and pm2 through the PATH labctl sets",
    "HOME": "labctl sets it to the app user's home (pm2 and npm keep their files there)",
    "USER": "labctl sets it to the app user",
    "LOGNAME": "labctl sets it to the app user",
    "SHELL": "labctl sets it to /bin/bash",
    "IFS": "it changes how bash splits words in provisioning",
    "ENV": "it makes a shell run a file before every command",
    "CDPATH": "it changes where `cd` goes in provisioning",
    "GLOBIGNORE": "it changes bash's filename expansion in provisioning",
    "PS4": "it changes bash's trace output",
    "NODE_APP_INSTANCE": "pm2 sets it for each instance",
}


def check_values(lab: Lab, base_dir: Path | None) -> list[tuple[Path_, str]]:
    found = _env_names(lab) + _ports(lab) + _start(lab) + _git(lab)
    if base_dir is not None:
        found += _image_file(lab.image)
    return found


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be an app.env name, or None."""
    if name == "PORT":
        return "labctl sets PORT to app.port (the load balancer sends traffic there); set app.port"
    if name.startswith("LABCTL_"):
        return "LABCTL_* names are labctl's own (it sets LABCTL_VM and its provisioning settings)"
    if name.startswith("PM2_"):
        return "PM2_* names are pm2's settings, which labctl sets (PM2_HOME, PM2_SERVE_*)"
    if name in _BASH_READONLY:
        return "bash treats it as read-only, so provisioning would stop at it"
    if name in _BASH_DYNAMIC or name.startswith("BASH"):
        return "bash sets it itself, so the app would never see this value"
    if name in _PROVISIONING:
        return _PROVISIONING[name]
    return None


def _env_names(lab: Lab) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    for name in lab.app.env:
        problem = env_name_problem(name)
        if problem:
            found.append((("app", "env", name), f"{name!r} cannot be set here: {problem}"))
    return found


def _ports(lab: Lab) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    for path, port in ((("app", "port"), lab.app.port), (("lb", "port"), lab.lb.port)):
        if port == SSH_PORT:
            found.append(
                (path, f"{port} is sshd's port on every VM (Multipass reaches the VM through it)")
            )
    if SSH_PORT != lab.app.port < FIRST_UNPRIVILEGED_PORT:
        found.append(
            (
                ("app", "port"),
                f"{lab.app.port} is a privileged port (below {FIRST_UNPRIVILEGED_PORT}) and the app "
                "runs under pm2 as the unprivileged user ubuntu; use 1024 or above (visitors "
                "reach it through lb.port)",
            )
        )
    return found


def _start(lab: Lab) -> list[tuple[Path_, str]]:
    start, src = lab.app.start, lab.app.source
    if start is None:
        return []
    found: list[tuple[Path_, str]] = []
    written = start.model_fields_set
    if (
        src.builtin is not None
        and src.git is None
        and src.path is None
        and (start.script != "server.js" or start.serve is not None or start.command is not None)
    ):
        found.append(
            (
                ("app", "start"),
                f"the built-in {src.builtin!r} app is one file, server.js: start may only say "
                "script: server.js (and instances:); use a path or git source for your own app",
            )
        )
    if "spa" in written and start.serve is None:
        found.append(
            (("app", "start", "spa"), "spa only applies to serve: (pm2's static server); remove it")
        )
    if "instances" in written and start.script is None:
        mode = "command" if start.command is not None else "serve" if start.serve else "start"
        found.append(
            (
                ("app", "start", "instances"),
                f"instances only applies to script: (pm2 cluster mode runs a Node script); "
                f"with {mode}: pm2 runs one process, so remove it",
            )
        )
    return found


def _git(lab: Lab) -> list[tuple[Path_, str]]:
    url = lab.app.source.git
    problem = None if url is None else git_url_problem(url)
    if problem is None:
        return []
    return [
        (
            ("app", "source", "git"),
            f'{url!r} is not a git URL (like "https://github.com/owner/repo"): {problem}',
        )
    ]


def _image_file(image: str) -> list[tuple[Path_, str]]:
    if not image.startswith("file://"):
        return []
    raw = image.removeprefix("file://")
    if not raw.startswith("/"):
        return [(("image",), f"{image!r}: a file:// image needs an absolute path (file:///...)")]
    try:
        mode = Path(raw).stat().st_mode
    except OSError as exc:
        return [(("image",), f"{image!r}: {exc.strerror or 'cannot be read'}")]
    kind = kind_of(mode)
    if kind is not None:
        return [(("image",), f"{image!r} is {kind}, expected an image file")]
    return []
