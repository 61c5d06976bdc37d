"""Build the base image once per recipe: `python -m tests.vmimage.build` (or `make vm-image`).

debootstrap Debian 12 from Debian's archive with the recipe's packages, then, from the host (the
VMs and the chroot have no internet or CA settings here): the host's nodejs package repacked and
installed with dpkg, pm2 installed by the host's npm into the image's /usr/local. cloud-init's
default user becomes `ubuntu` with passwordless sudo, as on Ubuntu cloud images. The root
filesystem is made with `mkfs.ext4 -d` (no loop mounts) and converted to qcow2; the kernel and
initrd are copied out next to it so qemu boots them directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.simvm._proc import file_lock, run
from tests.vmimage.recipe import (
    DISK_SIZE,
    MIRROR,
    PACKAGES,
    PM2_SPEC,
    SUITE,
    Image,
    cache_root,
    cached_image,
    host_nodejs_version,
    image_unavailable_reason,
    recipe_hash,
)

CLOUD_CFG = """\
# labctl test image: the NoCloud seed (cidata) is the only datasource, and the default user is
# `ubuntu` with passwordless sudo, as on Ubuntu's cloud images (Multipass relies on it).
datasource_list: [NoCloud, None]
system_info:
  default_user:
    name: ubuntu
    gecos: Ubuntu
    lock_passwd: true
    groups: [adm, cdrom, dip, sudo, plugdev, netdev]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""
# The VMs have no route out: apt's daily timers would only fail (and hold the dpkg lock).
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service")


def _say(message: str) -> None:
    print(f"vm-image: {message}", file=sys.stderr, flush=True)


def ensure_image() -> Image:
    """The image for the current recipe, built first if it is not in the cache yet."""
    reason = image_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"cannot build the VM image: {reason}")
    image = cached_image()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f"{image.folder.name}.lock"):  # one builder; the others wait and reuse
        if image.complete():
            return image
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".build-{image.folder.name}-", dir=root))
        try:
            _build(work)
            shutil.rmtree(image.folder, ignore_errors=True)
            (work / "image").rename(image.folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _say(f"built {image.folder} in {time.monotonic() - started:.0f} s")
    return image


def _build(work: Path) -> None:
    rootfs, out = work / "root", work / "image"
    out.mkdir()
    _say(f"debootstrap {SUITE} from {MIRROR} ({len(PACKAGES)} extra packages)")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            MIRROR,
        ],
        timeout=1800,
    )
    _install_host_nodejs(rootfs, work)
    _say(f"npm install -g {PM2_SPEC} into the image's /usr/local (host npm)")
    run(
        [
            "npm",
            "install",
            "--global",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            "--prefix",
            str(rootfs / "usr/local"),
            PM2_SPEC,
        ],
        timeout=900,
    )
    if not (rootfs / "usr/local/bin/pm2").exists():
        raise RuntimeError("pm2 was not installed into the image")
    _configure(rootfs)
    _copy_boot_files(rootfs, out)
    _say(f"mkfs.ext4 -d ({DISK_SIZE}) and qemu-img convert")
    raw = work / "base.raw"
    run(["mkfs.ext4", "-q", "-F", "-L", "labctl-root", "-d", str(rootfs), str(raw), DISK_SIZE])
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out / "base.qcow2")])
    raw.unlink()
    recipe = {
        "hash": recipe_hash(),
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": list(PACKAGES),
        "pm2": PM2_SPEC,
        "nodejs": host_nodejs_version(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")


def _install_host_nodejs(rootfs: Path, work: Path) -> None:
    """The host's nodejs (NodeSource's node_20 here, what labctl's user-data installs) as a .deb
    (gzip -1: dpkg-deb's default xz takes minutes on one busy core for an unpacked-once file)."""
    _say(f"dpkg-repack nodejs {host_nodejs_version()} from the host, dpkg -i in the image")
    debs = work / "debs"
    debs.mkdir()
    proc = subprocess.run(
        ["dpkg-repack", "--deb-option=-Zgzip", "--deb-option=-z1", "nodejs"],
        cwd=debs,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = sorted(debs.glob("nodejs_*.deb"))
    if not found:
        raise RuntimeError(f"dpkg-repack nodejs made no .deb: {proc.stderr.strip()}")
    shutil.copy(found[0], rootfs / "tmp/nodejs.deb")
    run(["chroot", str(rootfs), "dpkg", "-i", "/tmp/nodejs.deb"], timeout=600)
    (rootfs / "tmp/nodejs.deb").unlink()
    # npm updates itself outside dpkg's file list, so the repacked copy can miss files: the
    # host's working npm tree replaces it.
    npm = Path("/usr/lib/node_modules/npm")
    if npm.is_dir():
        target = rootfs / "usr/lib/node_modules/npm"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(npm, target, symlinks=True)


def _configure(rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "cloud/cloud.cfg.d/90_labctl_image.cfg").write_text(CLOUD_CFG)
    (etc / "fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
    (etc / "network/interfaces").write_text(
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n"
    )
    (etc / "hostname").write_text("localhost\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    (etc / "machine-id").write_text("")  # each VM gets its own on first boot
    # As on Ubuntu's cloud images; cloud-init's locale module then has nothing to generate
    # (Debian's locale-gen ignores the locale cloud-init passes, so en_US.UTF-8 would fail).
    (etc / "default/locale").write_text("LANG=C.UTF-8\n")
    for unit in MASKED_UNITS:
        link = etc / "systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for cache in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        cache.unlink()  # the package lists stay: cloud-init's `apt-get install` needs them


def _copy_boot_files(rootfs: Path, out: Path) -> None:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError("the image has no kernel or initrd in /boot")
    shutil.copy(kernels[-1], out / "vmlinuz")
    shutil.copy(initrds[-1], out / "initrd.img")


def main() -> int:
    try:
        image = ensure_image()
    except (RuntimeError, OSError) as exc:
        _say(str(exc))
        return 1
    _say(f"ready: {image.folder} (recipe {image.folder.name})")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
