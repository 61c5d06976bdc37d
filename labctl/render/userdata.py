"""Pure rendering: cloud-init user-data per VM, the LB's nginx site, the argv labctl runs on VMs.

Nothing here reads files, the clock or the environment (so it is testable on golden files): the static files
arrive as `Assets` (see `labctl.render.assets`). User-data is built as data and dumped with PyYAML's safe
dumper, never string-templated, so lab.yaml values cannot change its structure.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Final

import yaml

from labctl import __version__
from labctl.model import Lab, Vm
from labctl.render.agent import (
    STATUS_AGENT_KEY_PATH,
    STATUS_AGENT_PATH,
    STATUS_AGENT_UNIT_PATH,
    agent_config,
    agent_key_text,
    agent_runcmd,
    agent_unit,
)
from labctl.render.app import (
    APP_DIR,
    APP_USER,
    PM2_ERROR_LOG,
    PM2_HOME,
    PM2_OUT_LOG,
    app_env,
    app_settings,
    render_ecosystem,
    shell_assignments,
)
from labctl.render.assets import ARMORED_KEY_HEADER, Assets
from labctl.render.nginx import (
    Backend,
    nginx_enabled_path,
    nginx_site_path,
    render_nginx_site,
    render_placeholder_site,
)

__all__ = [
    "APP_LOG_COMMAND",
    "CLOUD_INIT_LOG_COMMAND",
    "CLOUD_INIT_WAIT_COMMAND",
    "INSTANCE_MARKER_PATH",
    "LB_APPLY_COMMAND",
    "NGINX_LOG_COMMAND",
    "VM_STATUS_COMMAND",
    "Backend",
    "app_log_command",
    "cloud_init_log_command",
    "mask_secrets",
    "nginx_enabled_path",
    "nginx_log_command",
    "nginx_site_path",
    "render_nginx_site",
    "render_placeholder_site",
    "render_user_data",
]

INSTANCE_MARKER_PATH: Final = "/etc/labctl/instance.json"
CONFIG_PATH: Final = "/etc/labctl/config.json"  # read by labctl-vm-status and labctl-lb-apply
APP_CONF_PATH: Final = "/etc/labctl/app.conf"
APP_ENV_PATH: Final = "/etc/labctl/app.env"
ECOSYSTEM_PATH: Final = "/etc/labctl/ecosystem.config.js"
LIB_DIR: Final = "/usr/local/lib/labctl"
PROVISION_APP_PATH: Final = f"{LIB_DIR}/provision-app.sh"
HELLO_SERVER_PATH: Final = f"{LIB_DIR}/hello/server.js"
APP_ARCHIVE_PATH: Final = f"{LIB_DIR}/app.tar.gz"
LB_APPLY_PATH: Final = "/usr/local/sbin/labctl-lb-apply"
VM_STATUS_PATH: Final = "/usr/local/sbin/labctl-vm-status"
NGINX_ERROR_LOG: Final = "/var/log/nginx/error.log"
CLOUD_INIT_OUTPUT_LOG: Final = "/var/log/cloud-init-output.log"

# Run in the LB instance with the site text on stdin. Exit 0 = applied/unchanged (stdout says
# which), 1 = rejected by nginx -t (old site kept), 2 = bad input, 3 = reload failed.
LB_APPLY_COMMAND: Final[list[str]] = ["sudo", LB_APPLY_PATH]
# Prints one JSON object (schema in cloud-init/vm_status.py), always exit 0.
VM_STATUS_COMMAND: Final[list[str]] = ["sudo", VM_STATUS_PATH]
# Waits for cloud-init to end; exits 0 done, 2 done with recoverable errors, 1 failed.
CLOUD_INIT_WAIT_COMMAND: Final[list[str]] = ["cloud-init", "status", "--wait"]
NODESOURCE_URL: Final = "https://deb.nodesource.com/node_{version}.x"
SECRET_MASK: Final = "<secret: masked by labctl render>"  # noqa: S105  (a placeholder, not a password)


def app_log_command(lines: int = 100) -> list[str]:
    """argv printing the last `lines` lines of the app's pm2 stdout and stderr logs."""
    return ["sudo", "tail", "-n", _count(lines), PM2_OUT_LOG, PM2_ERROR_LOG]


