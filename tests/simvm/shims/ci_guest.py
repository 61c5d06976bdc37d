#!/usr/bin/python3
"""In-VM cloud-init engine for simvm: runs as root inside the VM view, once per instance.

Input: /var/lib/cloud/instance/simvm-cloud-config.json (parsed on the host by cloudinit.py).
Applies the modules in real cloud-init order and writes what real cloud-init writes:
/var/log/cloud-init-output.log, /var/lib/cloud/data/{status,result}.json (linked from
/run/cloud-init/), /var/lib/cloud/instance/scripts/runcmd and .../boot-finished.
Stdlib only, Python >= 3.10 (runs under the host's /usr/bin/python3).
"""

from __future__ import annotations

import base64
import grp
import gzip
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

VERSION = "26.1"
DATASOURCE = "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]"
CLOUD = "/var/lib/cloud"
INSTANCE = f"{CLOUD}/instance"
OUTPUT_LOG = "/var/log/cloud-init-output.log"
DEBUG_LOG = "/var/log/cloud-init.log"
SEED = "/run/simvm/seed"
STAGES = ("init-local", "init", "modules-config", "modules-final")
DEFAULT_USER: dict[str, Any] = {
    "name": "ubuntu",
    "gecos": "Ubuntu",
    "lock_passwd": True,
    "groups": ["adm", "cdrom", "dip", "lxd", "sudo"],
    "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
    "shell": "/bin/bash",
}
DEFAULT_FINAL = (
    "Cloud-init v. $version finished at $timestamp. Datasource $datasource.  Up $uptime seconds"
)
SERVICE_UNITS = {"nginx": ["nginx.service"], "nginx-core": ["nginx.service"]}


def now_rfc2822() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())


