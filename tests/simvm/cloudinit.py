"""Host side of the simulated cloud-init: parse user-data, run the in-VM engine, read results.

The modules themselves run inside the VM (shims/ci_guest.py) so that every path resolves
in the VM's private view. This module parses the YAML (PyYAML lives on the host side),
classifies top-level keys like cloud-init 26.x's schema check, and waits for the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import yaml

from ._proc import CloudInitTimeout, read_json, write_json
from .rootfs import GUEST_LIB, private_path

if TYPE_CHECKING:
    from .vm import SimVM

Status = Literal["done", "error", "degraded"]

# Keys the simulation applies.
SUPPORTED: Final[frozenset[str]] = frozenset(
    {
        "users", "user", "groups", "write_files", "package_update", "package_upgrade",
        "packages", "apt", "runcmd", "bootcmd", "final_message", "ssh_authorized_keys",
        "apt_update", "apt_upgrade",
    }
)  # fmt: skip
# Valid cloud-config keys (cloud-init 26.x schema) that the simulation does not apply.
VALID_UNSIMULATED: Final[frozenset[str]] = frozenset(
    {
        "ansible", "apk_repos", "apt_pipelining", "apt_reboot_if_required", "autoinstall",
        "byobu_by_default", "ca_certs", "ca-certs", "chef", "chpasswd", "create_hostname_file",
        "datasource", "device_aliases", "disable_ec2_metadata", "disable_root",
        "disable_root_opts", "disk_setup", "drivers", "fan", "fqdn", "fs_setup", "growpart",
        "grub_dpkg", "grub-dpkg", "hostname", "keyboard", "keys_to_console", "landscape",
        "launch-index", "locale", "locale_configfile", "lxd", "manage_etc_hosts",
        "manage_resolv_conf", "mcollective", "merge_how", "merge_type", "mount_default_fields",
        "mounts", "no_ssh_fingerprints", "ntp", "output", "package_reboot_if_required",
        "password", "phone_home", "power_state", "prefer_fqdn_over_hostname",
        "preserve_hostname", "puppet", "random_seed", "reporting", "resize_rootfs",
        "resolv_conf", "rh_subscription", "rsyslog", "salt_minion", "snap", "spacewalk",
        "ssh", "ssh_deletekeys", "ssh_fp_console_blacklist", "ssh_genkeytypes", "ssh_keys",
        "ssh_key_console_blacklist", "ssh_publish_hostkeys", "ssh_pwauth", "ssh_quiet_keygen",
        "ssh_import_id", "allow_public_ssh_keys", "swap", "timezone", "ubuntu_advantage",
        "ubuntu_pro", "updates", "vendor_data", "wireguard", "yum_repo_dir", "yum_repos",
        "zypper", "write_files_deferred", "cloud_init_modules", "cloud_config_modules",
        "cloud_final_modules", "system_info", "network",
    }
)  # fmt: skip
# Deprecated before the 24.1 boundary Ubuntu ships, so 26.x logs them as DEPRECATED.
DEPRECATED: Final[dict[str, tuple[str, str]]] = {
    "apt_update": ("22.2", "package_update"),
    "apt_upgrade": ("22.2", "package_upgrade"),
    "apt_reboot_if_required": ("22.2", "package_reboot_if_required"),
    "ca-certs": ("22.3", "ca_certs"),
    "grub-dpkg": ("22.2", "grub_dpkg"),
}
_USER_HYPHENATED: Final = ("lock-passwd", "ssh-authorized-keys", "no-create-home", "no-user-group")
_SCHEMA_WARNING: Final = (
    "Invalid cloud-config provided: Please run 'sudo cloud-init schema --system' "
    "to see the schema errors."
)


@dataclass(frozen=True)
class CloudInitResult:
    """Outcome as `cloud-init status --format json` would report it."""

    status: Status
    exit_code: int  # what `cloud-init status` exits with: 0 done, 1 error, 2 degraded
    errors: list[str]
    recoverable_errors: dict[str, list[str]] = field(default_factory=dict)
    output_log: Path | None = None  # host path of the VM's /var/log/cloud-init-output.log


@dataclass
class ParsedUserData:
    config: dict[str, Any]
    warnings: list[str]
    deprecations: list[str]
    unsupported: list[str]
    script: str | None


def parse_user_data(user_data: str) -> ParsedUserData:
    """Split user-data into config + schema-style findings, without raising on bad input."""
    parsed = ParsedUserData({}, [], [], [], None)
    first = user_data.lstrip().split("\n", 1)[0].strip()
    if not user_data.strip():
        return parsed
    if first.startswith("#!"):
        parsed.script = user_data
        return parsed
    if first != "#cloud-config":
        parsed.warnings.append(
            f"Unhandled non-multipart (text/x-not-multipart) userdata: {first!r}"
        )
        return parsed
    try:
        loaded = yaml.safe_load(user_data)
    except yaml.YAMLError as exc:
        parsed.warnings.append(f"Failed loading yaml blob. {exc}")
        return parsed
    if loaded is None:
        return parsed
    if not isinstance(loaded, dict):
        parsed.warnings.append(_SCHEMA_WARNING)
        return parsed
    parsed.config = json.loads(json.dumps(loaded, default=str))
    unknown = sorted(k for k in parsed.config if k not in SUPPORTED | VALID_UNSIMULATED)
    if unknown or _type_problems(parsed.config):
        parsed.warnings.append(_SCHEMA_WARNING)
    for key in sorted(parsed.config):
        if key in DEPRECATED:
            version, repl = DEPRECATED[key]
            parsed.deprecations.append(
                f"Deprecated cloud-config provided: {key}: Deprecated in version {version}. "
                f"Use ``{repl}`` instead."
            )
        elif key in VALID_UNSIMULATED:
            parsed.unsupported.append(key)
    for user in parsed.config.get("users") or []:
        for key in user if isinstance(user, dict) else []:
            if key in _USER_HYPHENATED:
                parsed.deprecations.append(
                    f"Deprecated cloud-config provided: users.{key}: Deprecated in version "
                    f"22.3. Use ``{key.replace('-', '_')}`` instead."
                )
    return parsed


def _type_problems(cfg: dict[str, Any]) -> bool:
    """The schema errors people actually make (docs/provisioning.md); each degrades 26.x."""
    if "packages" in cfg and not isinstance(cfg["packages"], list):
        return True
    if "runcmd" in cfg and (not isinstance(cfg["runcmd"], list) or not cfg["runcmd"]):
        return True
    for entry in cfg.get("write_files") or []:
        if not isinstance(entry, dict) or "path" not in entry:
            return True
        if "permissions" in entry and not isinstance(entry["permissions"], str):
            return True
    return any(
        k in cfg and not isinstance(cfg[k], bool) for k in ("package_update", "package_upgrade")
    )


def run(vm: SimVM, user_data: str, timeout: float | None) -> CloudInitResult:
    """Apply user_data inside vm; block until done or raise CloudInitTimeout (VM keeps going)."""
    parsed = parse_user_data(user_data)
    cloud = private_path(vm.state_dir, "/var/lib/cloud")
    inst = cloud / "instances" / vm.name
    inst.mkdir(parents=True, exist_ok=True)
    (inst / "user-data.txt").write_text(user_data)
    (inst / "user-data.txt").chmod(0o600)
    spec = {
        "config": parsed.config,
        "warnings": parsed.warnings,
        "deprecations": parsed.deprecations,
        "unsupported": parsed.unsupported,
        "script": parsed.script,
        "boot_time": vm.boot_time(),
    }
    write_json(inst / "simvm-cloud-config.json", spec, mode=0o600)
    link = cloud / "instance"
    if not link.is_symlink():
        link.symlink_to(f"/var/lib/cloud/instances/{vm.name}")
    argv = vm.enter_argv("root", ["-HOME", "-USER", "-LOGNAME", "-SHELL"], [
        "/usr/bin/python3", "-I", f"{GUEST_LIB}/ci_guest.py",
    ])  # fmt: skip
    with (vm.state_dir / "cloud-init-runner.log").open("ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
            start_new_session=True,
        )  # fmt: skip
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CloudInitTimeout(
            f"timed out after {timeout}s waiting for cloud-init in {vm.name}; "
            "it keeps running in the VM (like Multipass after a launch timeout)"
        ) from None
    return collect(vm, runner_rc=rc)


def collect(vm: SimVM, runner_rc: int | None = None) -> CloudInitResult:
    """Read the VM's result.json; if the engine died without one, record that as an error."""
    cloud = private_path(vm.state_dir, "/var/lib/cloud")
    result_path = cloud / "data" / "result.json"
    if not result_path.exists():
        _write_crash_result(vm, runner_rc)
    v1 = read_json(result_path)["v1"]
    errors = [str(e) for e in v1.get("errors", [])]
    recoverable = {str(k): [str(m) for m in v] for k, v in v1.get("recoverable_errors", {}).items()}
    status: Status = "error" if errors else "degraded" if recoverable else "done"
    code = {"error": 1, "degraded": 2, "done": 0}[status]
    log = private_path(vm.state_dir, "/var/log") / "cloud-init-output.log"
    return CloudInitResult(status, code, errors, recoverable, log)


