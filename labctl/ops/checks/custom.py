"""lab.yaml's own checks (`checks:`): an HTTP request or a command on a VM, each with a timeout
per attempt and `retry` more attempts (probes.retry_attempts) before it fails."""

from __future__ import annotations

from labctl.errors import CommandTimeoutError, EngineError
from labctl.host.probes import fetch, retry_attempts
from labctl.model import CommandExpect, CustomCheck, HttpExpect
from labctl.ops.checks.base import Target, Verdict


def run_custom(target: Target, check: CustomCheck) -> Verdict:
    def attempt() -> Verdict:
        if check.http is not None:
            return _http(target, check.http, check.timeout)
        assert check.command is not None  # config/load.py: exactly one of http or command
        return _command(target, check.command, check.timeout)

    return retry_attempts(
        attempt,
        lambda verdict: verdict.passed,
        attempts=1 + check.retry,
        interval=check.retry_interval,
        sleep=target.ctx.sleep,
    )


def _http(target: Target, expect: HttpExpect, timeout: float) -> Verdict:
    lab = target.ctx.lab
    vm = lab.vm(expect.vm) if expect.vm else lab.lb_vm
    assert vm is not None  # config/load.py checks the VM exists
    if why := target.unreachable(vm):
        return Verdict(False, why)
    ip = target.ip(vm)
    assert ip is not None
    port = lab.lb.port if expect.vm is None or "app" not in vm.roles else lab.app.port
    shown = f"http://{lab.domain}{expect.path}" + (f" on {vm.name}" if expect.vm else "")
    page = fetch(ip, port, lab.domain, path=expect.path, timeout=timeout)
    if page.status is None:
        return Verdict(False, f"{shown}: {page.error or 'no answer'}")
    if page.status != expect.status:
        return Verdict(False, f"{shown}: HTTP {page.status}, expected {expect.status}")
    if expect.text is not None and expect.text not in page.body:
        return Verdict(False, f"{shown}: the page does not contain {expect.text!r}")
    for name, value in expect.header.items():
        got = page.headers.get(name.lower())
        if got is None:
            return Verdict(False, f"{shown}: no {name} header")
        if value not in got:
            return Verdict(False, f"{shown}: {name} is {got!r}, expected {value!r}")
    return Verdict(True, f"{shown}: HTTP {page.status}")


def _command(target: Target, expect: CommandExpect, timeout: float) -> Verdict:
    lab = target.ctx.lab
    vm = lab.vm(expect.vm)
    assert vm is not None
    if why := target.unreachable(vm):
        return Verdict(False, why)
    try:
        result = target.ctx.engine.exec(
            lab.instance_name(vm), ["sh", "-c", expect.run], timeout=timeout
        )
    except CommandTimeoutError:
        return Verdict(False, f"{vm.name}: no answer within {timeout:.0f}s")
    except EngineError as exc:
        return Verdict(False, f"{vm.name}: {exc.message}")
    output = result.stdout + result.stderr
    last = (output.strip().splitlines() or [""])[-1]
    if result.returncode != expect.exit_code:
        return Verdict(
            False,
            f"{vm.name}: exit {result.returncode}, expected {expect.exit_code}"
            + (f": {last}" if last else ""),
        )
    if expect.output is not None and expect.output not in output:
        return Verdict(
            False,
            f"{vm.name}: output lacks {expect.output!r}" + (f" (last: {last})" if last else ""),
        )
    return Verdict(True, f"{vm.name}: exit {result.returncode}")
