"""The LXD container image: `python -m tests.lxd.image` (or `make lxd-image`).

The real-VM image's rootfs (tests/vmimage/rootfs.py: Debian 12, cloud-init, systemd, nginx, the
host's node, pm2, default user `ubuntu` with passwordless sudo) without a kernel, plus a DHCP
client, packed as a split LXD image: `meta.tar.gz` (metadata.yaml + templates/) and
`rootfs.tar.gz`. The templates are what LXD's and distrobuilder's own images carry: at the first
start LXD renders the NoCloud seed `/var/lib/cloud/seed/nocloud-net/{meta-data,user-data,
vendor-data,network-config}` from the instance's `cloud-init.*` keys (the legacy `user.*` keys as
a fallback), with DHCP on eth0 unless a network-config is given. Cached by recipe hash under
$LABCTL_LXD_CACHE (default /var/cache/labctl-lxd).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tests.simvm._proc import run
from tests.vmimage.recipe import (
    BASE_PACKAGES,
    ROOTFS_TOOLS,
    SUITE,
    build_unavailable_reason,
    recipe_digest,
)
from tests.vmimage.rootfs import build_main, build_rootfs, ensure_built, say, write_recipe

#: cloud-init's ENI renderer writes `iface eth0 inet dhcp`, which ifupdown runs through dhclient
PACKAGES: Final = (*BASE_PACKAGES, "isc-dhcp-client")
CACHE_ENV: Final = "LABCTL_LXD_CACHE"
DEFAULT_CACHE: Final = Path("/var/cache/labctl-lxd")
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
SEED: Final = "/var/lib/cloud/seed/nocloud-net"
EMPTY_CLOUD_CONFIG: Final = "#cloud-config\n{}\n"
#: target file in the container -> (template, extra template properties)
TEMPLATE_FILES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "/etc/hostname": ("hostname.tpl", {}),
    "/etc/hosts": ("hosts.tpl", {}),
    f"{SEED}/meta-data": ("cloud-init-meta.tpl", {}),
    f"{SEED}/user-data": ("cloud-init-user.tpl", {"default": EMPTY_CLOUD_CONFIG}),
    f"{SEED}/vendor-data": ("cloud-init-vendor.tpl", {"default": EMPTY_CLOUD_CONFIG}),
    f"{SEED}/network-config": ("cloud-init-network.tpl", {}),
}


@dataclass(frozen=True)
class LxdImage:
    """A built split image: the metadata tarball and the rootfs tarball."""

    folder: Path

    @property
    def metadata(self) -> Path:
        return self.folder / "meta.tar.gz"

    @property
    def rootfs(self) -> Path:
        return self.folder / "rootfs.tar.gz"

    @property
    def fingerprint_hint(self) -> str:
        """The recipe hash, also the image's `labctl.recipe` property (to tell imports apart)."""
        return self.folder.name

    def complete(self) -> bool:
        return self.metadata.is_file() and self.rootfs.is_file()


def recipe_hash() -> str:
    sources = [Path(__file__).resolve(), *sorted(TEMPLATES.glob("*.tpl"))]
    return recipe_digest(sources, *PACKAGES)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def cached_image() -> LxdImage:
    """Where the image for the current recipe lives (built or not)."""
    return LxdImage(cache_root() / recipe_hash())


def unavailable_reason() -> str | None:
    """Why the image cannot be built here, or None."""
    return build_unavailable_reason((*ROOTFS_TOOLS, "tar", "gzip"))


def ensure_image() -> LxdImage:
    """The image for the current recipe, built first if it is not in the cache yet."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"cannot build the LXD image: {reason}")
    image = cached_image()
    ensure_built(image.folder, image.complete, lambda work: _build(work, image), "LXD image")
    return image


def metadata(recipe: str, created: int) -> dict[str, Any]:
    """metadata.yaml: what LXD needs to know about the image and which templates to render."""
    templates: dict[str, Any] = {}
    for target, (template, properties) in TEMPLATE_FILES.items():
        entry: dict[str, Any] = {"when": ["create", "copy"], "template": template}
        if properties:
            entry["properties"] = properties
        templates[target] = entry
    return {
        "architecture": "x86_64",
        "creation_date": created,
        "properties": {
            "description": f"labctl test image: Debian 12 ({SUITE}), cloud-init, nginx, node, pm2",
            "os": "debian",
            "release": SUITE,
            "variant": "cloud",
            "labctl.recipe": recipe,
        },
        "templates": templates,
    }


def _build(work: Path, image: LxdImage) -> Path:
    rootfs, out, meta = work / "rootfs", work / "image", work / "meta"
    out.mkdir()
    build_rootfs(rootfs, work, PACKAGES)
    (rootfs / "etc/fstab").write_text("")  # LXD mounts the container's root itself
    for target, _ in TEMPLATE_FILES.items():
        # the seed directory must exist: LXD renders templates into existing directories only
        (rootfs / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    recipe = image.fingerprint_hint
    (meta / "templates").mkdir(parents=True)
    for template in TEMPLATES.glob("*.tpl"):
        shutil.copy(template, meta / "templates" / template.name)
    (meta / "metadata.yaml").write_text(
        yaml.safe_dump(metadata(recipe, int(time.time())), sort_keys=False)
    )
    say("tar | gzip -1 the rootfs and the metadata")
    run(["tar", "-C", str(meta), "-czf", str(out / "meta.tar.gz"), "metadata.yaml", "templates"])
    run(
        [
            "tar",
            "--numeric-owner",
            "--use-compress-program=gzip -1",
            "-C",
            str(rootfs),
            "-cf",
            str(out / "rootfs.tar.gz"),
            ".",
        ],
        timeout=900,
    )
    write_recipe(out, recipe, PACKAGES)
    return out


if __name__ == "__main__":
    sys.exit(build_main(lambda: ensure_image().folder))
