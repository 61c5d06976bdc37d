"""The rules of single lab.yaml values: names, sizes, durations, domains, images, patterns.

Pure functions and regexes the lab model (model.py) validates its fields with, and that the rest of
labctl uses to read those values (`size_in_bytes`, `parse_duration`). Imports nothing from labctl.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema

# Multipass's instance-name rule (LXD's is the same or looser): letters, digits, hyphens; starts with a letter,
# ends with a letter or digit. A single letter is valid. Validators use `fullmatch`: with `match`,
# `$` also matches before a trailing newline, and "app1\n" would reach nginx and the hosts file.
NAME_RE: Final = re.compile(r"^(?:[a-zA-Z]|[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9])$")
# Multipass's size syntax (its src/utils/memory_size.cpp), binary units.
# re.ASCII: in Unicode mode `\d` takes full-width digits (int() reads them) and re.I lets the
# Kelvin sign U+212A match `K`; a size or duration is ASCII or it is refused.
SIZE_RE: Final = re.compile(
    r"^\s*(\d+)(?:\.(\d+)(?=[KMG]))?(?:([KMG])(?:i?B)?|B)?\s*$", re.I | re.ASCII
)
DURATION_RE: Final = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$", re.ASCII)
HOSTNAME_LABEL_RE: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PM2_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
GIT_REF_RE: Final = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/+-]{1,200}$")
IMAGE_RE: Final = re.compile(r"^(?:(?:release|daily):)?[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
# An LXD image reference: `remote:alias` (`ubuntu:24.04`, `images:debian/12/cloud`, `local:img`).
LXD_IMAGE_RE: Final = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}:[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"
)
# What LXD accepts as a remote, project or profile name, kept to characters that need no quoting.
LXD_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_INSTANCE_NAME: Final = 63  # a hostname label; cloud-init sets the VM hostname from it
MAX_STUDENTS: Final = 500
STUDENT_FIELD: Final = "{student}"  # replaced in class.domain / class.aliases
CLASS_TEMPLATE_DOMAIN: Final = "class.invalid"  # a class lab's own domain: never served

_UNITS: Final = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# More than any machine or disk a lab runs on, and far below what Multipass's 64-bit sizes hold.
MAX_SIZE_BYTES: Final = 1024**5
MAX_SIZE_CHARACTERS: Final = 40  # `1048576.000…G`: the digits int() reads stay few
MAX_DURATION: Final = 7 * 24 * 3600  # seconds


def size_in_bytes(text: str) -> int:
    """Bytes for a Multipass size string (`1G`, `1.5G`, `512MiB`, `2048`)."""
    match = SIZE_RE.match(text)
    if not match:
        raise ValueError(text)
    whole, fraction, unit = match.group(1), match.group(2) or "", (match.group(3) or "").upper()
    # The whole part in integers: a float of `99…9.5G` would be infinite, and int(inf) raises.
    part = int(float(f"0.{fraction}") * _UNITS[unit]) if fraction else 0
    return int(whole) * _UNITS[unit] + part


def _size(minimum: str) -> Any:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f'expected a size like "2G", got {value!r}')
        text = str(value).strip()
        if not SIZE_RE.match(text) or len(text) > MAX_SIZE_CHARACTERS:
            raise ValueError(f'expected a size like "2G" or "512M", got {_cut(text)!r}')
        if size_in_bytes(text) < size_in_bytes(minimum):
            raise ValueError(f"{text} is below Multipass's minimum of {minimum}")
        if size_in_bytes(text) > MAX_SIZE_BYTES:
            raise ValueError(f"{text} is more than {MAX_SIZE_BYTES // 1024**3}G (1 PiB)")
        return text

    return check


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `2m`, `1m30s`, `1h`."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "30s" or "5m", got {value!r}')
    if isinstance(value, int | float):
        # an int too big for a float (`float(10**400)` raises) is out of range like infinity
        seconds = float(value) if abs(value) <= MAX_DURATION * 2 else math.inf
    elif isinstance(value, str) and (match := DURATION_RE.match(value.strip())) and value.strip():
        hours, minutes, secs = match.groups()
        whole = int(hours or 0) * 3600 + int(minutes or 0) * 60  # `99…9h`: an int, never a float
        seconds = math.inf if whole > MAX_DURATION else whole + float(secs or 0)
    else:
        raise ValueError(f'expected a duration like "30s" or "5m", got {_cut(value)!r}')
    # At least 1 s, as the message says (YAML has .nan; nginx and pm2 limits are whole seconds)
    if not math.isfinite(seconds) or seconds < 1 or seconds > MAX_DURATION:
        raise ValueError(f"duration must be between 1s and 7 days, got {_cut(value)!r}")
    return seconds


def _cut(value: Any) -> Any:
    # a value quoted in a message: a 200 kB string would make a 200 kB message line
    return value[:40] + "…" if isinstance(value, str) and len(value) > 40 else value


def _name(value: Any) -> str:
    if isinstance(value, str) and len(value) > MAX_INSTANCE_NAME:  # a name is part of a hostname
        raise ValueError(
            f"a name of {len(value)} characters ({value[:20]!r}…); at most {MAX_INSTANCE_NAME} "
            "(names become part of hostnames)"
        )
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use letters, digits and hyphens, start with a letter "
            "and end with a letter or digit (Multipass's instance-name rule)"
        )
    return value


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f'expected a domain name like "alvin.xyz", got {value!r}')
    if not value.isascii():  # before lower(): the Kelvin sign U+212A lower-cases to "k"
        odd = next(c for c in value if not c.isascii())
        raise ValueError(
            f"{value!r} is not a valid domain name: U+{ord(odd):04X} is not ASCII (only ASCII "
            "letters, digits, hyphens and dots; write an internationalized name in its xn-- form)"
        )
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(HOSTNAME_LABEL_RE.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f'{value!r} is not a valid domain name (like "alvin.xyz")')
    reserved = _reserved_name(name)
    if reserved:
        raise ValueError(f'{value!r} {reserved}; pick a name of your own (like "alvin.xyz")')
    return name


def _reserved_name(name: str) -> str | None:
    # The host's own names (Ubuntu's /etc/hosts lists them): a lab entry for one of them would
    # point the machine's loopback or IPv6 names at a lab VM.
    if name in ("localhost", "localhost.localdomain"):
        return "is this machine's loopback name (RFC 6761)"
    if name.startswith("ip6-"):
        return "is one of the system's IPv6 names (ip6-localhost, ip6-allnodes...)"
    return None


def _image(value: Any) -> str:
    if isinstance(value, float) and (
        not math.isfinite(value) or float(f"{value:.2f}") != value
    ):  # `image: 24.041` would become "24.04"
        raise ValueError(f'{value!r} is not an Ubuntu release number; quote it (like "24.04")')
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value:.2f}" if isinstance(value, float) else str(value)  # `image: 24.04` in YAML
    if not isinstance(value, str):
        raise ValueError(f'expected an image like "24.04" or "noble", got {value!r}')
    if value.startswith(("http://", "https://", "file://")) and not re.search(
        r"[\s\x00-\x1f\x7f]", value
    ):  # a NUL would reach stat() and multipass's argv
        return value
    if not IMAGE_RE.fullmatch(value) and not LXD_IMAGE_RE.fullmatch(value):
        raise ValueError(
            f'{value!r} is not an image: a Multipass image (like "24.04", "noble", "lts") or an '
            'LXD image reference (like "ubuntu:24.04", "images:debian/12/cloud")'
        )
    return value


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return check


_DURATION_SCHEMA: Final = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": DURATION_RE.pattern},
        ]
    }
)
Name = Annotated[
    str,
    BeforeValidator(_name),
    WithJsonSchema({"type": "string", "pattern": NAME_RE.pattern, "maxLength": MAX_INSTANCE_NAME}),
]
Domain = Annotated[
    str, BeforeValidator(_domain), WithJsonSchema({"type": "string", "format": "hostname"})
]
Duration = Annotated[float, BeforeValidator(parse_duration), _DURATION_SCHEMA]
_SIZE_SCHEMA: Final = {
    "anyOf": [{"type": "string", "pattern": SIZE_RE.pattern}, {"type": "integer"}]
}
Memory = Annotated[str, BeforeValidator(_size("128M")), WithJsonSchema(_SIZE_SCHEMA)]
Disk = Annotated[str, BeforeValidator(_size("512M")), WithJsonSchema(_SIZE_SCHEMA)]
Image = Annotated[str, BeforeValidator(_image), WithJsonSchema({"type": "string"})]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value
