"""Pure rendering of the app VM's files: pm2 ecosystem, settings and env files (what pm2 and the
app rely on: docs/provisioning.md).

Everything is built as data and serialized (JSON for the ecosystem, `shlex.quote` for the shell
files), so no lab.yaml value can escape its context.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Final

from labctl.model import Lab, Vm
from labctl.scalars import ENV_NAME_RE

APP_USER: Final = "ubuntu"
APP_HOME: Final = "/home/ubuntu"
APP_DIR: Final = "/home/ubuntu/app"
PM2_HOME: Final = "/home/ubuntu/.pm2"
# Fixed log files (merge_logs: one pair even in cluster mode), so log helpers need no app name.
PM2_OUT_LOG: Final = f"{PM2_HOME}/logs/labctl-app-out.log"
PM2_ERROR_LOG: Final = f"{PM2_HOME}/logs/labctl-app-error.log"
HELLO_SCRIPT: Final = "server.js"


def app_env(lab: Lab, vm: Vm) -> dict[str, str]:
    """The app's environment: lab.yaml's `app.env`, then PORT and LABCTL_VM (labctl's win: the LB
    targets `app.port`)."""
    env = {**lab.app.env, "PORT": str(lab.app.port), "LABCTL_VM": vm.name}
    for name in env:
        if not ENV_NAME_RE.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
    return env


def shell_assignments(values: dict[str, str]) -> str:
    """`NAME='value'` lines, safe to `.` or `eval` in sh/bash: values stay inert text."""
    lines = []
    for name, value in values.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise ValueError(f"invalid shell variable name {name!r}")
        if "\x00" in value:
            raise ValueError(f"{name}: NUL byte in value")
        lines.append(f"{name}={shlex.quote(value)}")
    return "".join(line + "\n" for line in lines)


def app_settings(lab: Lab, vm: Vm) -> dict[str, str]:
    """What provision-app.sh needs, as shell variables (rendered by `shell_assignments`)."""
    app, src = lab.app, lab.app.source
    kind = "builtin" if src.builtin else "git" if src.git else "path" if src.path else None
    if kind is None:
        raise ValueError("app.source has none of builtin, git, path")
    secret = set(app.secret_env)
    # Names only, never values: this line goes to cloud-init-output.log.
    names = [f"{n}(secret)" if n in secret else n for n in app_env(lab, vm)]
    return {
        "LABCTL_APP_NAME": app.name,
        "LABCTL_VM": vm.name,
        "LABCTL_PORT": str(app.port),
        "LABCTL_SOURCE": kind,
        "LABCTL_GIT_URL": src.git or "",
        "LABCTL_GIT_REF": src.ref or "",
        "LABCTL_INSTALL": app.install or "",
        "LABCTL_BUILD": app.build or "",
        "LABCTL_ENV_NAMES": " ".join(names),
    }


def ecosystem_app(lab: Lab, vm: Vm) -> dict[str, Any]:
    """The one pm2 app entry, per start mode."""
    app, start = lab.app, lab.app.start
    entry: dict[str, Any] = {"name": app.name, "cwd": APP_DIR}
    env: dict[str, Any] = dict(app_env(lab, vm))
    instances = 1
    if start is None:
        if not app.source.builtin:
            raise ValueError("app.start is required for a git or path app")
        entry["script"] = f"{APP_DIR}/{HELLO_SCRIPT}"
    elif start.serve is not None:
        # pm2's built-in static server, same as `pm2 serve DIR PORT --spa`.
        entry["script"] = "serve"
        env |= {
            "PM2_SERVE_PATH": _inside_app(start.serve),
            "PM2_SERVE_PORT": str(app.port),
            "PM2_SERVE_SPA": "true" if start.spa else "false",
            "PM2_SERVE_HOMEPAGE": "/index.html",
        }
    elif start.script is not None:
        entry["script"] = _inside_app(start.script)
        instances = start.instances
    elif start.command is not None:
        entry |= {"script": "/bin/bash", "args": ["-c", start.command], "interpreter": "none"}
    else:
        raise ValueError("app.start has none of serve, script, command")
    if instances > 1:
        entry |= {"instances": instances, "exec_mode": "cluster"}
    entry |= {"env": env, "merge_logs": True, "out_file": PM2_OUT_LOG, "error_file": PM2_ERROR_LOG}
    return entry


def render_ecosystem(lab: Lab, vm: Vm) -> str:
    """`ecosystem.config.js`: `module.exports = ` + JSON (JSON is valid JavaScript)."""
    data = {"apps": [ecosystem_app(lab, vm)]}
    return "module.exports = " + json.dumps(data, indent=2, ensure_ascii=True) + ";\n"


def _inside_app(relative: str) -> str:
    parts = relative.strip("/").split("/")
    if relative.startswith("/") or ".." in parts or "\x00" in relative or not relative.strip("/"):
        raise ValueError(f"{relative!r} must be a path inside the app's folder")
    inner = "/".join(p for p in parts if p not in ("", "."))
    return f"{APP_DIR}/{inner}" if inner else APP_DIR
