"""Read-only commands: version, list (ls), info."""

from __future__ import annotations

import hashlib
from typing import Any

from .cli import Parsed
from .context import Context, is_running
from .errors import COMMAND_LINE_ERROR, CommandError, following_errors, usage
from .formats import human_bytes, info_table, list_table, qt_json, snapshots_table
from .model import GiB, guest_disk_total, guest_memory_total, lookup_image
from .state import Instance

FORMATS = ("table", "json", "csv", "yaml")


def check_format(p: Parsed) -> str:
    fmt = p.value("format") or "table"
    if fmt not in FORMATS:
        raise usage("Invalid format type given.")
    return fmt


def cmd_version(ctx: Context, p: Parsed) -> int:
    fmt = check_format(p)
    client = ctx.settings.version
    daemon = (
        None if ctx.daemon_is_down() else client
    )  # version never fails (docs/engines/multipass.md)
    if fmt == "json":
        doc = {"multipass": client} | ({"multipassd": daemon} if daemon else {})
        ctx.out(qt_json(doc))
    elif fmt == "csv":
        ctx.out(f"Multipass,Multipassd\n{client},{daemon or ''}\n")
    elif fmt == "yaml":
        ctx.out(f"multipass: {client}\n" + (f"multipassd: {daemon}\n" if daemon else ""))
    else:
        ctx.out(
            f"{'multipass':<12}{client}\n" + (f"{'multipassd':<12}{daemon}\n" if daemon else "")
        )
    return 0


def _order_key(ctx: Context, inst: Instance) -> tuple[int, str]:
    """Emulate unordered_map iteration: operative first, Deleted after, else a stable hash."""
    digest = hashlib.sha256(f"{ctx.address}/{inst['name']}".encode()).hexdigest()
    return (1 if inst["state"] == "Deleted" else 0, digest)


def list_ipv4(inst: Instance) -> list[str]:
    if not is_running(inst):
        return []
    ips = [str(ip) for ip in inst.get("ipv4") or []]
    if inst["state"] == "Delayed Shutdown":
        ips = ips[:1]  # extra IPs are missing in Delayed Shutdown (docs/engines/multipass.md)
    return ips or ["N/A"]


def list_release(inst: Instance) -> str:
    image = lookup_image(str(inst.get("image", "")))
    return image.list_release if image.version != "custom" else "Not Available"


def snapshot_tree(inst: Instance) -> dict[str, dict[str, Any]]:
    return dict(inst.get("snapshots") or {})


def cmd_list(ctx: Context, p: Parsed) -> int:
    if p.positionals:
        raise usage("This command takes no arguments")
    fmt = check_format(p)
    ctx.connect("list")
    ctx.sleep("list_latency")
    with ctx.store.transaction(write=False) as daemon:
        instances = sorted(daemon.instances.values(), key=lambda i: _order_key(ctx, i))
    if p.is_set("snapshots"):
        info: dict[str, Any] = {}
        rows = []
        for inst in instances:
            for sname, snap in snapshot_tree(inst).items():
                entry = {"comment": snap["comment"], "parent": snap["parent"]}
                info.setdefault(inst["name"], {})[sname] = entry
                rows.append((inst["name"], sname, snap["parent"], snap["comment"]))
        if fmt == "json":
            ctx.out(qt_json({"errors": [], "info": info}))
        else:
            ctx.out(snapshots_table(sorted(rows)))
        return 0
    if fmt == "json":
        items = [
            {
                "ipv4": list_ipv4(i),
                "name": i["name"],
                "release": list_release(i),
                "state": i["state"],
            }
            for i in instances
        ]
        ctx.out(qt_json({"list": items}))
    elif fmt == "csv":
        lines = ["Name,State,IPv4,IPv6,Release,AllIPv4"]
        for i in instances:
            ips = list_ipv4(i)
            first = ips[0] if ips else ""
            lines.append(f'{i["name"]},{i["state"]},{first},,{list_release(i)},"{",".join(ips)}"')
        ctx.out("\n".join(lines) + "\n")
    elif fmt == "yaml":
        out = []
        for i in instances:
            out += [f"{i['name']}:", f"  - state: {i['state']}", "    ipv4:"]
            out += [f"      - {ip}" for ip in list_ipv4(i)] or ["      []"]
            out.append(f"    release: {list_release(i)}")
        ctx.out("\n".join(out) + "\n" if out else "{}\n")
    else:
        rows = [(i["name"], i["state"], list_ipv4(i), list_release(i)) for i in instances]
        ctx.out(list_table(sorted(rows, key=lambda r: r[0])))
    return 0


def _fraction(name: str, salt: str) -> float:
    """A stable non-integral value in [0.01, 0.99]."""
    digest = hashlib.sha256(f"{name}:{salt}".encode()).digest()
    return (digest[0] % 99 + 1) / 100


def size_text(value: int) -> str:
    """MemorySize::human_readable style: '1GiB', '4.9GiB', '128MiB'."""
    text = human_bytes(value)
    return text.replace(".0", "", 1) if ".0" in text[-6:] else text


