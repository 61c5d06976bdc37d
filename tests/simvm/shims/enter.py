#!/usr/bin/python3
"""Enter a simulated VM's filesystem view, drop to the user and exec a command.

Runs as root as `ip netns exec NS unshare --mount --uts --propagation private
/usr/bin/python3 enter.py VIEW_JSON USER [KEY=VALUE | -KEY]... -- ARGV...`.
The mounts made here die with the namespace, so the host mount table is never touched.
Stdlib only, Python >= 3.10 (it runs under the host's /usr/bin/python3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import pwd
import socket
import sys

MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _mount(src: str, dst: str, fstype: str | None = None, flags: int = MS_BIND | MS_REC) -> None:
    rc = _libc.mount(src.encode(), dst.encode(), fstype.encode() if fstype else None, flags, None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} -> {dst}: {os.strerror(err)}")


def _graft(ancestor: str) -> None:
    """Make `ancestor` writable-for-new-entries without touching the host.

    Mount a tmpfs over it and bind every original entry back; new children created
    afterwards (e.g. /usr/local/lib/labctl as a mount point) exist only in this view.
    """
    fd = os.open(ancestor, os.O_PATH | os.O_DIRECTORY)
    names = os.listdir(ancestor)
    st = os.stat(ancestor)
    _mount("tmpfs", ancestor, "tmpfs", 0)
    os.chmod(ancestor, st.st_mode & 0o7777)
    for name in names:
        child = os.path.join(ancestor, name)
        cst = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if os.path.islink(f"/proc/self/fd/{fd}/{name}"):
            os.symlink(os.readlink(name, dir_fd=fd), child)
            continue
        cfd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
        if os.path.isdir(f"/proc/self/fd/{cfd}"):
            os.mkdir(child, cst.st_mode & 0o7777)
        else:
            os.close(os.open(child, os.O_CREAT | os.O_WRONLY, 0o600))
        _mount(f"/proc/self/fd/{cfd}", child)
        os.close(cfd)
    os.close(fd)


def _ensure_target(dst: str, is_dir: bool, private: list[str]) -> None:
    if os.path.lexists(dst):
        return
    ancestor = os.path.dirname(dst)
    while not os.path.isdir(ancestor):
        ancestor = os.path.dirname(ancestor)
    inside_private = any(ancestor == p or ancestor.startswith(p + "/") for p in private)
    if not inside_private:
        _graft(ancestor)
    if is_dir:
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.close(os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644))


def setup_view(view: dict[str, object]) -> None:
    binds = [(str(s), str(d)) for s, d in view["binds"]]  # type: ignore[attr-defined]
    # Open every source first: later binds may hide them (state dir under /tmp or /home).
    fds = [(os.open(src, os.O_PATH), src, dst) for src, dst in binds]
    private: list[str] = []
    for fd, _src, dst in fds:
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        _ensure_target(dst, is_dir, private)
        _mount(f"/proc/self/fd/{fd}", dst)
        os.close(fd)
        if is_dir:
            private.append(dst)
    socket.sethostname(str(view["hostname"]))


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    view_path, user, env_args, cmd = argv[1], argv[2], argv[3:sep], argv[sep + 1 :]
    with open(view_path) as fh:
        view = json.load(fh)
    setup_view(view)
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        sys.stderr.write(f"simvm: user {user!r} does not exist in VM {view['hostname']}\n")
        return 255
    env = {
        "HOME": pw.pw_dir,
        "USER": pw.pw_name,
        "LOGNAME": pw.pw_name,
        "SHELL": pw.pw_shell or "/bin/sh",
        "PATH": LOGIN_PATH,
        "LANG": "C.UTF-8",
        "SIMVM_NETNS": str(view["netns"]),
    }
    for item in env_args:
        if item.startswith("-"):
            env.pop(item[1:], None)
        else:
            key, _, value = item.partition("=")
            env[key] = value
    if pw.pw_uid != 0:
        os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    os.umask(0o022)
    try:
        os.chdir(pw.pw_dir)
    except OSError:
        os.chdir("/")
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as exc:
        sys.stderr.write(f"simvm: cannot execute {cmd[0]}: {exc.strerror}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126


if __name__ == "__main__":
    sys.exit(main(sys.argv))
