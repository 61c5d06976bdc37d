"""start / stop / restart / suspend / delete / purge / recover (docs/engines/multipass.md)."""

from __future__ import annotations

import time

from .cli import Parsed
from .cmd_launch import _timeout
from .context import Context, operative_errors
from .errors import client_timeout, failed, following_errors, unhandled, usage
from .spinner import Spinner
from .state import Daemon

PRIMARY = "primary"  # client.primary-name default


def _names(p: Parsed, *, required: bool) -> list[str] | None:
    """Positional names, None for --all; errors as check_for_name_and_all_option_conflict."""
    if p.is_set("all") and p.positionals:
        raise usage("Cannot specify name when --all option set")
    if p.is_set("all"):
        return None
    if not p.positionals:
        if required:
            raise usage("Name argument or --all is required")
        return [PRIMARY]
    return list(p.positionals)


def _resolve(daemon: Daemon, names: list[str] | None) -> list[str]:
    if names is None:
        return [n for n, i in daemon.instances.items() if i["state"] != "Deleted"]
    return names


def _action_message(verb: str, names: list[str] | None) -> str:
    return f"{verb} all instances" if names is None else f"{verb} {', '.join(names)}"


def cmd_start(ctx: Context, p: Parsed) -> int:
    names = _names(p, required=False)
    timeout = _timeout(p)
    ctx.connect("start")
    spinner = Spinner(ctx.stdout)
    spinner.start(_action_message("Starting", names))
    ran = start_instances(ctx, names, timeout, spinner)
    spinner.stop()
    return ran


def start_instances(
    ctx: Context, names: list[str] | None, timeout: int | None, spinner: Spinner
) -> int:
    with ctx.store.transaction() as daemon:
        targets = _resolve(daemon, names)
        details = ""
        missing = False
        for n in targets:
            inst = daemon.get(n)
            if inst is None:
                details += f"Instance '{n}' does not exist.\n"
                missing = True
            elif inst["state"] == "Deleted":
                details += (
                    f"Instance '{n}' is deleted. Use 'recover' to recover it or 'purge' to "
                    "permanently delete it.\n"
                )
        if details:
            spinner.stop()
            header = "instance(s) missing" if missing else "instance(s) deleted"  # [I] deleted
            raise failed("start", header, details)
        for n in targets:
            if daemon.instances[n]["state"] == "Unknown":
                spinner.stop()
                raise failed(
                    "start",
                    f"Instance '{n}' is already running, but in an unknown state.\n"
                    "Try to stop it first.",
                )
        to_boot = [n for n in targets if daemon.instances[n]["state"] in ("Stopped", "Suspended")]
    latency = max((ctx.settings.seconds("start_latency", n) for n in to_boot), default=0.0)
    if timeout is not None and latency > timeout:
        spinner.sleep(timeout)
        spinner.stop()
        raise client_timeout("to start")
    spinner.sleep(latency)
    _boot_all(ctx, to_boot)
    return 0


def _boot_all(ctx: Context, names: list[str]) -> None:
    """Boot every instance at once, as multipassd does (it starts each VM, then waits for all of
    them to answer SSH): on real VMs (the vm backend) a boot takes tens of seconds each."""
    from concurrent.futures import ThreadPoolExecutor

    def boot(n: str) -> None:
        inst = ctx.store.get_instance(n)
        if inst is None:
            return
        ips = ctx.backend.start(inst)
        with ctx.store.transaction() as daemon:
            rec = daemon.get(n)
            if rec is not None:
                resumed = rec["state"] == "Suspended"
                rec.update(state="Running", ipv4=ips, backend=inst["backend"])
                rec["boot_id"] = int(rec.get("boot_id", 0)) + (0 if resumed else 1)

    if len(names) <= 1:  # no thread for the common single start
        for n in names:
            boot(n)
        return
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        for done in [pool.submit(boot, n) for n in names]:
            done.result()


def _stop_like(ctx: Context, p: Parsed, command: str, verb: str) -> int:
    names = _names(p, required=False)
    force = p.is_set("force")
    delay: int | None = None
    if command == "stop":
        raw = p.value("time")
        if raw is not None and p.is_set("cancel"):
            raise usage("Cannot set 'time' and 'cancel' options at the same time")
        if raw is not None:
            if not raw.lstrip("+").isdigit():
                raise usage("Time must be in digit form")
            delay = int(raw.lstrip("+"))
    timeout = _timeout(p) if command == "restart" else None
    ctx.connect(command)
    spinner = Spinner(ctx.stdout)
    spinner.start(_action_message(verb, names))
    with ctx.store.transaction() as daemon:
        targets = _resolve(daemon, names)
        errors = operative_errors(daemon, targets)
        if errors:
            spinner.stop()
            raise following_errors(command, errors)
        for n in targets:
            state = daemon.instances[n]["state"]
            if state in ("Starting", "Restarting") and not force and command == "stop":
                spinner.stop()
                raise failed(
                    command,
                    f"Cannot shut down instance {n} while starting.\nUse --force to power it off.",
                )
            if command == "restart" and state != "Running":
                spinner.stop()
                raise failed(
                    command,
                    f"Instance '{n}' is already running, but in an unknown state.\n"
                    "Try to stop and start it instead.",
                )
    key = "start_latency" if command == "restart" else "stop_latency"
    latency = max((ctx.settings.seconds(key, n) for n in targets), default=0.0)
    if timeout is not None and latency > timeout:
        spinner.sleep(timeout)
        spinner.stop()
        raise client_timeout("to restart")
    spinner.sleep(latency)
    if command == "restart" or (command == "stop" and not delay and not p.is_set("cancel")):
        _guest_work(ctx, command, targets)
    with ctx.store.transaction() as daemon:
        for n in targets:
            inst = daemon.instances[n]
            if command == "stop" and p.is_set("cancel"):
                if inst["state"] == "Delayed Shutdown":
                    inst.update(state="Running", pending=[])
                continue
            if command == "stop" and delay:
                if inst["state"] == "Running":
                    at = time.time() + 60 * delay
                    inst["state"] = "Delayed Shutdown"
                    inst["pending"] = [{"at": at, "set": {"state": "Stopped", "ipv4": []}}]
                continue
            if command == "restart":
                inst["boot_id"] = int(inst.get("boot_id", 0)) + 1
                continue
            if command == "suspend":
                if inst["state"] in ("Running", "Delayed Shutdown"):
                    inst.update(state="Suspended", ipv4=[], pending=[])
                continue
            if inst["state"] != "Stopped":
                inst.update(state="Stopped", ipv4=[], pending=[])
    spinner.stop()
    return 0