class Engine:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.cfg: dict[str, Any] = spec["config"]
        self.boot_time = float(spec["boot_time"])
        self.v1: dict[str, Any] = {"datasource": None, "stage": None}
        for stage in STAGES:
            self.v1[stage] = {
                "errors": [],
                "finished": None,
                "recoverable_errors": {},
                "start": None,
            }
        os.makedirs("/var/log", exist_ok=True)
        self.out_fd = os.open(OUTPUT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        for path in (OUTPUT_LOG, DEBUG_LOG):  # root:adm 0640 as on Ubuntu; ubuntu is in adm
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
            os.chown(path, 0, grp.getgrnam("adm").gr_gid if group_exists("adm") else 0)
        self.default_user: str | None = None

    # -- logging / status -------------------------------------------------------------
    def uptime(self) -> str:
        return f"{max(time.time() - self.boot_time, 0.01):.2f}"

    def out(self, text: str) -> None:
        os.write(self.out_fd, (text.rstrip("\n") + "\n").encode())

    def log(self, level: str, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
        with open(DEBUG_LOG, "a") as fh:
            fh.write(f"{stamp} - simvm[{level}]: {msg}\n")
        if level in ("WARNING", "ERROR", "DEPRECATED"):
            self.out(f"{stamp} - simvm[{level}]: {msg}")

    def recoverable(self, stage: str, level: str, msg: str) -> None:
        self.v1[stage]["recoverable_errors"].setdefault(level, []).append(msg)
        self.log(level, msg)

    def write_status(self) -> None:
        os.makedirs(f"{CLOUD}/data", exist_ok=True)
        os.makedirs("/run/cloud-init", exist_ok=True)
        write_atomic(f"{CLOUD}/data/status.json", json.dumps({"v1": self.v1}, indent=1))
        link("/run/cloud-init/status.json", f"{CLOUD}/data/status.json")

    def write_result(self) -> None:
        errors = [e for s in STAGES for e in self.v1[s]["errors"]]
        rec: dict[str, list[str]] = {}
        for stage in STAGES:
            for level, msgs in self.v1[stage]["recoverable_errors"].items():
                rec.setdefault(level, []).extend(msgs)
        body = {"v1": {"datasource": DATASOURCE, "errors": errors, "recoverable_errors": rec}}
        write_atomic(f"{CLOUD}/data/result.json", json.dumps(body, indent=1))
        link("/run/cloud-init/result.json", f"{CLOUD}/data/result.json")

    def stage(self, stage: str, label: str, modules: list[tuple[str, Callable[[], None]]]) -> None:
        self.v1["stage"] = stage
        self.v1[stage]["start"] = time.time()
        self.write_status()
        if label:
            self.out(
                f"Cloud-init v. {VERSION} running '{label}' at {now_rfc2822()}. "
                f"Up {self.uptime()} seconds."
            )
        for name, func in modules:
            try:
                func()
            except Exception as exc:  # a failing module never stops the boot
                self.v1[stage]["errors"].append(f"('{name}', {exc!r})")
                self.log("WARNING", f"Running module {name} failed")
                with open(DEBUG_LOG, "a") as fh:
                    fh.write(traceback.format_exc())
        self.v1[stage]["finished"] = time.time()
        self.v1["stage"] = None
        self.write_status()

    # -- the run ------------------------------------------------------------------------
    def run(self) -> None:
        self.stage("init-local", "", [])
        self.v1["datasource"] = DATASOURCE
        for msg in self.spec.get("warnings", []):
            self.recoverable("init", "WARNING", msg)
        for msg in self.spec.get("deprecations", []):
            self.recoverable("init", "DEPRECATED", msg)
        self.stage(
            "init",
            "init",
            [
                ("bootcmd", self.bootcmd),
                ("write_files", lambda: self.write_files(deferred=False)),
                ("users_groups", self.users_groups),
                ("ssh", self.ssh_keys),
            ],
        )
        self.stage(
            "modules-config",
            "modules:config",
            [
                ("apt_configure", self.apt_configure),
                ("runcmd", self.runcmd),
                ("simvm_unsupported", self.unsupported),
            ],
        )
        self.stage(
            "modules-final",
            "modules:final",
            [
                ("package_update_upgrade_install", self.packages),
                ("write_files_deferred", lambda: self.write_files(deferred=True)),
                ("scripts_user", self.scripts_user),
                ("final_message", self.final_message),
            ],
        )

    def finish(self) -> None:
        """Always called, even after a crash: result.json + boot-finished, like cloud-init."""
        self.write_result()
        self.write_status()
        os.makedirs(INSTANCE, exist_ok=True)
        write_atomic(
            f"{INSTANCE}/boot-finished", f"{self.uptime()} - {now_rfc2822()} - v. {VERSION}\n"
        )

    # -- modules --------------------------------------------------------------------------
    def bootcmd(self) -> None:
        if "bootcmd" not in self.cfg:
            return
        path = f"{INSTANCE}/bootcmd"
        write_atomic(path, shellify(self.cfg["bootcmd"]), 0o700)
        if self.sh([path]) != 0:
            raise RuntimeError("Failed to run bootcmd module bootcmd")

    def write_files(self, *, deferred: bool) -> None:
        entries = self.cfg.get("write_files") or []
        for idx, entry in enumerate(entries):
            if bool(entry.get("defer", False)) != deferred:
                continue
            if not entry.get("path"):
                self.log(
                    "WARNING",
                    f"No path provided to write for entry {idx + 1} in module write_files",
                )
                continue
            path = os.path.abspath(entry["path"])
            data = decode_content(entry.get("content", ""), entry.get("encoding"))
            mode = self.decode_perms(entry.get("permissions"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "ab" if entry.get("append") else "wb") as fh:
                fh.write(data)
            os.chmod(path, mode)
            owner = str(entry.get("owner", "root:root"))
            user, _, group = owner.partition(":")
            uid = pwd.getpwnam(user).pw_uid if user else -1
            gid = grp.getgrnam(group).gr_gid if group else -1
            os.chown(path, uid, gid)

    def decode_perms(self, perm: Any) -> int:
        if perm is None:
            return 0o644
        if isinstance(perm, (int, float)):
            return int(perm)
        try:
            return int(str(perm), 8)
        except ValueError:
            self.log("WARNING", f"Undecodable permissions {perm}, returning default 0o644")
            return 0o644

    def users_groups(self) -> None:
        for group in self.cfg.get("groups") or []:
            if isinstance(group, dict):
                for name, members in group.items():
                    ensure_group(name, members if isinstance(members, list) else [members])
            else:
                for name in str(group).split(","):
                    ensure_group(name.strip(), [])
        users = self.cfg.get("users", ["default"])
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",")]
        if isinstance(users, dict):
            users = [dict(v or {}, name=k) for k, v in users.items()]
        sudo_rules: list[tuple[str, list[str]]] = []
        spec: dict[str, Any]
        for item in users or []:
            if item == "default" or (isinstance(item, dict) and item.get("name") == "default"):
                spec = dict(DEFAULT_USER)
                override = self.cfg.get("user")
                spec.update({"name": override} if isinstance(override, str) else override or {})
                self.default_user = str(spec["name"])
            elif isinstance(item, str):
                spec = {"name": item}
            else:
                spec = {str(k).replace("-", "_"): v for k, v in item.items()}
            create_user(spec, self.log)
            sudo = spec.get("sudo")
            if sudo:
                sudo_rules.append((str(spec["name"]), [sudo] if isinstance(sudo, str) else sudo))
            keys = spec.get("ssh_authorized_keys") or []
            if keys:
                write_keys(str(spec["name"]), keys)
        if sudo_rules:
            body = f"\n# Created by cloud-init v. {VERSION} on {now_rfc2822()}\n"
            for name, rules in sudo_rules:
                body += f"\n# User rules for {name}\n" + "".join(f"{name} {r}\n" for r in rules)
            os.makedirs("/etc/sudoers.d", exist_ok=True)
            write_atomic("/etc/sudoers.d/90-cloud-init-users", body, 0o440)

    def ssh_keys(self) -> None:
        keys = self.cfg.get("ssh_authorized_keys") or []
        if keys and self.default_user:
            write_keys(self.default_user, keys)

    def apt_configure(self) -> None:
        if self.cfg.get("apt"):
            self.out("simvm: apt sources/keys cannot be used offline; 'apt' config skipped")
            self.log("INFO", "apt_configure skipped: no network in the simulation")

    def unsupported(self) -> None:
        for key in self.spec.get("unsupported", []):
            self.log("INFO", f"simvm: top-level key {key!r} is valid but not simulated; ignored")

    def runcmd(self) -> None:
        if "runcmd" in self.cfg:
            os.makedirs(f"{INSTANCE}/scripts", exist_ok=True)
            write_atomic(f"{INSTANCE}/scripts/runcmd", shellify(self.cfg["runcmd"]), 0o700)

    def packages(self) -> None:
        if self.cfg.get("package_update") or self.cfg.get("apt_update"):
            self.out("simvm: package_update: offline simulation, 'apt-get update' skipped")
        if self.cfg.get("package_upgrade") or self.cfg.get("apt_upgrade"):
            self.out("simvm: package_upgrade: offline simulation, 'apt-get upgrade' skipped")
        names = []
        for item in self.cfg.get("packages") or []:
            names.append(str(item[0] if isinstance(item, list) else item))
        if not names:
            return
        missing = [n for n in names if not host_has_package(n)]
        if missing:
            for name in missing:
                self.out(f"E: Unable to locate package {name}")
            raise RuntimeError(
                f"Failed to install the following packages: {missing}. "
                "See associated package manager logs for more details."
            )
        for name in names:
            self.out(f"simvm: package {name} is installed on the host; simulating its installation")
            self.install(name)

    def install(self, name: str) -> None:
        units = list(SERVICE_UNITS.get(name, []))
        if name.startswith("nginx"):
            merge_tree(f"{SEED}/etc/nginx", "/etc/nginx")
            merge_tree(f"{SEED}/var/www/html", "/var/www/html")
            adm = grp.getgrnam("adm").gr_gid if group_exists("adm") else 0
            os.makedirs("/var/log/nginx", exist_ok=True)
            os.chown("/var/log/nginx", 0, adm)
            os.makedirs("/var/lib/nginx", exist_ok=True)
        proc = subprocess.run(
            ["dpkg", "-L", name], capture_output=True, text=True, timeout=30, check=False
        )
        for path in proc.stdout.splitlines():
            if "/systemd/system/" in path and path.endswith(".service") and "@" not in path:
                units.append(os.path.basename(path))
        with open("/etc/simvm/available-units", "a") as fh:
            fh.write("".join(f"{u}\n" for u in units))
        for unit in dict.fromkeys(units):  # Debian postinst: enable + start
            self.sh(["systemctl", "enable", unit])
            if self.sh(["systemctl", "start", unit]) != 0:
                raise RuntimeError(f"Sub-process /usr/bin/dpkg returned an error code (1) ({name})")

    def scripts_user(self) -> None:
        part = self.spec.get("script")
        scripts = f"{INSTANCE}/scripts"
        if part:
            os.makedirs(scripts, exist_ok=True)
            write_atomic(f"{scripts}/part-001", part, 0o700)
        if not os.path.isdir(scripts):
            return
        names = sorted(os.listdir(scripts))
        failed = [n for n in names if self.sh([os.path.join(scripts, n)]) != 0]
        if failed:
            self.log("WARNING", f"Failed to run module scripts_user (scripts in {scripts})")
            raise RuntimeError(
                f"Runparts: {len(failed)} failures ({','.join(failed)}) in {len(names)} attempted commands"
            )

    def final_message(self) -> None:
        text = str(self.cfg.get("final_message") or DEFAULT_FINAL)
        subs = {
            "uptime": self.uptime(),
            "timestamp": now_rfc2822(),
            "version": VERSION,
            "datasource": DATASOURCE,
        }
        for key, value in subs.items():
            for form in (f"${{{key}}}", f"${key}", f"${{{key.upper()}}}", f"${key.upper()}"):
                text = text.replace(form, value)
        self.out(text)

    def sh(self, argv: list[str]) -> int:
        """Run a command as cloud-final would: root, cwd /, output into the output log."""
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.out_fd,
                stderr=self.out_fd,
                cwd="/",
                timeout=3600,
                check=False,
            ).returncode
        except OSError as exc:
            self.out(f"{argv[0]}: {exc.strerror}")
            return 126


