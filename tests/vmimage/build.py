"""Build the real-VM image once per recipe: `python -m tests.vmimage.build` (or `make vm-image`).

The shared test rootfs (rootfs.py) with a kernel, udev and openssh. The root filesystem is made
with `mkfs.ext4 -d` (no loop mounts) and converted to qcow2; the kernel and initrd are copied out
next to it so qemu boots them directly.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.simvm._proc import run
from tests.vmimage.recipe import (
    DISK_SIZE,
    PACKAGES,
    Image,
    cached_image,
    image_unavailable_reason,
    recipe_hash,
)
from tests.vmimage.rootfs import build_main, build_rootfs, ensure_built, say, write_recipe


def ensure_image() -> Image:
    """The image for the current recipe, built first if it is not in the cache yet."""
    reason = image_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"cannot build the VM image: {reason}")
    image = cached_image()
    ensure_built(image.folder, image.complete, _build, "VM image")
    return image


def _build(work: Path) -> Path:
    rootfs, out = work / "root", work / "image"
    out.mkdir()
    build_rootfs(rootfs, work, PACKAGES)
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
    _copy_boot_files(rootfs, out)
    say(f"mkfs.ext4 -d ({DISK_SIZE}) and qemu-img convert")
    raw = work / "base.raw"
    run(["mkfs.ext4", "-q", "-F", "-L", "labctl-root", "-d", str(rootfs), str(raw), DISK_SIZE])
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out / "base.qcow2")])
    raw.unlink()
    write_recipe(out, recipe_hash(), PACKAGES)
    return out


def _copy_boot_files(rootfs: Path, out: Path) -> None:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError("the image has no kernel or initrd in /boot")
    shutil.copy(kernels[-1], out / "vmlinuz")
    shutil.copy(initrds[-1], out / "initrd.img")


if __name__ == "__main__":
    sys.exit(build_main(lambda: ensure_image().folder))
