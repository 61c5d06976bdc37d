"""The private filesystem view of one simulated VM.

Every process in a VM runs in its own mount namespace in which the private directories
below are bind-mounted over the host paths (see shims/enter.py). The host's files are
never written: everything a guest may change lives under `<state_dir>/root`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from ._proc import run, write_json

SHIM_DIR: Final[Path] = Path(__file__).resolve().parent / "shims"

# Guest paths that get a private, writable directory (bound in this order).
# /etc is a full private copy of the host's /etc (so sed -i, useradd, rename all work);
# the others start empty, as on a fresh cloud image.
PRIVATE_DIRS: Final[tuple[str, ...]] = (
    "/etc",
    "/run",
    "/home",
    "/root",
    "/tmp",
    "/var/tmp",
    "/var/log",
    "/var/lib/nginx",
    "/var/lib/cloud",
    "/var/www",
    "/srv",
    "/opt",
    "/usr/local/sbin",
    "/usr/local/lib/labctl",
)
# Host binaries replaced inside the VM by a shim (README: "Shims").
SHIM_FILES: Final[dict[str, str]] = {
    "/usr/bin/systemctl": "systemctl.py",
    "/usr/bin/cloud-init": "cloud_init.py",
}
# Plumbing visible inside the VM under /run/simvm (recreated on every exec).
GUEST_LIB: Final[str] = "/run/simvm/lib"
GUEST_SEED: Final[str] = "/run/simvm/seed"
_STICKY: Final[frozenset[str]] = frozenset({"/tmp", "/var/tmp"})

# Host files copied at create() so "installing" a package can seed pristine config.
_SEEDS: Final[tuple[str, ...]] = ("/etc/nginx", "/var/www/html")


def private_path(state_dir: Path, guest_path: str) -> Path:
    """Host path that backs guest_path (guest_path must lie in a PRIVATE_DIRS entry)."""
    return state_dir / "root" / guest_path.lstrip("/")


def build(state_dir: Path, hostname: str, netns: str) -> None:
    """Create the private root for a new VM (idempotent: skips what exists)."""
    root = state_dir / "root"
    for guest in PRIVATE_DIRS:
        target = private_path(state_dir, guest)
        if guest == "/etc":
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                run(["cp", "-a", "/etc", str(target)], timeout=120)
                _reset_etc(target, hostname)
            continue
        target.mkdir(parents=True, exist_ok=True)
        mode = 0o1777 if guest in _STICKY else 0o700 if guest == "/root" else 0o755
        target.chmod(mode)
    seed = state_dir / "seed"
    for host_path in _SEEDS:
        dest = seed / host_path.lstrip("/")
        if Path(host_path).is_dir() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            run(["cp", "-a", host_path, str(dest)], timeout=60)
    seed.mkdir(exist_ok=True)
    reset_run(state_dir)
    binds = [[str(private_path(state_dir, g)), g] for g in PRIVATE_DIRS]
    binds += [[str(SHIM_DIR / shim), guest] for guest, shim in SHIM_FILES.items()]
    binds += [[str(SHIM_DIR), GUEST_LIB], [str(seed), GUEST_SEED]]
    write_json(state_dir / "view.json", {"hostname": hostname, "netns": netns, "binds": binds})
    root.chmod(0o755)


def _reset_etc(etc: Path, hostname: str) -> None:
    """Turn the host /etc copy into a fresh-image /etc: no nginx, no enabled units."""
    for sub in ("nginx", "labctl", "netns", "simvm"):
        shutil.rmtree(etc / sub, ignore_errors=True)
    systemd = etc / "systemd" / "system"
    shutil.rmtree(systemd, ignore_errors=True)
    (systemd / "multi-user.target.wants").mkdir(parents=True)
    (etc / "simvm").mkdir()
    (etc / "simvm" / "available-units").write_text("")
    (etc / "hostname").unlink(missing_ok=True)
    (etc / "hostname").write_text(f"{hostname}\n")
    # Ubuntu's systemd-resolved stub address. Nothing listens on it in the VM, so lookups
    # fail at once instead of timing out (pm2's first-run version check does one).
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
    (etc / "hosts").unlink(missing_ok=True)
    (etc / "hosts").write_text(
        f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n\n"
        "# The following lines are desirable for IPv6 capable hosts\n"
        "::1 ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n"
        "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
    )


def reset_run(state_dir: Path) -> None:
    """Empty /run and /tmp like a power cycle does (tmpfs /run; tmpfiles.d cleans /tmp)."""
    for guest, mode in (("/run", 0o755), ("/tmp", 0o1777)):
        path = private_path(state_dir, guest)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        path.chmod(mode)
    run_dir = private_path(state_dir, "/run")
    (run_dir / "lock").mkdir(mode=0o1777)
    (run_dir / "lock").chmod(0o1777)
    # What cloud-init's systemd generator leaves on every boot of an enabled image.
    (run_dir / "cloud-init").mkdir()
    (run_dir / "cloud-init" / "enabled").write_text("")