# -- helpers ------------------------------------------------------------------------------
def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    tmp = f"{path}.simvm-tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def link(path: str, target: str) -> None:
    if not os.path.islink(path):
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)


def shellify(items: Any) -> str:
    """cloudinit.util.shellify: strings verbatim, lists single-quoted word by word."""
    if isinstance(items, str):
        items = [items]
    content = "#!/bin/sh\n"
    for item in items:
        if isinstance(item, (list, tuple)):
            content += " ".join("'{}'".format(str(w).replace("'", "'\\''")) for w in item) + "\n"
        elif isinstance(item, str):
            content += item + "\n"
        else:
            raise TypeError(
                f"Unable to shellify type '{type(item).__name__}'. Expected list, string, tuple."
            )
    return content


def decode_content(content: Any, encoding: Any) -> bytes:
    enc = str(encoding or "text/plain").lower()
    data = content.encode() if isinstance(content, str) else bytes(content or b"")
    if enc in ("gz+base64", "gzip+base64", "gz+b64", "gzip+b64", "base64", "b64"):
        data = base64.b64decode(data)
    if enc.startswith(("gz", "gzip")):
        data = gzip.decompress(data)
    return data


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _rewrite(path: str, edit: Callable[[list[str]], list[str]]) -> None:
    with open(path) as fh:
        lines = fh.read().splitlines()
    st = os.stat(path)
    write_atomic(path, "\n".join(edit(lines)) + "\n", st.st_mode & 0o7777)
    os.chown(path, st.st_uid, st.st_gid)


