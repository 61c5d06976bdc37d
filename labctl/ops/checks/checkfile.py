"""The run's check file: proof that an answer through the domain came from the app itself.

A header such as `X-Labctl-Vm` proves nothing (the student's nginx can add it to a reply it makes
up). So for each `labctl check` run, labctl writes a file named `labctl-check-<random>.txt` holding
a random token of that app VM into the folder the app serves, on every app VM: the built-in hello
app serves such files from its own folder, a `start: serve: DIR` app (pm2 serve) serves DIR. It
asks each app for its file directly (proof the app itself serves it), then through the domain:
a token can only come back through nginx if nginx asked that app for it. Contents are compared,
never only the status (pm2 serve --spa answers index.html with 200 for a missing file). The files
are removed when the run ends. An app started by `script:` or `command:` cannot be made to serve a
file: stopping.py proves its answers another way.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from typing import Final

from labctl.errors import CommandTimeoutError, EngineError, LabctlError
from labctl.host.probes import HttpPage, fetch
from labctl.model import Lab, Vm
from labctl.ops.checks.base import Target, direct_page
from labctl.ops.checks.evidence import CheckFile, DomainSample
from labctl.render.app import APP_DIR, ecosystem_app

CHECK_FILE_PREFIX: Final = "labctl-check-"  # the hello app serves only such names (server.js)
TOKEN_BYTES: Final = 16
# Run as the VM's default user (the app's user): the folder and the file's content are arguments.
WRITE_SCRIPT: Final = 'umask 022 && printf "%s\\n" "$3" > "$1/$2"'
PROBE_TIMEOUT: Final = 5.0
FOREIGN_TEXT: Final = 30  # characters of a reply that is not the app's, quoted in a reason
_LOG = logging.getLogger(__name__)


def served_folder(lab: Lab) -> str | None:
    """The folder on each app VM whose files the app serves as they are (None: no such folder)."""
    if lab.app.source.builtin == "hello":
        return APP_DIR  # server.js serves labctl-check-*.txt from its own folder
    start = lab.app.start
    if start is None or start.serve is None or not lab.app_vms:
        return None
    # The folder pm2 serves, from the very ecosystem labctl gave pm2.
    return str(ecosystem_app(lab, lab.app_vms[0])["env"]["PM2_SERVE_PATH"])


def check_file(target: Target) -> CheckFile | None:
    """This run's check file, written on every app VM on first need (None: the app cannot serve
    one). `remove_check_file` takes it away again."""
    evidence = target.evidence
    if not evidence.file_tried:
        evidence.file_tried = True
        folder = served_folder(target.ctx.lab)
        if folder is not None:
            evidence.check_file = _write(target, folder)
    return evidence.check_file


def remove_check_file(target: Target) -> None:
    """Remove the check file from every VM it was written on; a VM that cannot be reached keeps
    a file of random name nobody will ask for (logged, not a grade)."""
    evidence, lab = target.evidence, target.ctx.lab
    check = evidence.check_file
    if check is None:
        return
    while evidence.written:
        vm = lab.vm(evidence.written.pop())
        if vm is None:
            continue
        name = f"{check.folder}/{check.path.lstrip('/')}"
        try:
            target.ctx.engine.exec(
                lab.instance_name(vm), ["rm", "-f", "--", name], timeout=lab.waits.check
            )
        except LabctlError as exc:
            _LOG.debug("%s: could not remove %s: %s", vm.name, name, exc.message)


def _write(target: Target, folder: str) -> CheckFile:
    lab = target.ctx.lab
    name = f"{CHECK_FILE_PREFIX}{secrets.token_hex(TOKEN_BYTES)}.txt"
    tokens = {vm.name: secrets.token_hex(TOKEN_BYTES) for vm in lab.app_vms}
    direct: dict[str, str] = {}
    for vm in lab.app_vms:
        if why := target.unreachable(vm):
            direct[vm.name] = why
            continue
        target.evidence.written.append(vm.name)  # even a timed-out write may have happened
        direct[vm.name] = _write_one(target, vm, folder, name, tokens[vm.name]) or _direct(
            target, vm, f"/{name}", tokens[vm.name]
        )
    return CheckFile(folder, f"/{name}", tokens, direct)


def _write_one(target: Target, vm: Vm, folder: str, name: str, token: str) -> str:
    """'' once the file is written, else why not."""
    lab = target.ctx.lab
    argv = ["sh", "-c", WRITE_SCRIPT, "labctl-check", folder, name, token]
    try:
        result = target.ctx.engine.exec(lab.instance_name(vm), argv, timeout=lab.waits.check)
    except CommandTimeoutError:
        return f"could not write labctl's check file: no answer within {lab.waits.check:.0f}s"
    except EngineError as exc:
        return f"could not write labctl's check file: {exc.message}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return f"could not write labctl's check file into {folder}: {last}"
    return ""


def _direct(target: Target, vm: Vm, path: str, token: str) -> str:
    """'' when the app on `vm` answers its own token directly, else what its port answered."""
    page = direct_page(target, vm.name, path)
    if page.status == 200 and page.body.strip() == token:
        return ""
    port = target.ctx.lab.app.port
    if page.status is None:
        return f"port {port}: {page.error or 'no answer'}"
    got = f"HTTP {page.status}" + (", other content" if page.status == 200 else "")
    return (
        f"port {port} does not serve labctl's check file ({got}): not the app, or a VM made by "
        f"an older labctl (`labctl reset {vm.name} --rebuild`)"
    )


def ask_domain(
    target: Target,
    lb_ip: str,
    check: CheckFile | None,
    requests: int,
    *,
    timeout: float = PROBE_TIMEOUT,
    until_all_seen: bool = False,
) -> DomainSample:
    """Up to `requests` GETs through the LB with the domain as Host: of the check file (counting
    whose token came back), or of `/` when the app has none. `until_all_seen` stops once every
    app VM's token has been seen."""
    lab = target.ctx.lab
    path = check.path if check is not None else "/"
    wanted = set(check.tokens) if check is not None else set()
    tokens: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    claimed: Counter[str] = Counter()
    foreign, foreign_text = 0, ""
    for _ in range(requests):
        page = fetch(lb_ip, lab.lb.port, lab.domain, path=path, timeout=timeout)
        codes[_code(page)] += 1
        owner = check.owner(page.body) if check is not None and page.status == 200 else None
        if owner is not None:
            tokens[owner] += 1
        elif page.status == 200:
            foreign += 1 if check is not None else 0
            foreign_text = foreign_text or " ".join(page.body.split())[:FOREIGN_TEXT]
            if named := target.backend_of(page.headers):
                claimed[named] += 1
        if page.status is None and not codes.get("200"):
            break  # nothing answers: more requests would only wait longer
        if until_all_seen and wanted and wanted <= set(tokens):
            break
    return DomainSample(sum(codes.values()), tokens, codes, foreign, claimed, foreign_text)


def domain_sample(target: Target) -> DomainSample | None:
    """The run's one sample of the check file through the domain, shared by lb-serves,
    reverse-proxy and load-balancing (None: no check file, or the LB has no address)."""
    evidence = target.evidence
    check, lb_ip = check_file(target), target.lab_ip
    if evidence.sample is None and check is not None and lb_ip is not None:
        requests = 4 * len(target.ctx.lab.app_vms) + 4  # round robin needs N; the rest: retries
        evidence.sample = ask_domain(target, lb_ip, check, requests, until_all_seen=True)
    return evidence.sample


def not_the_app(sample: DomainSample) -> str:
    """What came instead of the check file (nginx answering by itself), with what the answers'
    backend header claimed: a hint, and said to be one."""
    parts = [f"{sample.foreign} x 200 without it"]
    if sample.claimed:
        names = ", ".join(sorted(sample.claimed))
        parts.append(f"a backend header names {names}, which proves nothing")
    if sample.foreign_text:
        parts.append(f"e.g. {sample.foreign_text!r}")
    return "; ".join(parts)


def _code(page: HttpPage) -> str:
    return str(page.status) if page.status is not None else (page.error or "no answer")
