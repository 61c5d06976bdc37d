"""Rules of `engine:` and of the fields whose meaning depends on the engine (`image:`,
`hosts:`). Called from `load.cross_check`; each rule returns (field path, message) pairs, reported
with the line of that field.

Remote Multipass daemons are refused here: Multipass does not support them (its `exec` and
`shell` need a network route from the client to each VM, and since 1.16 the client pins the
daemon's certificate to `localhost`). A lab that needs other machines uses LXD, whose remotes
and clusters are made for it.
"""

from __future__ import annotations

from typing import Final

from labctl.config.yamlpos import Path_
from labctl.model import LXD_ONLY_KEYS, Lab
from labctl.scalars import IMAGE_RE, LXD_IMAGE_RE

RETIRED_ADDRESS: Final = (
    "remote Multipass daemons are retired: Multipass does not support them (exec and shell need "
    "a route to every VM; since 1.16 its client accepts only a localhost certificate). Use "
    "`engine: lxd` with each server added as an `lxc remote` (hosts[].remote): docs/engines/lxd.md"
)


def check_engine(lab: Lab) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    engine = lab.engine
    name = engine.name if engine is not None else None
    if engine is not None and name != "lxd":
        for key in LXD_ONLY_KEYS:
            if key in engine.model_fields_set:
                found.append(
                    (
                        ("engine", key),
                        f"only engine lxd has {key} (engine {name} does not); remove it or "
                        "write `name: lxd`",
                    )
                )
    found += _image(lab.image, name)
    if engine is not None and engine.per_student_project and not lab.is_class:
        found.append(
            (
                ("engine", "project"),
                "{student} in the project gives each student of a class a project of their "
                "own; this lab has no class: section (name one project, like lab1)",
            )
        )
    for i, host in enumerate(lab.hosts):
        if "address" in host.model_fields_set:
            found.append((("hosts", i, "address"), RETIRED_ADDRESS))
        if host.remote is not None and name != "lxd":
            found.append(
                (
                    ("hosts", i, "remote"),
                    "a remote is an `lxc remote`: it needs `engine: lxd` (Multipass runs on this "
                    "machine only)",
                )
            )
        if host.member is not None and name != "lxd":
            found.append(
                (
                    ("hosts", i, "member"),
                    "a member is a member of an LXD cluster: it needs `engine: lxd`",
                )
            )
    return found


def _image(image: str, engine: str | None) -> list[tuple[Path_, str]]:
    multipass_form = IMAGE_RE.fullmatch(image) is not None or image.startswith(
        ("http://", "https://", "file://")
    )
    if engine == "multipass" and not multipass_form:
        return [
            (
                ("image",),
                f"{image!r} is an LXD image reference; Multipass takes an Ubuntu release "
                '(like "24.04", "noble", "lts"), daily:RELEASE or an image URL',
            )
        ]
    if engine == "lxd" and image.startswith(("http://", "https://", "file://")):
        return [
            (
                ("image",),
                f"{image!r}: LXD launches from an image server or its own images: write "
                '"ubuntu:24.04", "REMOTE:ALIAS" or an alias imported with `lxc image import`',
            )
        ]
    if engine == "lxd" and not (multipass_form or LXD_IMAGE_RE.fullmatch(image)):
        return [(("image",), f"{image!r} is not an LXD image reference (like ubuntu:24.04)")]
    return []
