"""The only changes made to labctl's user-data before a real VM gets it (issue 10, point 3).

The test VMs have no route out, so nothing can be downloaded; the packages labctl asks for are
already in the image (tests/vmimage). Each substitution is applied to the text itself, must match
exactly as labctl renders it, and is recorded, so tests can assert that nothing else changed.
"""

from __future__ import annotations

import re
from typing import Final

#: (name, what labctl renders, what the VM gets)
PACKAGE_UPDATE: Final = ("package_update", "package_update: true\n", "package_update: false\n")
# The NodeSource `apt:` block (a top-level key: everything up to the next top-level key).
_APT_BLOCK: Final = re.compile(r"^apt:\n(?:[ ].*\n|\n)*", re.MULTILINE)


def substitute(user_data: str) -> tuple[str, list[str]]:
    """(the text a VM gets, the names of the substitutions applied)."""
    applied: list[str] = []
    name, before, after = PACKAGE_UPDATE
    lines = user_data.splitlines(keepends=True)
    if lines.count(before) == 1:
        lines[lines.index(before)] = after
        applied.append(name)
    text = "".join(lines)
    blocks = _APT_BLOCK.findall(text)
    if len(blocks) == 1 and "nodesource" in blocks[0]:
        text = text.replace(blocks[0], "", 1)
        applied.append("apt.sources.nodesource")
    return text, applied
