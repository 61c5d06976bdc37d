"""The status agent's files in the user-data (cloud-init/status_agent.py runs them on the VM).

Pure: the VM's key arrives from the caller (`labctl up` derives it, labctl.host.agent).
"""

from __future__ import annotations

from typing import Any, Final

from labctl.model import Lab

STATUS_AGENT_PATH: Final = "/usr/local/sbin/labctl-status-agent"
STATUS_AGENT_KEY_PATH: Final = "/etc/labctl/status-agent.key"
STATUS_AGENT_UNIT: Final = "labctl-status-agent.service"
STATUS_AGENT_UNIT_PATH: Final = f"/etc/systemd/system/{STATUS_AGENT_UNIT}"
# Not a key (the agent wants 64 hex digits): what `labctl render` shows, and an agent given it
# refuses every request.
KEY_PLACEHOLDER: Final = "<the VM's status key: written by labctl up>"
# The first of these that the app and the LB do not use.
_PORTS: Final = (7391, 7392, 7393)

_UNIT: Final = f"""\
[Unit]
Description=labctl status agent (answers `labctl status` with this VM's health)
After=network.target

[Service]
Type=simple
ExecStart=/usr/bin/python3 -I {STATUS_AGENT_PATH}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def status_port(lab: Lab) -> int:
    """The agent's TCP port: never the app's or the LB's."""
    used = {int(lab.app.port), int(lab.lb.port)}
    return next(port for port in _PORTS if port not in used)


def agent_config(lab: Lab) -> dict[str, Any]:
    """The `status_agent` part of /etc/labctl/config.json."""
    return {"port": status_port(lab), "key_file": STATUS_AGENT_KEY_PATH}


def agent_unit() -> str:
    return _UNIT


def agent_runcmd() -> list[str | list[str]]:
    # Started first, so `labctl status` reads it while the app is still being provisioned.
    return [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", STATUS_AGENT_UNIT]]


def agent_key_text(key: bytes | None) -> str:
    return (key.hex() if key is not None else KEY_PLACEHOLDER) + "\n"
