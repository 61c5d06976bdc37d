"""The static files shipped to the VMs (cloud-init/ folder), read once so rendering stays pure.

This is the only impure part of rendering: `read_assets()` reads files; everything in
every other module of labctl/render/ is a function of (lab, vm, assets, archive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from labctl.errors import LabctlError

ARMORED_KEY_HEADER: Final = "-----BEGIN PGP PUBLIC KEY BLOCK-----"

# Assets field -> file name inside the cloud-init/ folder.
ASSET_FILES: Final = {
    "nodesource_key": "nodesource-repo.gpg.key",
    "hello_server": "hello/server.js",
    "provision_app": "provision-app.sh",
    "lb_apply": "lb_apply.py",
    "vm_status": "vm_status.py",
    "status_agent": "status_agent.py",
}


@dataclass(frozen=True)
class Assets:
    """Texts of the static files; see cloud-init/ for what each does on the VM."""

    nodesource_key: str  # armored NodeSource apt key, fingerprint 6F71F525...1BE0B4
    hello_server: str  # builtin hello app (Node, no dependencies)
    provision_app: str  # app VM provisioning script run from runcmd
    lb_apply: str  # /usr/local/sbin/labctl-lb-apply
    vm_status: str  # /usr/local/sbin/labctl-vm-status
    status_agent: str  # /usr/local/sbin/labctl-status-agent


def asset_dirs() -> list[Path]:
    """Where the cloud-init/ folder may be: inside the installed package, then the repo root."""
    here = Path(__file__).resolve().parent
    package = here.parent  # labctl/ (this module is labctl/render/assets.py)
    return [package / "cloud-init", package.parent / "cloud-init"]


def read_assets(directory: Path | None = None) -> Assets:
    """Read every static file; raise LabctlError naming what is missing (a broken install)."""
    candidates = [directory] if directory is not None else asset_dirs()
    base = next((d for d in candidates if (d / ASSET_FILES["provision_app"]).is_file()), None)
    if base is None:
        looked = ", ".join(str(d) for d in candidates)
        raise LabctlError(
            f"labctl's cloud-init files are missing (looked in {looked})", hint="reinstall labctl"
        )
    texts: dict[str, str] = {}
    for field, name in ASSET_FILES.items():
        try:
            texts[field] = (base / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LabctlError(
                f"cannot read labctl's {base / name}: {exc}", hint="reinstall labctl"
            ) from None
    if not texts["nodesource_key"].lstrip().startswith(ARMORED_KEY_HEADER):
        raise LabctlError(f"{base / ASSET_FILES['nodesource_key']} is not an armored PGP key")
    return Assets(**texts)
