"""Static knowledge: images, name/size rules, petnames, runtime-info numbers."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from .errors import unhandled, usage

# QRegularExpression::anchoredPattern("^([a-zA-Z]|[a-zA-Z][a-zA-Z0-9\\-]*[a-zA-Z0-9])")
NAME_RE = re.compile(r"[a-zA-Z]|[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]")
# src/utils/memory_size.cpp (case-insensitive)
SIZE_RE = re.compile(r"\s*(\d+)(?:\.(\d+)(?=[KMG]))?(?:([KMG])(?:i?B)?|B)?\s*", re.IGNORECASE)
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

KiB, MiB, GiB = 1024, 1024**2, 1024**3
MIN_MEMORY = 128 * MiB
MIN_DISK = 512 * MiB
DEFAULT_CPUS, DEFAULT_MEMORY, DEFAULT_DISK = 1, "1G", "5G"
DEFAULT_IMAGE = (
    "24.04"  # simplification: multipass resolves "default" remotely (docs/engines/multipass.md)
)


def valid_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None


def parse_size(text: str) -> int:
    """Bytes for a size string; malformed values throw (top_catch_all, exit 1)."""
    match = SIZE_RE.fullmatch(text)
    if match is None:
        raise unhandled(
            f"{text} is not a valid memory size - need a non-negative integer (in base 10) or a "
            "decimal followed by K, M, or G (e.g. 1234B, 42MiB, 0.5G)"
        )
    whole, frac, unit = match.group(1), match.group(2), (match.group(3) or "").upper()
    value = int(whole) * UNITS[unit]
    if frac:
        value += int(int(frac) * UNITS[unit] / 10 ** len(frac))
    return value


def parse_cpus(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise usage(f"Error: invalid CPU count '{text}', need a positive integer value.")
    return int(text)


@dataclass(frozen=True)
class Image:
    version: str  # "24.04"
    release: str  # image_release, e.g. "24.04 LTS"
    pretty: str  # guest PRETTY_NAME
    aliases: tuple[str, ...]

    @property
    def list_release(self) -> str:
        return f"Ubuntu {self.release}"

    @property
    def image_hash(self) -> str:
        return hashlib.sha256(f"ubuntu-{self.version}-server-cloudimg".encode()).hexdigest()


IMAGES = (
    Image("24.04", "24.04 LTS", "Ubuntu 24.04.3 LTS", ("noble", "n", "lts", "default")),
    Image("22.04", "22.04 LTS", "Ubuntu 22.04.5 LTS", ("jammy", "j")),
    Image("20.04", "20.04 LTS", "Ubuntu 20.04.6 LTS", ("focal", "f")),
    Image("25.04", "25.04", "Ubuntu 25.04", ("plucky", "p")),
    Image("25.10", "25.10", "Ubuntu 25.10", ("questing", "q")),
)
CUSTOM = Image("custom", "", "", ())


def find_image(spec: str) -> tuple[Image, str, str]:
    """Resolve ``[remote:]image``; returns (image, remote, name). Raises exit-1 usage errors."""
    if spec.startswith(("http://", "https://", "file://")):
        return CUSTOM, "", spec
    parts = spec.split(":")
    if len(parts) > 2 or any(not p for p in parts):
        raise usage("Invalid remote and source image name supplied")
    remote, name = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    for image in IMAGES:
        if name == image.version or name in image.aliases:
            return image, remote, name
    return CUSTOM, remote, name  # the daemon rejects it (see commands)


def lookup_image(version: str) -> Image:
    for image in IMAGES:
        if image.version == version or version in image.aliases:
            return image
    return CUSTOM


_ADJ = ("relishing", "brave", "calm", "eager", "fancy", "gentle", "jolly", "lively", "proud")
_NOUN = ("lionfish", "otter", "heron", "badger", "marten", "ibex", "wombat", "gecko", "oriole")


def petname() -> str:
    return f"{random.choice(_ADJ)}-{random.choice(_NOUN)}"


def guest_memory_total(requested: int) -> int:
    """Guest-visible memory: 1G -> 1040195584 as in the docs example (docs/engines/multipass.md)."""
    return max(requested - 33546240, requested // 2)


def guest_disk_total(requested: int) -> int:
    """Guest-visible disk: 5G -> 5136297984 as in the docs example (docs/engines/multipass.md)."""
    return max(requested - 232411136, requested // 2)
