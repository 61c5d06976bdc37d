"""The built-in checks that look at the lab as the student left it: the app under pm2, the
domain, the LB's answer, the proxy, the load balancing. Each takes the `Target` and returns a
`Verdict` with a short reason. An answer counts as the app's only by something the student's
nginx cannot forge: this run's check file (checkfile.py), or, for an app that cannot serve one,
the answers stopping when the apps stop (stopping.py, which stops apps for a moment). The checks
that stop things to grade the failover and pm2 are in disruptive.py."""

from __future__ import annotations

from collections import Counter
from typing import Final

from labctl.errors import CommandTimeoutError, EngineError
from labctl.host.probes import HttpPage, fetch
from labctl.model import Vm
from labctl.ops.checks.base import Target, Verdict, direct_page
from labctl.ops.checks.checkfile import check_file, domain_sample, not_the_app
from labctl.ops.checks.evidence import DomainSample, shown
from labctl.ops.checks.nginxconf import for_domain, server_blocks
from labctl.ops.checks.stopping import stop_proof

NGINX_DUMP_COMMAND: Final = ["sudo", "nginx", "-T"]  # tests the config and prints all of it
WELCOME_PAGE: Final = "Welcome to nginx"  # Ubuntu's default site (/var/www/html)
HELLO_PAGE: Final = "hello from "  # the builtin app's answer (cloud-init/hello/server.js)


def app_online(target: Target) -> Verdict:
    """pm2 runs the app online on each app VM, and what answers on its port is that app: it
    serves this run's check file, and the VM says pm2's process holds the port."""
    lab = target.ctx.lab
    check = check_file(target)
    problems: list[str] = []
    for vm in lab.app_vms:
        if why := target.unreachable(vm):
            problems.append(why)
            continue
        status = target.vm_status(vm)
        mine = [p for p in status.pm2 or [] if p.name == lab.app.name]
        if status.pm2 is None:
            problems.append(f"{vm.name}: pm2 not readable ({'; '.join(status.problems) or '?'})")
        elif not mine:
            problems.append(f"{vm.name}: pm2 has no process {lab.app.name!r}")
        elif any(p.status != "online" for p in mine):
            states = "/".join(sorted({p.status for p in mine}))
            problems.append(f"{vm.name}: {lab.app.name} is {states}")
        elif why := _listener_problem(target, vm, proven_otherwise=check is not None):
            problems.append(f"{vm.name}: {why}")
        elif check is not None:
            if why := check.direct.get(vm.name, ""):
                problems.append(f"{vm.name}: {why}")
        else:
            page = direct_page(target, vm.name)
            if page.status is None or page.status >= 500:
                problems.append(f"{vm.name}: port {lab.app.port}: {_answer(page)}")
    if problems:
        return Verdict(False, "; ".join(problems))
    names = ", ".join(vm.name for vm in lab.app_vms)
    proof = "serves labctl's check file" if check is not None else "holds its port"
    return Verdict(True, f"{lab.app.name} online under pm2 on {names}; it {proof}")


def _listener_problem(target: Target, vm: Vm, *, proven_otherwise: bool) -> str:
    """Why the VM's listener on app.port is not pm2's app ('' when it is). A VM whose report
    does not say (an older labctl-vm-status) passes only if the check file proves the app."""
    lab = target.ctx.lab
    port, name = lab.app.port, lab.app.name
    listeners = target.vm_status(vm).app_listeners
    if listeners is None:
        if proven_otherwise:
            return ""
        return (
            f"cannot tell what listens on port {port}: this VM's labctl-vm-status does not say "
            f"(made by an older labctl? `labctl reset {vm.name} --rebuild`)"
        )
    if not listeners:
        return f"nothing listens on port {port}"
    foreign = next((held for held in listeners if name not in held.pm2), None)
    if foreign is not None:
        return f"port {port} is held by pid {foreign.pid} ({foreign.command}), not by pm2's {name}"
    return ""


