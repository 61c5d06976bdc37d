"""The `browser` check: the student's domain opened in a real headless browser, as their own
browser would show it, with a screenshot of every page.

The browser asks for `http://<domain>/` (and lab.yaml's `browser.paths`), and a resolver rule
sends the domain and its aliases to the student's LB (no hosts file needed; a remote LB works
too). A page passes when its document is 2xx, what lab.yaml calls "rendered" shows up, and no
uncaught exception was thrown in it. Failed sub-requests and console errors are kept for the
report but never fail the check: the course's app calls an API that is not part of the lab.
No usable browser here: the check is skipped, with what to install.
"""

from __future__ import annotations

import http
import re
from pathlib import Path
from typing import Final

from labctl.errors import LabctlError
from labctl.host.browser.errors import BrowserError, BrowserUnavailableError
from labctl.host.browser.page import PageVisit, WaitFor
from labctl.host.browser.shared import VisitRequest
from labctl.model import Lab
from labctl.ops.checks.base import Screenshot, Target, Verdict

HELLO_TEXT: Final = "hello from "  # the builtin hello app's answer (cloud-init/hello/server.js)
WELCOME: Final = "Welcome to nginx"
# net::ERR_... codes a student meets, in words; the LB address is added where it helps.
NET_ERRORS: Final = {
    "ERR_CONNECTION_REFUSED": "connection refused",
    "ERR_CONNECTION_TIMED_OUT": "no answer (connection timed out)",
    "ERR_TIMED_OUT": "no answer (timed out)",
    "ERR_ADDRESS_UNREACHABLE": "address unreachable",
    "ERR_EMPTY_RESPONSE": "the server closed the connection without answering",
    "ERR_CONNECTION_RESET": "connection reset",
    "ERR_CONNECTION_CLOSED": "connection closed",
    "ERR_NAME_NOT_RESOLVED": "the name did not resolve",
    "ERR_TOO_MANY_REDIRECTS": "too many redirects",
    "ERR_INVALID_HTTP_RESPONSE": "not a valid HTTP answer",
}


def wait_for(lab: Lab) -> WaitFor:
    """What "rendered" means for this lab: lab.yaml's, else the hello app's text, else any text."""
    chosen = lab.browser.wait_for
    never = (WELCOME,)  # nginx's default site will not become the app: no need to wait for it
    if chosen is not None:
        return WaitFor(chosen.selector, chosen.text, never)
    if lab.app.source.builtin == "hello":
        return WaitFor(text=HELLO_TEXT, give_up_titles=never)
    return WaitFor(give_up_titles=never)


def resolver_rules(lab: Lab, lb_ip: str) -> list[str]:
    address = f"[{lb_ip}]" if ":" in lb_ip else lb_ip
    return [f"MAP {name} {address}" for name in lab.server_names]


def browser(target: Target) -> Verdict:
    lab = target.ctx.lab
    run = target.browser
    if not lab.browser.enabled:
        return Verdict(False, "turned off in lab.yaml (browser: {enabled: false})", skipped=True)
    if run is None:  # ops/check.py always gives one; a caller that did not asked for no browser
        return Verdict(False, "no browser for this run", skipped=True)
    lb_ip = target.lab_ip
    if lb_ip is None:
        run.shared.withdraw(lab.name)
        return Verdict(False, target.unreachable(lab.lb_vm) or "the LB has no address")
    waiting = wait_for(lab)
    base = lab.url.rstrip("/")
    requests = [
        VisitRequest(base + path, waiting, lab.browser.timeout) for path in lab.browser.paths
    ]
    try:
        visits = run.shared.visit_all(lab.name, resolver_rules(lab, lb_ip), requests)
    except BrowserUnavailableError as exc:
        return Verdict(False, f"no browser here: {exc.message}", skipped=True)
    except BrowserError as exc:
        return Verdict(False, f"the browser failed: {exc.message}", skipped=True)
    paths = lab.browser.paths
    folder = run.shots / lab.name
    saved = [
        _save(folder, path, slug, v)
        for path, slug, v in zip(paths, _slugs(paths), visits, strict=True)
    ]
    screenshots = tuple(shot for shot in saved if shot is not None)
    verdicts = [judge(v, waiting, lab.browser.timeout, f"{lb_ip}:{lab.lb.port}") for v in visits]
    failing = [(path, why) for path, (ok, why) in zip(paths, verdicts, strict=True) if not ok]
    shown = failing or [(path, why) for path, (_, why) in zip(paths, verdicts, strict=True)]
    return Verdict(not failing, _per_path(shown, len(paths)), screenshots=screenshots)


