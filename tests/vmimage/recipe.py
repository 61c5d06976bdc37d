"""What goes into the test images, and where the real-VM image is cached (keyed by the recipe).

The packages every image shares are BASE_PACKAGES (rootfs.py builds them into a root filesystem);
the real-VM image adds a kernel, udev and openssh, the LXD container image (tests/lxd/image.py)
a DHCP client. A cache key hashes the builder's source files, the host's nodejs version (its .deb
is repacked into the image) and the package list, so editing the recipe rebuilds the image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SUITE: Final = "bookworm"
#: Debian's archive, as on the host's apt sources (deb.debian.org)
MIRROR: Final = os.environ.get("LABCTL_VM_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES: Final = (
    "systemd-sysv",
    "dbus",  # systemd-logind needs it; logind turns the ACPI power button into a clean poweroff
    "ifupdown",  # cloud-init's ENI renderer writes the static address for Debian
    "iproute2",
    "netbase",
    "procps",
    "locales",  # cloud-init's locale module runs locale-gen/update-locale (en_US.UTF-8)
    "libnss-myhostname",  # the VM's own hostname resolves (sudo), as on Ubuntu's images
    "gpg",  # cloud-init's apt module dearmors inline keys with gpg
    "sudo",
    "cloud-init",
    "python3-cffi-backend",  # provides python3-cffi-backend-api-*: debootstrap skips virtual deps
    "python3",
    "ca-certificates",
    "curl",
    "nginx",
    "git",
)
#: The real-VM image: a kernel to boot and SSH for the fake multipass's exec.
PACKAGES: Final = ("linux-image-amd64", "udev", "kmod", "openssh-server", *BASE_PACKAGES)
PM2_SPEC: Final = "pm2@7"
#: The built image is at most this big on disk (sparse); the overlay of each VM sees the same size.
DISK_SIZE: Final = "6G"
#: what building any test image runs on the host
ROOTFS_TOOLS: Final = ("debootstrap", "dpkg-repack", "npm", "node")
TOOLS: Final = (*ROOTFS_TOOLS, "mkfs.ext4", "qemu-img")
CACHE_ENV: Final = "LABCTL_VM_CACHE"
DEFAULT_CACHE: Final = Path("/var/cache/labctl-vm")


@dataclass(frozen=True)
class Image:
    """A built image: a qcow2 root filesystem (ext4 on the whole disk) and its kernel/initrd."""

    folder: Path

    @property
    def disk(self) -> Path:
        return self.folder / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd))


def host_nodejs_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "nodejs"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def recipe_digest(sources: Iterable[Path], *facts: str) -> str:
    """A short hash of the builder's source files, the shared recipe and `facts` (what else
    changes the result)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted({here / "recipe.py", here / "rootfs.py", *sources}):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    digest.update(f"{SUITE} {MIRROR} {PM2_SPEC} nodejs={host_nodejs_version()}".encode())
    digest.update(" ".join(facts).encode())
    return digest.hexdigest()[:16]


def recipe_hash() -> str:
    here = Path(__file__).resolve().parent
    return recipe_digest([here / "build.py"], *PACKAGES, DISK_SIZE)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def deb_cache() -> Path:
    """Downloaded .debs kept between builds (every test image fetches mostly the same ones)."""
    return cache_root() / "debs"


def cached_image() -> Image:
    """Where the image for the current recipe lives (built or not)."""
    return Image(cache_root() / recipe_hash())


def image_unavailable_reason() -> str | None:
    """Why the image cannot be built (or booted) here, or None."""
    return build_unavailable_reason((*TOOLS, "qemu-system-x86_64", "genisoimage", "ssh"))


def build_unavailable_reason(tools: Iterable[str]) -> str | None:
    """Why an image that needs `tools` cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, devices, bridges)"
    missing = [t for t in tools if not _which(t)]
    if missing:
        return f"needs {', '.join(missing)} (make system-deps installs them as root)"
    if not host_nodejs_version():
        return "needs the nodejs package installed on the host (it is repacked into the image)"
    return None


def _which(tool: str) -> bool:
    return shutil.which(tool) is not None or Path(f"/usr/sbin/{tool}").exists()