def nginx_log_command(lines: int = 100) -> list[str]:
    """argv printing the last `lines` lines of nginx's error log."""
    return ["sudo", "tail", "-n", _count(lines), NGINX_ERROR_LOG]


def cloud_init_log_command(lines: int = 100) -> list[str]:
    """argv printing the last `lines` lines of cloud-init's output log (runcmd's output)."""
    return ["sudo", "tail", "-n", _count(lines), CLOUD_INIT_OUTPUT_LOG]


def mask_secrets(lab: Lab) -> Lab:
    """The same lab with every `app.secret_env` value replaced by SECRET_MASK, for display.

    `labctl render` prints user-data, which carries the env file; the launch itself never masks.
    """
    secret = set(lab.app.secret_env)
    if not secret:
        return lab
    env = {name: SECRET_MASK if name in secret else value for name, value in lab.app.env.items()}
    return lab.model_copy(update={"app": lab.app.model_copy(update={"env": env})})


APP_LOG_COMMAND: Final[Callable[[int], list[str]]] = app_log_command
NGINX_LOG_COMMAND: Final[Callable[[int], list[str]]] = nginx_log_command
CLOUD_INIT_LOG_COMMAND: Final[Callable[[int], list[str]]] = cloud_init_log_command


def render_user_data(
    lab: Lab,
    vm: Vm,
    assets: Assets,
    *,
    app_archive: bytes | None = None,
    status_key: bytes | None = None,
) -> str:
    """The full `#cloud-config` document for one VM; a VM with both roles gets both, merged.

    `app_archive` is the gzipped tar of a `source: path` app (the caller builds it): required
    for such an app's app VMs, ignored on VMs without the app role, refused for other sources.
    `status_key` is the VM's status agent key (labctl.host.agent.vm_key); without it the file
    holds a placeholder and the agent refuses every request (what `labctl render` shows).
    """
    if vm not in lab.vms:
        raise ValueError(f"VM {vm.name!r} is not part of lab {lab.name!r}")
    is_app, is_lb = "app" in vm.roles, "lb" in vm.roles
    wants_archive = is_app and lab.app.source.path is not None
    if wants_archive and app_archive is None:
        raise ValueError(f"VM {vm.name!r} runs a `source: path` app: pass app_archive")
    if app_archive is not None and lab.app.source.path is None:
        raise ValueError(f"app_archive given, but lab {lab.name!r} has no `source: path` app")
    if not is_app:
        app_archive = None  # the LB-only VM does not run the app

    packages: list[str] = []
    files = _common_files(lab, vm, assets)
    files += _agent_files(assets, status_key)
    # runcmd is one /bin/sh script without `set -e`: only the last status would count
    # (docs/provisioning.md), so make every failure stop it and fail cloud-init.
    runcmd: list[str | list[str]] = ["set -eu", *agent_runcmd()]
    if is_lb:  # first: the LB is quick, and answers 503 while the app builds
        packages.append("nginx")
        files += _lb_files(lab, assets)
        runcmd += _lb_runcmd(lab)
    if is_app:
        packages += ["nodejs", "git"]
        files += _app_files(lab, vm, assets, app_archive)
        runcmd.append([PROVISION_APP_PATH])

    data: dict[str, Any] = {
        "users": ["default"],  # the image's default user: exec and shell run as it
        "package_update": True,
        "package_upgrade": False,
    }
    if is_app:
        data["apt"] = {"sources": {"nodesource": _nodesource(lab, assets)}}
    data |= {
        "packages": packages,
        "write_files": files,
        "runcmd": runcmd,
        "final_message": f"labctl: cloud-init finished on {lab.instance_name(vm)} after $UPTIME s",
    }
    return "#cloud-config\n" + yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True
    )


def _nodesource(lab: Lab, assets: Assets) -> dict[str, str]:
    if not assets.nodesource_key.lstrip().startswith(ARMORED_KEY_HEADER):
        raise ValueError("assets.nodesource_key is not an armored PGP key")
    version = int(lab.app.node_version)
    # $KEY_FILE is substituted by cloud-init's apt module.
    source = f"deb [signed-by=$KEY_FILE] {NODESOURCE_URL.format(version=version)} nodistro main"
    return {"source": source, "key": assets.nodesource_key}


