"""The NoCloud `cidata` seed: user-data (labctl's text), meta-data, network-config (cloud-init docs:
datasources/nocloud). The SSH key of the fake's daemon goes in meta-data `public-keys`, which
cloud-init gives to the default user, so the user-data itself stays labctl's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.simvm._proc import run


def write_seed(
    iso: Path,
    folder: Path,
    *,
    user_data: str,
    meta_data: dict[str, Any],
    network_config: dict[str, Any],
) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "user-data").write_text(user_data)
    (folder / "meta-data").write_text(yaml.safe_dump(meta_data, sort_keys=False))
    (folder / "network-config").write_text(yaml.safe_dump(network_config, sort_keys=False))
    run(
        [
            "genisoimage",
            "-quiet",
            "-output",
            str(iso),
            "-volid",
            "cidata",
            "-joliet",
            "-rock",
            *(str(folder / name) for name in ("user-data", "meta-data", "network-config")),
        ]
    )