def domain_resolves(target: Target) -> Verdict:
    lab = target.ctx.lab
    lb_ip = target.lab_ip
    got = target.ctx.resolver(lab.domain)
    if lb_ip is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    if lb_ip in got:
        return Verdict(True, f"{lab.domain} resolves to the LB {lb_ip}")
    return Verdict(
        False, f"{lab.domain} resolves to {', '.join(got) or 'nothing'}, not the LB {lb_ip}"
    )


def lb_serves(target: Target) -> Verdict:
    """The LB answers the domain (as Host) with 200 and the app's page, not nginx's own, and
    the answers are the app's: its check file comes through, or (no check file) they stop when
    every app stops."""
    lab = target.ctx.lab
    page = lb_page(target)
    if page is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    url = f"http://{lab.domain}/"
    if page.status != 200:
        return Verdict(False, f"{url} via the LB: {_answer(page)}")
    if WELCOME_PAGE in page.body:
        return Verdict(False, f"{url} gives nginx's welcome page, not the app")
    if not is_app_page(target, page):
        first = " ".join(page.body.split())[:50]
        return Verdict(False, f"{url} answers 200 but not the app's page: {first!r}")
    if check_file(target) is None:
        proof = stop_proof(target)
        if proof.error:
            return Verdict(
                False, f"{url}: cannot stop the apps to check the answers: {proof.error}"
            )
        if proof.served_all_down:
            return Verdict(False, f"{url} answers 200 with every app stopped: not the app's answer")
        return Verdict(
            True, f"{url} answers 200 with the app's page, and not with every app stopped"
        )
    if why := _no_tokens(target):
        return Verdict(False, f"{url} answers 200, but {why}")
    return Verdict(
        True, f"{url} answers 200 with the app's page; the app's check file comes through"
    )


def reverse_proxy(target: Target) -> Verdict:
    """`nginx -t` passes, a server block for the student's domain proxies somewhere, and requests
    to the domain do reach the app (its check file comes through, or the answers stop when
    every app stops)."""
    lab = target.ctx.lab
    lb = lab.lb_vm
    if why := target.unreachable(lb):
        return Verdict(False, why)
    try:
        result = target.ctx.engine.exec(
            lab.instance_name(lb), NGINX_DUMP_COMMAND, timeout=lab.waits.check
        )
    except CommandTimeoutError:
        return Verdict(False, f"nginx -T on {lb.name} did not answer in {lab.waits.check:.0f}s")
    except EngineError as exc:
        return Verdict(False, f"nginx -T on {lb.name}: {exc.message}")
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        error = next((ln for ln in lines if "[emerg]" in ln), lines[-1] if lines else "failed")
        return Verdict(False, f"nginx -t fails: {error.removeprefix('nginx: ')}")
    blocks = server_blocks(result.stdout)
    mine = for_domain(blocks, lab.domain)
    if not mine:
        found = sorted({name for block in blocks for name in block.names}) or ["none"]
        return Verdict(
            False, f"no server block has server_name {lab.domain} (found: {', '.join(found)})"
        )
    passes = [p for block in mine for p in block.proxy_passes]
    if not passes:
        return Verdict(False, f"the server for {lab.domain} has no proxy_pass")
    if why := _not_proxied(target):
        return Verdict(
            False, f"{lab.domain} has a proxy_pass, but is not proxied to the app: {why}"
        )
    return Verdict(True, f"nginx -t ok; {lab.domain} proxies to {', '.join(sorted(set(passes)))}")


def _not_proxied(target: Target) -> str:
    """Why requests to the domain are not shown to reach the app ('' when they are)."""
    check = check_file(target)
    if check is None:
        proof = stop_proof(target)
        if proof.error:
            return f"cannot stop the apps to check: {proof.error}"
        if proof.served_all_down:
            return f"with every app stopped it still answers ({shown(proof.all_down)})"
        if not any(proof.served_alone(vm.name) for vm in target.ctx.lab.app_vms):
            return "it never answered 200 with an app running"
        return ""
    return _no_tokens(target)


