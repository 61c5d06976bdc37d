"""The built-in checks that only look: the app under pm2, the domain, the LB's answer, the proxy's
config, the load balancing. Each takes the `Target` and returns a `Verdict` with a short reason;
the checks that stop things (failover, pm2 resurrect) are in disruptive.py."""

from __future__ import annotations

from collections import Counter
from typing import Final

from labctl.errors import CommandTimeoutError, MultipassError
from labctl.host.probes import HttpPage, fetch
from labctl.ops.checks.base import BACKEND_VM_HEADER, Target, Verdict
from labctl.ops.checks.nginxconf import for_domain, server_blocks

NGINX_DUMP_COMMAND: Final = ["sudo", "nginx", "-T"]  # tests the config and prints all of it
WELCOME_PAGE: Final = "Welcome to nginx"  # Ubuntu's default site (/var/www/html)
HELLO_PAGE: Final = "hello from "  # the builtin app's answer (cloud-init/hello/server.js)


def app_online(target: Target) -> Verdict:
    """pm2 runs the app online on each app VM, and it answers on its port."""
    lab = target.ctx.lab
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
        else:
            page = direct_page(target, vm.name)
            if page.status is None or page.status >= 500:
                problems.append(f"{vm.name}: port {lab.app.port}: {_answer(page)}")
    if problems:
        return Verdict(False, "; ".join(problems))
    names = ", ".join(vm.name for vm in lab.app_vms)
    return Verdict(True, f"{lab.app.name} online under pm2 on {names}")


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
    """The LB answers the domain (as Host) with 200 and the app's page, not nginx's own."""
    lab = target.ctx.lab
    page = lb_page(target)
    if page is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    if page.status != 200:
        return Verdict(False, f"http://{lab.domain}/ via the LB: {_answer(page)}")
    if WELCOME_PAGE in page.body:
        return Verdict(False, f"http://{lab.domain}/ gives nginx's welcome page, not the app")
    if not is_app_page(target, page):
        first = " ".join(page.body.split())[:50]
        return Verdict(False, f"http://{lab.domain}/ answers 200 but not the app's page: {first!r}")
    return Verdict(True, f"http://{lab.domain}/ answers 200 with the app's page")


def reverse_proxy(target: Target) -> Verdict:
    """`nginx -t` passes and a server block for the student's domain proxies somewhere."""
    lab = target.ctx.lab
    lb = lab.lb_vm
    if why := target.unreachable(lb):
        return Verdict(False, why)
    try:
        result = target.ctx.multipass.exec(
            lab.instance_name(lb), NGINX_DUMP_COMMAND, timeout=lab.waits.check
        )
    except CommandTimeoutError:
        return Verdict(False, f"nginx -T on {lb.name} did not answer in {lab.waits.check:.0f}s")
    except MultipassError as exc:
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
    return Verdict(True, f"nginx -t ok; {lab.domain} proxies to {', '.join(sorted(set(passes)))}")


def load_balancing(target: Target) -> Verdict:
    """Requests to the domain reach every app backend."""
    lab = target.ctx.lab
    lb_ip = target.lab_ip
    if lb_ip is None:
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    apps = [vm.name for vm in lab.app_vms]
    seen: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    unnamed = 0
    for _ in range(4 * len(apps) + 4):  # round robin needs len(apps); the rest absorbs retries
        page = fetch(lb_ip, lab.lb.port, lab.domain, timeout=5.0)
        codes[str(page.status) if page.status else page.error] += 1
        if page.status == 200:
            backend = target.backend_of(page.headers)
            if backend is None:
                unnamed += 1
            else:
                seen[backend] += 1
        if set(apps) <= set(seen):
            break
    total = sum(codes.values())
    got = ", ".join(f"{vm} x {n}" for vm, n in sorted(seen.items()))
    if not seen and not codes.get("200"):
        shown = ", ".join(f"{n} x {code}" for code, n in sorted(codes.items()))
        return Verdict(False, f"no request got 200 ({shown})")
    if not seen:
        return Verdict(
            False,
            f"cannot tell which backend answered: no {BACKEND_VM_HEADER} header from the app; "
            "add `add_header X-Lab-Backend $upstream_addr;` to the site",
        )
    missing = [vm for vm in apps if vm not in seen]
    if missing:
        return Verdict(
            False, f"{', '.join(missing)} never answered in {total} requests (seen: {got})"
        )
    return Verdict(True, f"every backend answered: {got}")


def lb_page(target: Target) -> HttpPage | None:
    lab = target.ctx.lab
    lb_ip = target.lab_ip
    return None if lb_ip is None else fetch(lb_ip, lab.lb.port, lab.domain, timeout=5.0)


def direct_page(target: Target, vm_name: str) -> HttpPage:
    lab = target.ctx.lab
    vm = lab.vm(vm_name)
    ip = target.ip(vm) if vm else None
    if ip is None:
        return HttpPage(None, error="no address")
    return fetch(ip, lab.app.port, lab.domain, timeout=5.0)


def is_app_page(target: Target, page: HttpPage) -> bool:
    """The page came from the app: it names an app VM (the hello app), or it is what an app VM
    serves directly."""
    if target.backend_of(page.headers) is not None:
        return True
    if target.ctx.lab.app.source.builtin == "hello":
        return page.body.startswith(HELLO_PAGE)
    return any(direct_page(target, vm.name).body == page.body for vm in target.ctx.lab.app_vms)


def _answer(page: HttpPage) -> str:
    return f"HTTP {page.status}" if page.status is not None else (page.error or "no answer")