def _guest_work(ctx: Context, command: str, targets: list[str]) -> None:
    """The backend's shutdowns/reboots, in parallel and outside the state lock: on real VMs
    (the vm backend) an ACPI shutdown takes seconds, and other calls must not wait for it."""
    from concurrent.futures import ThreadPoolExecutor

    restart = getattr(ctx.backend, "restart", None)  # only backends with a real guest reboot
    work = ctx.backend.stop if command == "stop" else restart
    if work is None:
        return
    insts = [ctx.store.get_instance(n) for n in targets]
    live = [i for i in insts if i is not None and i["state"] != "Stopped"]
    with ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
        for done in [pool.submit(work, inst) for inst in live]:
            done.result()


def cmd_stop(ctx: Context, p: Parsed) -> int:
    return _stop_like(ctx, p, "stop", "Stopping")


def cmd_suspend(ctx: Context, p: Parsed) -> int:
    return _stop_like(ctx, p, "suspend", "Suspending")


def cmd_restart(ctx: Context, p: Parsed) -> int:
    return _stop_like(ctx, p, "restart", "Restarting")


def cmd_delete(ctx: Context, p: Parsed) -> int:
    names = _names(p, required=True)
    purge = p.is_set("purge")
    snaps = [n for n in names or [] if "." in n]
    if snaps and not purge:
        raise unhandled(
            "Snapshots can only be purged (after deletion, they cannot be recovered). Unable to "
            "query client for confirmation. Please use the `--purge` flag if that is what you want."
        )
    ctx.connect("delete")
    with ctx.store.transaction() as daemon:
        targets = (
            [n for n in daemon.instances] if names is None else [n.split(".")[0] for n in names]
        )
        errors = operative_errors(daemon, targets, deleted_ok=True)
        for s in snaps:
            inst_name, snap = s.split(".", 1)
            inst = daemon.get(inst_name)
            if inst is not None and snap not in (inst.get("snapshots") or {}):
                errors.append(f"No such snapshot: {s}")
        if errors:
            raise following_errors("delete", errors)
        for s in snaps:
            inst_name, snap = s.split(".", 1)
            _delete_snapshot(daemon, inst_name, snap)
        for n in targets if names is None else names:
            if "." in n:
                continue
            inst = daemon.instances[n]
            if inst["state"] in ("Starting", "Restarting") and not purge:
                raise failed(
                    "delete",
                    f"Cannot shut down instance {n} while starting.\n"
                    "Use --purge to forcefully delete it.",
                )
            if inst["state"] not in ("Stopped", "Deleted"):
                ctx.backend.stop(inst)
            if purge:
                ctx.backend.delete(inst)
                del daemon.instances[n]
            else:
                inst.update(state="Deleted", ipv4=[], pending=[])
    return 0


def _delete_snapshot(daemon: Daemon, inst_name: str, snap: str) -> None:
    inst = daemon.instances[inst_name]
    snaps = inst["snapshots"]
    gone = snaps.pop(snap)
    parent = gone.get("parent", "")
    for child in gone.get("children", []):  # re-link the children to the deleted one's parent
        if child in snaps:
            snaps[child]["parent"] = parent
    if parent in snaps:
        kids = [c for c in snaps[parent]["children"] if c != snap] + gone.get("children", [])
        snaps[parent]["children"] = kids
    if inst.get("head_snapshot") == snap:
        inst["head_snapshot"] = parent


def cmd_purge(ctx: Context, p: Parsed) -> int:
    if p.positionals:
        raise usage("This command takes no arguments")
    ctx.connect("purge")
    with ctx.store.transaction() as daemon:
        for n in [n for n, i in daemon.instances.items() if i["state"] == "Deleted"]:
            ctx.backend.delete(daemon.instances[n])
            del daemon.instances[n]
    return 0


def cmd_recover(ctx: Context, p: Parsed) -> int:
    names = _names(p, required=True)
    ctx.connect("recover")
    with ctx.store.transaction() as daemon:
        targets = list(daemon.instances) if names is None else names
        errors = [f'instance "{n}" does not exist' for n in targets if daemon.get(n) is None]
        if errors:
            raise following_errors("recover", errors)
        for n in targets:
            if daemon.instances[n]["state"] == "Deleted":
                daemon.instances[n]["state"] = "Stopped"
    return 0