def _no_tokens(target: Target) -> str:
    """Why no app's token came through the domain ('' when one did)."""
    check = check_file(target)
    assert check is not None  # only asked for an app with a check file
    if not check.proven:
        return "no app serves labctl's check file directly (see app-online)"
    sample = domain_sample(target)
    if sample is None:
        return target.unreachable(target.ctx.lab.lb_vm) or "the LB has no address"
    if not sample.tokens:
        return f"labctl's check file never came through ({_instead(sample)})"
    return ""


def _instead(sample: DomainSample) -> str:
    """What the domain answered instead of a token."""
    return not_the_app(sample) if sample.foreign else shown(sample.codes)


def load_balancing(target: Target) -> Verdict:
    """Requests to the domain reach every app backend, each seen by its own answer: its token
    in this run's check file, or (no check file) the domain serving with only that app running."""
    lab = target.ctx.lab
    lb_ip = target.lab_ip
    if lb_ip is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    check = check_file(target)
    if check is None:
        return _balanced_when_stopping(target, lb_ip)
    sample = domain_sample(target)
    assert sample is not None  # a check file and an LB address
    apps = [vm.name for vm in lab.app_vms]
    seen = sample.tokens
    if not check.proven:
        return Verdict(False, "no app serves labctl's check file directly (see app-online)")
    if not seen:
        return Verdict(
            False,
            f"labctl's check file never came through in {sample.requests} request(s) "
            f"({_instead(sample)})",
        )
    got = ", ".join(f"{vm} x {n}" for vm, n in sorted(seen.items()))
    missing = [vm for vm in apps if vm not in seen]
    if missing:
        why = "; ".join(f"{vm}: {check.direct[vm]}" for vm in missing if check.direct.get(vm))
        return Verdict(
            False,
            f"{', '.join(missing)} never answered in {sample.requests} requests (seen: {got})"
            + (f"; {why}" if why else ""),
        )
    return Verdict(True, f"every backend answered with its own check file: {got}")


def _balanced_when_stopping(target: Target, lb_ip: str) -> Verdict:
    lab = target.ctx.lab
    first = fetch(lb_ip, lab.lb.port, lab.domain, timeout=5.0)
    if first.status != 200:  # nothing to tell apart: no need to stop anything
        return Verdict(False, f"no request got 200 (http://{lab.domain}/: {_answer(first)})")
    proof = stop_proof(target)
    if proof.error:
        return Verdict(False, f"cannot stop the apps in turn: {proof.error}")
    if proof.served_all_down:
        return Verdict(
            False,
            f"with every app stopped the domain still answers ({shown(proof.all_down)}): "
            "its answers are not the apps'",
        )
    missing = [vm.name for vm in lab.app_vms if not proof.served_alone(vm.name)]
    if missing:
        alone = "; ".join(f"{vm} alone: {shown(proof.alone.get(vm, Counter()))}" for vm in missing)
        return Verdict(False, f"{', '.join(missing)} never served the domain ({alone})")
    return Verdict(
        True,
        "each app alone serves the domain, none with every app stopped (apps stopped in turn: "
        "no check file for this kind of app)",
    )


def lb_page(target: Target) -> HttpPage | None:
    lab = target.ctx.lab
    lb_ip = target.lab_ip
    return None if lb_ip is None else fetch(lb_ip, lab.lb.port, lab.domain, timeout=5.0)


def is_app_page(target: Target, page: HttpPage) -> bool:
    """The page looks like the app's: the hello app's greeting, or what an app VM serves
    directly. (Looks only: the check file or the stop proof shows it came from the app.)"""
    if target.ctx.lab.app.source.builtin == "hello":
        return page.body.startswith(HELLO_PAGE)
    return any(direct_page(target, vm.name).body == page.body for vm in target.ctx.lab.app_vms)


def _answer(page: HttpPage) -> str:
    return f"HTTP {page.status}" if page.status is not None else (page.error or "no answer")
