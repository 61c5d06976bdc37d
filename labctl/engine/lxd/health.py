"""doctor's view of an LXD server: does it answer, the project, storage, network, the image."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

from labctl.engine.base import HealthLine
from labctl.engine.lxd import server as setup
from labctl.engine.lxd.commands import LxdTarget
from labctl.engine.lxd.parse import ServerInfo, parse_json
from labctl.errors import EngineError


class LxdServer(Protocol):
    """What doctor asks of the LXD engine (the adapter is the one implementation)."""

    target: LxdTarget

    def server(self) -> ServerInfo: ...
    def query(self, path: str, *, in_project: bool = False) -> Any: ...
    def profile_documents(self) -> list[Any]: ...
    def setup_state(self, info: ServerInfo | None = None) -> setup.SetupState: ...
    def run_text(self, argv: Sequence[str]) -> str: ...
    def image_ref(self, image: str) -> str: ...
    def remote_list_argv(self) -> list[str]: ...


def health_lines(engine: LxdServer, image: str | None) -> list[HealthLine]:
    """doctor's lines: LXD answers (version), the project, storage, network, the image."""
    try:
        info = engine.server()
    except EngineError as exc:
        return [HealthLine("lxd", "fail", exc.message, exc.hint or "")]
    kind = "cluster" if info.clustered else "server"
    lines = [
        HealthLine(
            "lxd", "ok", f"{engine.target.cli} talks to LXD {info.version} ({kind} "
            f"{engine.target.remote})"
        )
    ]  # fmt: skip
    if "cloud_init" not in info.extensions:
        lines.append(
            HealthLine(
                "cloud-init",
                "warn",
                "this LXD has no cloud-init.* keys (API extension cloud_init): the image must "
                "read user.user-data",
            )
        )
    try:
        engine.query(f"/1.0/projects/{quote(engine.target.project)}")
    except EngineError as exc:
        return [*lines, HealthLine("project", "fail", exc.message, exc.hint or "")]
    lines.append(HealthLine("project", "ok", f"{engine.target.project} exists"))
    try:
        state = engine.setup_state(info)
        network = setup.nic_of(setup.profile_devices(engine.profile_documents()))[1]
        answer = engine.query(f"/1.0/networks/{quote(network)}") if network else None
        detail = setup.network_detail(answer) if network else ""
    except EngineError as exc:
        return [*lines, HealthLine("profiles", "fail", exc.message, exc.hint or "")]
    lines += [setup.storage_line(state), setup.network_line(state, detail)]
    if image is not None:
        lines.append(_image_line(engine, image))
    return lines


def _image_line(engine: LxdServer, image: str) -> HealthLine:
    ref = engine.image_ref(image)
    remote, _, alias = ref.partition(":")
    if remote != engine.target.remote:
        try:
            argv = engine.remote_list_argv()
            answer = engine.run_text(argv)
            known = setup.remote_names(parse_json(answer, shlex.join(argv)))
        except EngineError as exc:
            return HealthLine("image", "warn", f"{ref}: {exc.message}")
        if remote not in known:
            return HealthLine(
                "image",
                "fail",
                f"{ref}: this client knows no remote {remote!r}",
                "`lxc remote list` shows the ones it knows; fix image: in lab.yaml.",
            )
        return HealthLine("image", "ok", f"{ref} (downloaded from {remote} at the first launch)")
    try:
        engine.query(f"/1.0/images/aliases/{quote(alias, safe='')}", in_project=True)
    except EngineError as exc:
        return HealthLine(
            "image",
            "fail",
            f"{ref} is not on {remote} ({exc.message})",
            "`lxc image list` shows the images there; import it (`lxc image import ... "
            "--alias NAME`) or fix image: in lab.yaml.",
        )
    return HealthLine("image", "ok", f"{ref} is there")
