"""The root filesystem every test image starts from, and the cache that keeps built images.

Both the real-VM image (build.py) and the LXD container image (tests/lxd/image.py) are this
rootfs plus their own few packages and files: debootstrap Debian 12 from Debian's archive, then,
from the host (the guests and the chroot have no internet or CA settings here), the host's nodejs
package repacked and installed with dpkg and pm2 installed by the host's npm into the image's
/usr/local. cloud-init's default user becomes `ubuntu` with passwordless sudo, as on Ubuntu's
cloud images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from tests.simvm._proc import file_lock, run
from tests.vmimage.recipe import MIRROR, PM2_SPEC, SUITE, deb_cache, host_nodejs_version

CLOUD_CFG: Final = """\
# labctl test image: the NoCloud seed is the only datasource, and the default user is
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
# The guests have no route out: apt's daily timers would only fail (and hold the dpkg lock).
MASKED_UNITS: Final = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service")


def say(message: str) -> None:
    print(f"test image: {message}", file=sys.stderr, flush=True)


def ensure_built(
    folder: Path, complete: Callable[[], bool], build: Callable[[Path], Path], what: str
) -> None:
    """Build into a temporary folder beside `folder` and rename it into place, once: a second
    caller waits on the lock and reuses the result. build(work) returns the finished folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f"{folder.name}.lock"):
        if complete():
            return
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".build-{folder.name}-", dir=folder.parent))
        try:
            built = build(work)
            shutil.rmtree(folder, ignore_errors=True)
            built.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        say(f"built the {what} {folder} in {time.monotonic() - started:.0f} s")


def build_rootfs(rootfs: Path, work: Path, packages: Iterable[str]) -> None:
    """debootstrap with `packages`, the host's node, pm2 and the shared configuration."""
    included = ",".join(packages)
    debs = deb_cache()
    debs.mkdir(parents=True, exist_ok=True)
    say(f"debootstrap {SUITE} from {MIRROR} with {included}")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={debs}",
            f"--include={included}",
            SUITE,
            str(rootfs),
            MIRROR,
        ],
        timeout=1800,
    )
    _install_host_nodejs(rootfs, work)
    say(f"npm install -g {PM2_SPEC} into the image's /usr/local (host npm)")
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


def _install_host_nodejs(rootfs: Path, work: Path) -> None:
    """The host's nodejs (NodeSource's node_20 here, what labctl's user-data installs) as a .deb
    (gzip -1: dpkg-deb's default xz takes minutes on one busy core for an unpacked-once file)."""
    say(f"dpkg-repack nodejs {host_nodejs_version()} from the host, dpkg -i in the image")
    debs = work / "nodejs-deb"
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
    # cloud-init writes the guest's own interfaces into interfaces.d
    (etc / "network/interfaces").write_text(
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n"
    )
    (etc / "hostname").write_text("localhost\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    (etc / "machine-id").write_text("")  # each guest gets its own on first boot
    # debootstrap copied the build host's resolver here; a guest must never send it a query (it
    # is no test host) and, offline, each lookup waited for its timeouts (apt-get update took a
    # minute). Nothing listens at this address in a guest: lookups fail at once, as in a
    # simulated VM. A DHCP server that names a resolver (LXD's managed bridge) replaces it.
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
    # As on Ubuntu's cloud images; cloud-init's locale module then has nothing to generate
    # (Debian's locale-gen ignores the locale cloud-init passes, so en_US.UTF-8 would fail).
    (etc / "default/locale").write_text("LANG=C.UTF-8\n")
    for unit in MASKED_UNITS:
        link = etc / "systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for cache in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        cache.unlink()  # the package lists stay: cloud-init's `apt-get install` needs them


def write_recipe(out: Path, recipe: str, packages: Iterable[str]) -> None:
    """recipe.json beside the built image: what went into it, for a reader of the cache."""
    facts = {
        "hash": recipe,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": list(packages),
        "pm2": PM2_SPEC,
        "nodejs": host_nodejs_version(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "recipe.json").write_text(json.dumps(facts, indent=2) + "\n")


def build_main(ensure: Callable[[], Path]) -> int:
    """The `python -m` entry of an image builder: ensure() builds or finds the image folder."""
    os.umask(0o022)
    try:
        folder = ensure()
    except (RuntimeError, OSError) as exc:
        say(str(exc))
        return 1
    say(f"ready: {folder} (recipe {folder.name})")
    return 0