def _free_id(path: str, start: int = 1000) -> int:
    with open(path) as fh:
        used = {int(line.split(":")[2]) for line in fh if line.count(":") >= 3}
    return next(i for i in range(start, 60000) if i not in used)


def ensure_group(name: str, members: list[str]) -> None:
    if not group_exists(name):
        gid = _free_id("/etc/group")
        _rewrite("/etc/group", lambda ls: [*ls, f"{name}:x:{gid}:"])
        if os.path.exists("/etc/gshadow"):
            _rewrite("/etc/gshadow", lambda ls: [*ls, f"{name}:!::"])
    for member in members:
        add_member(name, member)


def add_member(group: str, user: str) -> None:
    def edit(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            parts = line.split(":")
            if parts[0] == group:
                members = [m for m in parts[-1].split(",") if m]
                if user not in members:
                    parts[-1] = ",".join([*members, user])
            out.append(":".join(parts))
        return out

    _rewrite("/etc/group", edit)
    if os.path.exists("/etc/gshadow"):
        _rewrite("/etc/gshadow", edit)


def create_user(spec: dict[str, Any], log: Callable[[str, str], None]) -> None:
    name = str(spec["name"])
    groups = spec.get("groups") or []
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",")]
    try:
        pwd.getpwnam(name)
        log("WARNING", f"User {name} already exists, skipping.")
    except KeyError:
        uid = int(spec.get("uid") or _free_id("/etc/passwd"))
        with open("/etc/group") as fh:
            taken = {line.split(":")[2] for line in fh if line.count(":") >= 3}
        gid = uid if str(uid) not in taken else _free_id("/etc/group")
        home = str(spec.get("homedir") or f"/home/{name}")
        shell = str(spec.get("shell") or "/bin/sh")
        _rewrite("/etc/group", lambda ls: [*ls, f"{name}:x:{gid}:"])
        if os.path.exists("/etc/gshadow"):
            _rewrite("/etc/gshadow", lambda ls: [*ls, f"{name}:!::"])
        _rewrite(
            "/etc/passwd",
            lambda ls: [*ls, f"{name}:x:{uid}:{gid}:{spec.get('gecos', '')}:{home}:{shell}"],
        )
        hashed = str(spec.get("passwd") or "*")
        if spec.get("lock_passwd", True):
            hashed = "!" + hashed.lstrip("!") if hashed != "*" else "!"
        day = int(time.time() // 86400)
        _rewrite("/etc/shadow", lambda ls: [*ls, f"{name}:{hashed}:{day}:0:99999:7:::"])
        if not spec.get("no_create_home"):
            if os.path.isdir("/etc/skel") and not os.path.exists(home):
                shutil.copytree("/etc/skel", home, symlinks=True)
            os.makedirs(home, exist_ok=True)
            os.chmod(home, 0o750)
            for root, dirs, files in os.walk(home):
                for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.lchown(entry, uid, gid)
    for group in groups:
        ensure_group(group, [name])


def write_keys(user: str, keys: list[str]) -> None:
    pw = pwd.getpwnam(user)
    ssh_dir = os.path.join(pw.pw_dir, ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    path = os.path.join(ssh_dir, "authorized_keys")
    with open(path, "a") as fh:
        fh.write("".join(f"{k}\n" for k in keys))
    os.chmod(path, 0o600)
    for entry in (ssh_dir, path):
        os.chown(entry, pw.pw_uid, pw.pw_gid)


def host_has_package(name: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode == 0 and proc.stdout.strip().endswith(" installed")


def merge_tree(src: str, dst: str) -> None:
    """Copy src into dst without overwriting existing files (dpkg --force-confold)."""
    if not os.path.isdir(src):
        return
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        target_root = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target_root, exist_ok=True)
        shutil.copystat(root, target_root)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            s, d = os.path.join(root, name), os.path.join(target_root, name)
            if os.path.lexists(d):
                continue
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)


def main() -> int:
    with open(f"{INSTANCE}/simvm-cloud-config.json") as fh:
        spec = json.load(fh)
    engine = Engine(spec)
    try:
        engine.run()
    except Exception as exc:  # the engine itself broke: still finish like cloud-init
        engine.v1["modules-final"]["errors"].append(f"('simvm', {exc!r})")
        engine.log("ERROR", traceback.format_exc())
    finally:
        engine.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