def _per_path(shown: list[tuple[str, str]], pages: int) -> str:
    """One reason per distinct verdict, naming its paths: "/, /movies: 502 Bad Gateway"."""
    if pages == 1:
        return shown[0][1]
    by_reason: dict[str, list[str]] = {}
    for path, why in shown:
        by_reason.setdefault(why, []).append(path)
    return "; ".join(f"{', '.join(paths)}: {why}" for why, paths in by_reason.items())


def judge(visit: PageVisit, waiting: WaitFor, timeout: float, lb: str) -> tuple[bool, str]:
    """(passed, why) for one page, in words a student understands."""
    if visit.error and not visit.error.startswith("net::"):
        return False, f"{visit.error} ({lb})"
    if visit.error:
        code = visit.error.removeprefix("net::")
        words = NET_ERRORS.get(code)
        if words is None:
            return False, f"the browser could not open it ({visit.error})"
        return False, f"{words} ({lb})"
    status = visit.status
    if status is None:
        return False, "no HTTP answer"
    if not 200 <= status < 300:
        return False, _http_error(visit)
    if WELCOME in visit.title or WELCOME in visit.text[:200]:
        return False, "nginx's welcome page, not the app"
    if visit.exceptions:
        more = f" (and {len(visit.exceptions) - 1} more)" if len(visit.exceptions) > 1 else ""
        return False, f"uncaught exception in the page: {visit.exceptions[0]}{more}"
    if visit.invalid_wait:
        return (
            False,
            f"lab.yaml's browser.wait_for.selector is not valid CSS ({visit.invalid_wait})",
        )
    if not visit.ready:
        shown = f"; it shows {visit.text[:40]!r}" if visit.text else ""
        return (
            False,
            f"rendered nothing within {timeout:g} s (waiting for {waiting.describe()}){shown}",
        )
    noted = _noted(visit)
    after = f"{visit.ready_after:.1f} s" if visit.ready_after is not None else "time"
    return True, f"{waiting.describe()} rendered in {after}{noted}"


def _http_error(visit: PageVisit) -> str:
    status = visit.status or 0
    try:
        phrase = visit.status_text or http.HTTPStatus(status).phrase
    except ValueError:
        phrase = visit.status_text
    by = " from nginx" if "nginx" in visit.server.lower() else ""
    return f"{status} {phrase}".strip() + by


def _noted(visit: PageVisit) -> str:
    counts = [
        (len(visit.failed_requests), "failed request"),
        (len(visit.console_errors), "console error"),
    ]
    parts = [f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts if n]
    return f" ({', '.join(parts)} noted)" if parts else ""


def _save(folder: Path, path: str, slug: str, visit: PageVisit) -> Screenshot | None:
    if visit.screenshot is None:
        return None
    file = folder / f"{slug}.png"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        file.write_bytes(visit.screenshot)
    except OSError as exc:
        raise LabctlError(f"cannot save the screenshot {file}: {exc.strerror}") from None
    return Screenshot(path, str(file))


def _slugs(paths: list[str]) -> list[str]:
    """A file name for each page's path: "/" is home, "/movies/1" is movies-1; never twice."""
    slugs: list[str] = []
    for path in paths:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", path).strip("-.")[:80] or "home"
        while slug in slugs:
            slug += "-2"
        slugs.append(slug)
    return slugs