def instance_info(ctx: Context, inst: Instance) -> dict[str, Any]:
    image = lookup_image(str(inst.get("image", "")))
    running = is_running(inst)
    name = str(inst["name"])
    mounts = {
        target: {
            "gid_mappings": m.get("gid_mappings", ["1000:default"]),
            "source_path": m["source_path"],
            "uid_mappings": m.get("uid_mappings", ["1000:default"]),
        }
        for target, m in (inst.get("mounts") or {}).items()
    }
    entry: dict[str, Any] = {
        "cpu_count": str(inst["cpus"]) if running else "",
        "disks": {"sda1": {}},
        "image_hash": image.image_hash,
        "image_release": image.release,
        "ipv4": [str(ip) for ip in inst.get("ipv4") or []] if running else [],
        "load": [],
        "memory": {},
        "mounts": mounts,
        "release": image.pretty if running else "",
        "state": inst["state"],
    }
    if running:
        mem_total = guest_memory_total(int(inst["memory"]))
        disk_total = guest_disk_total(int(inst["disk"]))
        disk_used = min(int(1.8 * GiB), disk_total // 2)
        entry["memory"] = {"total": mem_total, "used": int(mem_total * _fraction(name, "mem") / 3)}
        entry["disks"] = {"sda1": {"total": str(disk_total), "used": str(disk_used)}}
        entry["load"] = [_fraction(name, f"load{k}") for k in range(3)]
    if not ctx.settings.flag("snapshots_unsupported", name):
        entry["snapshot_count"] = str(len(inst.get("snapshots") or {}))
    return entry


def snapshot_info(inst: Instance, sname: str) -> dict[str, Any]:
    snap = inst["snapshots"][sname]
    return {
        "children": list(snap.get("children", [])),
        "comment": snap.get("comment", ""),
        "cpu_count": str(snap.get("cpus", inst["cpus"])),
        "created": snap.get("created", ""),
        "disk_space": size_text(int(snap.get("disk", inst["disk"]))),
        "memory_size": size_text(int(snap.get("memory", inst["memory"]))),
        "mounts": {t: {"source_path": m["source_path"]} for t, m in snap.get("mounts", {}).items()},
        "parent": snap.get("parent", ""),
        "size": "",  # never populated in practice ([U] #4832)
    }


def cmd_info(ctx: Context, p: Parsed) -> int:
    fmt = check_format(p)
    if fmt in ("csv", "yaml"):
        raise usage(f"fake multipass: info --format {fmt} is not implemented")
    ctx.connect("info")
    ctx.sleep("list_latency")
    with ctx.store.transaction(write=False) as daemon:
        table = dict(daemon.instances)
    targets: list[tuple[str, str | None]] = []
    for arg in p.positionals or sorted(table):
        iname, _, sname = arg.partition(".")
        targets.append((iname, sname or None))
    errors = []
    for name, snap in targets:
        if name not in table:
            errors.append(f'instance "{name}" does not exist')
        elif snap and snap not in (table[name].get("snapshots") or {}):
            errors.append(f"No such snapshot: {name}.{snap}")
    if errors:
        raise following_errors("info", errors)
    info: dict[str, dict[str, Any]] = {}
    want_snaps = p.is_set("snapshots")
    for name, snap in targets:
        inst = table[name]
        if snap:
            info.setdefault(name, {}).setdefault("snapshots", {})[snap] = snapshot_info(inst, snap)
        elif want_snaps:
            for sname in inst.get("snapshots") or {}:
                snaps = info.setdefault(name, {}).setdefault("snapshots", {})
                snaps[sname] = snapshot_info(inst, sname)
        else:
            info.setdefault(name, {}).update(instance_info(ctx, inst))
    if fmt == "json":
        ctx.out(qt_json({"errors": [], "info": info}))
        return 0
    entries = []
    for name, data in sorted(info.items()):
        if "state" not in data:
            continue
        inst = table[name]
        extra: dict[str, Any] = {"name": name, "mounts": list(data["mounts"])}
        if data["memory"]:
            m = data["memory"]
            extra["memory_text"] = f"{human_bytes(m['used'])} out of {human_bytes(m['total'])}"
            d = data["disks"]["sda1"]
            extra["disk_text"] = (
                f"{human_bytes(int(d['used']))} out of {human_bytes(int(d['total']))}"
            )
        entries.append(data | extra | {"image_release": lookup_image(inst["image"]).release})
    ctx.out(info_table(entries))
    return 0


_SETTINGS_KEYS = (
    "client.primary-name",
    "local.bridged-network",
    "local.driver",
    "local.image.mirror",
    "local.passphrase",
    "local.privileged-mounts",
)


def cmd_get(ctx: Context, p: Parsed) -> int:
    """`get <key> [--raw]` / `get --keys` for the global keys (docs/engines/multipass.md); works without the daemon
    only for client.* keys, as in multipass."""
    if p.is_set("keys"):
        ctx.out("".join(f"{key}\n" for key in _SETTINGS_KEYS))
        return 0
    if len(p.positionals) != 1:
        raise usage("Need exactly one setting key.")
    key = p.positionals[0]
    values = {
        "client.primary-name": "primary",
        "local.bridged-network": "",
        "local.driver": str(ctx.settings.get("driver")),
        "local.image.mirror": "",
        "local.passphrase": "",
        "local.privileged-mounts": "true",
    }
    if key not in values:
        raise CommandError(f"Unrecognized settings key: '{key}'", COMMAND_LINE_ERROR)
    if not key.startswith("client."):
        ctx.connect("get")
    value = values[key]
    ctx.out(f"{value if value or p.is_set('raw') else '<empty>'}\n")
    return 0