def _common_files(lab: Lab, vm: Vm, assets: Assets) -> list[dict[str, Any]]:
    marker = {"lab": lab.name, "vm": vm.name, "roles": list(vm.roles), "labctl": __version__}
    config: dict[str, Any] = {"app": None, "lb": None, "status_agent": agent_config(lab)}
    if "app" in vm.roles:
        config["app"] = {
            "name": lab.app.name,
            "port": lab.app.port,
            "user": APP_USER,
            "pm2_home": PM2_HOME,
        }
    if "lb" in vm.roles:
        config["lb"] = {
            "site": nginx_site_path(lab),
            "enabled": nginx_enabled_path(lab),
            "port": lab.lb.port,
        }
    return [
        _file(INSTANCE_MARKER_PATH, _json(marker), "0644"),
        _file(CONFIG_PATH, _json(config), "0644"),
        _file(VM_STATUS_PATH, assets.vm_status, "0755"),
    ]


def _agent_files(assets: Assets, key: bytes | None) -> list[dict[str, Any]]:
    return [
        _file(STATUS_AGENT_PATH, assets.status_agent, "0755"),
        _file(STATUS_AGENT_KEY_PATH, agent_key_text(key), "0600"),
        _file(STATUS_AGENT_UNIT_PATH, agent_unit(), "0644"),
    ]


def _lb_files(lab: Lab, assets: Assets) -> list[dict[str, Any]]:
    if lab.stage == "app":  # nginx keeps its own default site: the proxy is the student's to write
        return [_file(LB_APPLY_PATH, assets.lb_apply, "0755")]
    return [
        # Deferred: lands after the nginx package, so dpkg never sees it (docs/provisioning.md).
        _file(nginx_site_path(lab), render_placeholder_site(lab), "0644", defer=True),
        _file(LB_APPLY_PATH, assets.lb_apply, "0755"),
    ]


def _lb_runcmd(lab: Lab) -> list[str | list[str]]:
    if lab.stage == "app":
        return [["systemctl", "enable", "nginx"], ["systemctl", "restart", "nginx"]]
    return [
        ["rm", "-f", "/etc/nginx/sites-enabled/default"],
        ["ln", "-sfn", nginx_site_path(lab), nginx_enabled_path(lab)],
        ["nginx", "-t"],
        ["systemctl", "enable", "nginx"],
        ["systemctl", "restart", "nginx"],
    ]


def _app_files(lab: Lab, vm: Vm, assets: Assets, archive: bytes | None) -> list[dict[str, Any]]:
    files = [
        _file(PROVISION_APP_PATH, assets.provision_app, "0755"),
        # 0600: app.env and the ecosystem hold the app's env, secrets included.
        _file(APP_CONF_PATH, shell_assignments(app_settings(lab, vm)), "0600"),
        _file(APP_ENV_PATH, shell_assignments(app_env(lab, vm)), "0600"),
        _file(ECOSYSTEM_PATH, render_ecosystem(lab, vm), "0600"),
    ]
    if lab.app.source.builtin == "hello":
        files.append(_file(HELLO_SERVER_PATH, assets.hello_server, "0644"))
    if archive is not None:
        encoded = base64.b64encode(archive).decode("ascii")
        files.append(_file(APP_ARCHIVE_PATH, encoded, "0600", encoding="b64"))
    return files


def _file(
    path: str, content: str, permissions: str, *, defer: bool = False, encoding: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path}
    if encoding:
        entry["encoding"] = encoding
    entry |= {"content": content, "owner": "root:root", "permissions": permissions}
    if defer or path.startswith("/home/ubuntu/") or path.startswith(APP_DIR):
        entry["defer"] = True  # the ubuntu user and its home exist only in the final stage
    return entry


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def _count(lines: int) -> str:
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 1_000_000:
        raise ValueError(f"line count must be 1..1000000, got {lines!r}")
    return str(lines)


try:
    # libyaml's emitter: the same document ~10x faster than PyYAML's pure-Python one (`up`
    # renders every VM's ~25 KB user-data in its launch thread, under the GIL).
    from yaml import CSafeDumper as _SafeDumper
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]


class _Dumper(_SafeDumper):
    """SafeDumper that writes multi-line strings (scripts, keys) as `|` blocks for readable
    goldens. PyYAML falls back to a quoted style when a block cannot represent the text."""


def _represent_str(dumper: yaml.representer.SafeRepresenter, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
