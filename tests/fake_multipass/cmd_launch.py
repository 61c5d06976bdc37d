"""``multipass launch`` (launch.cpp + the daemon's create/start/wait path)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from .cli import Parsed
from .context import Context, new_instance
from .errors import CommandError, client_timeout, failed, following_errors, usage
from .model import (
    CUSTOM,
    DEFAULT_IMAGE,
    MIN_DISK,
    MIN_MEMORY,
    find_image,
    parse_cpus,
    parse_size,
    petname,
    valid_name,
)
from .plain_backend import allocate_ip
from .spinner import Spinner

DAEMON_DEFAULT_TIMEOUT = 300.0  # include/multipass/constants.h default_timeout
MAC_RE = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


def _timeout(p: Parsed) -> int | None:
    raw = p.value("timeout")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise usage("error: --timeout value has to be a positive integer")
    return int(raw)


def _networks(p: Parsed) -> list[dict[str, str]]:
    nets = []
    specs = p.all("network") + (["bridged"] if p.is_set("bridged") else [])
    for spec in specs:
        net = dict(kv.split("=", 1) for kv in spec.split(",") if "=" in kv)
        if "=" not in spec:
            net = {"name": spec}
        if "name" not in net:
            raise usage(f"error: Invalid network specification: {spec}")  # [fake] wording
        net.setdefault("mode", "auto")
        if net["mode"] not in ("auto", "manual"):
            raise usage(f"error: Bad network mode '{net['mode']}', need 'auto' or 'manual'")
        if "mac" in net and not MAC_RE.fullmatch(net["mac"]):
            raise usage(f"error: Invalid MAC address: {net['mac']}")
        nets.append(net)
    return nets


def _mounts(p: Parsed) -> dict[str, dict[str, Any]]:
    mounts: dict[str, dict[str, Any]] = {}
    for spec in p.all("mount"):
        source, _, target = spec.partition(":")
        path = Path(source).expanduser()
        if not path.exists():
            raise usage(f'Mount source path "{source}" does not exist')
        if not path.is_dir():
            raise usage(f'Mount source path "{source}" is not a directory')
        src = str(path.resolve())
        target = target or f"/home/ubuntu/{path.resolve().name}"
        mounts[target] = {
            "source_path": src,
            "uid_mappings": [f"{os.getuid()}:default"],
            "gid_mappings": [f"{os.getgid()}:default"],
        }
    return mounts


def _load_cloud_init(ctx: Context, source: str) -> tuple[str, Any]:
    import yaml  # lazy: only launch needs it

    prefix = "Could not load cloud-init configuration: "
    if source.startswith(("http://", "https://")):
        raise usage(prefix + "fake multipass does not download cloud-init URLs")  # no network
    if source == "-":
        text = ctx.stdin.read().decode("utf-8", errors="replace")
    else:
        try:
            text = Path(source).read_text()
        except OSError:
            raise usage(
                f"{prefix}bad file: {source}\nPlease ensure that Multipass can read it."
            ) from None
    try:
        node = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"error at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise usage(f"{prefix}yaml-cpp: {where}{problem}") from None
    return text, node


def cmd_launch(ctx: Context, p: Parsed) -> int:
    # ---- client side (exit 1) ----
    if len(p.positionals) > 1:
        raise usage("Too many arguments supplied")
    image_spec = p.positionals[0] if p.positionals else DEFAULT_IMAGE
    image, remote, image_name = find_image(image_spec)
    cpus_arg = p.value("cpus")
    cpus = parse_cpus(cpus_arg) if cpus_arg is not None else 1
    mem_spec = p.value("memory") or p.value("mem") or "1G"
    disk_spec = p.value("disk") or "5G"
    memory, disk = parse_size(mem_spec), parse_size(disk_spec)
    timeout = _timeout(p)
    networks, mounts = _networks(p), _mounts(p)
    user_data: dict[str, Any] | None = None
    ci_source = p.value("cloud-init")
    node: Any = None
    if ci_source is not None:
        text, node = _load_cloud_init(ctx, ci_source)
        ctx.log["cloud_init"] = text
        user_data = node if isinstance(node, dict) else None
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    # ---- daemon side (exit 2) ----
    ctx.connect("launch")
    name = p.value("name") or petname()
    details = []
    if not valid_name(name):
        details.append(f"Invalid instance name supplied: {name}")
    if memory < MIN_MEMORY:
        details.append(f"Invalid memory size value supplied: {mem_spec}.")
    if disk < MIN_DISK:
        details.append(f"Invalid disk size value supplied: {disk_spec}.")
    if details:
        raise failed("launch", "Invalid arguments supplied", "\n".join(details))
    if remote not in ("", "release", "daily"):
        raise failed("launch", f'Remote "{remote}" is unknown or unreachable.')
    if image is CUSTOM and not image_name.startswith(("http://", "https://", "file://")):
        raise failed(
            "launch", f'Unable to find an image matching "{image_name}" in remote "{remote}".'
        )
    if node is not None and not isinstance(node, dict):
        # [I] prepare_user_data indexes node["users"]; yaml-cpp throws on a scalar/sequence
        raise failed("launch", 'operator[] call on a scalar (key: "users")')

    settings, backend = ctx.settings, ctx.backend
    latency = settings.seconds("launch_latency", name)
    daemon_timeout = float(timeout) if timeout else DAEMON_DEFAULT_TIMEOUT
    ssh_fault = settings.flag("ssh_timeout", name) or latency > daemon_timeout
    init_fault = settings.get("launch_timeout", name)
    spinner = Spinner(ctx.stdout)

    def wait_until(when: float) -> None:
        """Sleep until monotonic ``when``; the client timer may fire first (exit 5)."""
        if deadline is not None and deadline < when:
            spinner.sleep(deadline - time.monotonic())
            raise client_timeout("launch")
        spinner.sleep(when - time.monotonic())

    with ctx.store.transaction() as daemon:
        if daemon.get(name) is not None:
            raise failed("launch", f'instance "{name}" already exists')
        inst = new_instance(name, image=image.version if image is not CUSTOM else image_spec)
        inst.update(
            cpus=cpus,
            memory=memory,
            disk=disk,
            memory_spec=mem_spec,
            disk_spec=disk_spec,
            networks=networks,
            mounts=mounts,
            user_data=user_data,
            user_data_text=ctx.log.get("cloud_init"),  # the exact text (the vm backend's seed)
        )
        host = daemon.next_host_number()
        inst["backend"].update(
            host=host, ip=allocate_ip(str(settings.get("ip_pool")), daemon.index, host)
        )
        now = time.time()
        running_at = now + min(latency, daemon_timeout)
        if backend.lazy:
            ips = backend.start(inst)
            outcome = backend.provision(inst, user_data, daemon_timeout)
            ci = {"result": outcome.cloud_init, "started_at": running_at, "done_at": None}
            if ssh_fault:  # the daemon gives up on SSH: Unknown (on_timeout handler)
                to_unknown = {"state": "Unknown", "ipv4": []}
                inst["pending"] = [{"at": running_at, "set": to_unknown}]
            else:
                to_running = {"state": "Running", "ipv4": ips, "boot_id": 1}
                inst["pending"] = [{"at": running_at, "set": to_running}]
                if outcome.finishes_in is not None and not init_fault:
                    ci["done_at"] = running_at + outcome.finishes_in
                elif outcome.finishes_in is not None and not isinstance(init_fault, bool):
                    # launch_timeout=<seconds>: cloud-init finishes that long after the failure
                    ci["done_at"] = running_at + outcome.finishes_in + float(init_fault)
            inst["cloud_init"] = ci
        daemon.instances[name] = inst

    spinner.start(f"Creating {name}")
    spinner.start(f"Configuring {name}")
    spinner.start(f"Starting {name}")
    wait_until(time.monotonic() + (running_at - time.time()))
    if ssh_fault:
        with ctx.store.transaction() as daemon:
            rec = daemon.get(name)
            if rec is not None:
                rec.update(state="Unknown", ipv4=[], pending=[])
        spinner.stop()
        raise following_errors("launch", [f"{name}: timed out waiting for response"])
    if settings.flag("client_timeout", name):
        spinner.stop()
        raise client_timeout("launch")
    if not backend.lazy:
        _boot_blocking(ctx, name, daemon_timeout)
    spinner.start("Waiting for initialization to complete")
    inst = ctx.store.get_instance(name) or inst
    done_at = inst["cloud_init"].get("done_at")
    ci_latency = settings.seconds("cloud_init_latency", name)
    if init_fault or done_at is None or float(done_at) - time.time() > daemon_timeout:
        wait = min(ci_latency, daemon_timeout) if init_fault else daemon_timeout
        wait_until(time.monotonic() + wait)
        spinner.stop()
        raise following_errors("launch", ["timed out waiting for initialization to complete"])
    wait_until(time.monotonic() + max(0.0, float(done_at) - time.time()))
    spinner.stop()
    ctx.out(f"Launched: {name}\n")
    for target, mount in mounts.items():
        ctx.out(f"Mounted '{mount['source_path']}' into '{name}:{target}'\n")
    return 0


def _boot_blocking(ctx: Context, name: str, daemon_timeout: float) -> None:
    """Non-lazy backends (sim): boot and run cloud-init for real, then record the results."""
    from .backend import ProvisionTimeoutError

    backend = ctx.backend
    inst = ctx.store.get_instance(name)
    if inst is None:
        raise CommandError(f"launch failed: instance {name} vanished", 2)
    ips = backend.start(inst)
    with ctx.store.transaction() as daemon:
        rec = daemon.instances[name]
        rec.update(state="Running", ipv4=ips, boot_id=1, backend=inst["backend"])
        rec["cloud_init"]["started_at"] = time.time()
    try:
        outcome = backend.provision(inst, inst.get("user_data"), daemon_timeout)
    except ProvisionTimeoutError:
        raise following_errors(
            "launch", ["timed out waiting for initialization to complete"]
        ) from None
    with ctx.store.transaction() as daemon:
        rec = daemon.instances[name]
        rec["backend"] = inst["backend"]
        rec["files"] = inst.get("files", {})
        rec["cloud_init"].update(result=outcome.cloud_init, done_at=time.time())
