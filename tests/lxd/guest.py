"""What the smoke tests put in their containers: a cloud-config that writes files, serves a page
with nginx and runs a node app as a systemd unit of the default user (as pm2's startup unit
does for labctl's apps), and the checks that it is all there."""

from __future__ import annotations

from typing import Final

from tests.lxd.daemon import LxdDaemon
from tests.lxd.instances import http_get, poll

APP_PORT: Final = 3000
MARKER_FILE: Final = "/etc/labctl-smoke"

USER_DATA: Final = """\
#cloud-config
write_files:
  - path: /var/www/html/index.html
    content: "nginx on {name}\\n"
  - path: {marker}
    content: "{name}\\n"
  - path: /opt/smoke/app.js
    content: |
      const os = require("os");
      require("http")
        .createServer((req, res) => res.end(`node on ${{os.hostname()}}\\n`))
        .listen({port});
  - path: /etc/systemd/system/smoke-app.service
    content: |
      [Unit]
      Description=labctl smoke app
      After=network-online.target
      [Service]
      User=ubuntu
      ExecStart=/usr/bin/node /opt/smoke/app.js
      Restart=always
      [Install]
      WantedBy=multi-user.target
runcmd:
  - [systemctl, daemon-reload]
  - [systemctl, enable, --now, nginx, smoke-app]
"""


def user_data(name: str) -> str:
    return USER_DATA.format(name=name, marker=MARKER_FILE, port=APP_PORT)


def serving(ip: str, name: str) -> bool:
    """Both nginx (port 80) and the node unit answer from the host with this guest's name."""
    web = http_get(f"http://{ip}/")
    app = http_get(f"http://{ip}:{APP_PORT}/")
    return (
        web is not None
        and web == (200, f"nginx on {name}\n")
        and app is not None
        and app == (200, f"node on {name}\n")
    )


def wait_serving(ip: str, name: str, timeout: float = 120) -> None:
    poll(
        f"{name} ({ip}) to serve nginx and the node app", lambda: serving(ip, name) or None, timeout
    )


def wait_not_serving(ip: str, name: str, timeout: float = 60) -> None:
    def gone() -> bool | None:
        return True if http_get(f"http://{ip}/", timeout=1) is None else None

    poll(f"{name} ({ip}) to stop answering", gone, timeout)


def exec_out(daemon: LxdDaemon, name: str, *argv: str) -> str:
    return daemon.lxc("exec", name, "--", *argv, timeout=60).stdout