def _write_crash_result(vm: SimVM, runner_rc: int | None) -> None:
    cloud = private_path(vm.state_dir, "/var/lib/cloud")
    msg = f"('simvm', RuntimeError('in-VM cloud-init engine exited {runner_rc} without result'))"
    now = time.time()
    stage = {"errors": [msg], "finished": now, "recoverable_errors": {}, "start": now}
    write_json(cloud / "data" / "status.json", {"v1": {"datasource": None, "stage": None,
                                                       "modules-final": stage}})  # fmt: skip
    write_json(cloud / "data" / "result.json", {"v1": {"datasource": None, "errors": [msg]}})
    finished = cloud / "instances" / vm.name / "boot-finished"
    finished.write_text(f"0.00 - {time.strftime('%a, %d %b %Y %H:%M:%S +0000')} - v. 26.1\n")
    _link_run(vm)


def _link_run(vm: SimVM) -> None:
    run_dir = private_path(vm.state_dir, "/run") / "cloud-init"
    run_dir.mkdir(exist_ok=True)
    for name in ("status.json", "result.json"):
        if not (run_dir / name).is_symlink():
            (run_dir / name).symlink_to(f"/var/lib/cloud/data/{name}")


def on_boot(vm: SimVM) -> None:
    """A reboot: cloud-init runs its stages again but every per-instance module is skipped,
    so /run/cloud-init/status.json is rebuilt without the first boot's errors."""
    cloud = private_path(vm.state_dir, "/var/lib/cloud")
    if not (cloud / "data" / "result.json").exists():
        return
    now = time.time()
    v1: dict[str, Any] = {"datasource": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]"}
    v1["stage"] = None
    for stage in ("init-local", "init", "modules-config", "modules-final"):
        v1[stage] = {"errors": [], "finished": now, "recoverable_errors": {}, "start": now}
    write_json(cloud / "data" / "status.json", {"v1": v1})
    write_json(cloud / "data" / "result.json", {"v1": {"datasource": v1["datasource"],
                                                       "errors": []}})  # fmt: skip
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now))
    (cloud / "instances" / vm.name / "boot-finished").write_text(f"1.00 - {stamp} - v. 26.1\n")
    _link_run(vm)
