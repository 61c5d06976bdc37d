"""Run a command with FILE bound over /etc/hosts, inside the caller's private mount namespace.

Used as: unshare --mount --propagation private python with_hosts.py FILE -- CMD...
so the real resolver (nsswitch `files`) sees what labctl writes, and the host's /etc/hosts is
never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> None:
    hosts, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: with_hosts.py FILE -- CMD...")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True, timeout=30)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
