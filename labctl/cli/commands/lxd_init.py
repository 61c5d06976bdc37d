"""`labctl lxd-init`: initialise a freshly installed LXD for labs (a safe preseed, shown and
confirmed before it runs; `--yes` for scripts). Parsing and printing only: ops/lxd_init.py."""

from __future__ import annotations

from typing import Annotated

import typer

from labctl.cli.app import command_app, stdout
from labctl.engine.lxd.initialise import DEFAULT_BRIDGE, DEFAULT_POOL, DEFAULT_SUBNET, InitOptions
from labctl.ops.lxd_init import plan_lxd_init, run_lxd_init

cli = command_app()


@cli.command("lxd-init")
def lxd_init(
    subnet: Annotated[
        str, typer.Option(help="The bridge's address and prefix (a private range, unused here).")
    ] = DEFAULT_SUBNET,
    bridge: Annotated[str, typer.Option(help="The bridge LXD creates.")] = DEFAULT_BRIDGE,
    pool: Annotated[str, typer.Option(help="The storage pool LXD creates.")] = DEFAULT_POOL,
    driver: Annotated[
        str, typer.Option(help="dir (any filesystem) or btrfs (a loop file; faster snapshots).")
    ] = "dir",
    nat: Annotated[
        bool,
        typer.Option(
            "--nat/--no-nat",
            help="Masquerade the containers' traffic out through this machine (off by default: "
            "nothing leaves the bridge unless you choose so; labs that download packages or "
            "clone apps from the internet need it).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; run it.")] = False,
) -> None:
    """Set up a freshly installed LXD for labctl: a storage pool, a bridge on a fixed subnet
    (never LXD's automatic one, which probes random addresses) and the default profile. Shows
    the preseed and asks first."""
    options = InitOptions(subnet=subnet, bridge=bridge, pool=pool, driver=driver, nat=nat)
    plan = plan_lxd_init(options)
    if plan.refusal:
        run_lxd_init(plan)  # raises with what was found and what to do
    stdout.print(f"LXD {plan.state.version if plan.state else '?'} is not initialised yet.")
    stdout.print(f"labctl would run `{' '.join(plan.argv)}` with this preseed on stdin:")
    stdout.out(plan.preseed)
    if not yes and not typer.confirm("Initialise LXD with it?", default=False):
        stdout.print("nothing was changed")
        raise typer.Exit(1)
    result = run_lxd_init(plan)
    state = result.state
    stdout.print(
        f"LXD initialised: root disk on {state.root_pool} ({', '.join(state.pools)}), {state.nic}"
    )
    stdout.print("next: labctl doctor   then: labctl up")
