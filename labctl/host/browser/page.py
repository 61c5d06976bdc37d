"""One page visit: open a URL in a new window, wait until it rendered what the lab names, let the
network settle, and take a screenshot; report what a person looking at it would need to know.

A new *window* per visit, never a tab: headless Chromium does not paint background tabs, so a
screenshot of one hangs or comes out without its images. "Rendered" is named by the lab (a CSS
selector or a text): a generic wait shoots a single-page app's loading skeleton. After that, the
network must be quiet for a moment, because an app's images often start loading only once it
rendered (a CSS background). Failed sub-requests and console errors are recorded, never judged
here: an app calling an absent API is normal in a lab.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Final

from labctl.host.browser.cdp import CdpConnection, Event
from labctl.host.browser.errors import BrowserError
from labctl.host.browser.process import WINDOW

QUIET: Final = 0.5  # seconds without network activity that count as "settled"
SETTLE_LIMIT: Final = 5.0  # at most this long after "ready": a streaming page never settles
ERROR_PAGE_SETTLE: Final = 2.0  # the browser's own error page needs no more
POLL: Final = 0.1
SCREENSHOT_TIMEOUT: Final = 20.0
TEXT_KEPT: Final = 300  # characters of the page's text kept for reasons and reports
KEPT: Final = 20  # failed requests, console errors and exceptions kept per page


@dataclass(frozen=True)
class WaitFor:
    """What "rendered" means: a CSS selector that matches, or a text the page shows; neither:
    the page loaded and shows some text."""

    selector: str | None = None
    text: str | None = None
    # texts that say the page will never become the app (nginx's welcome page), in its title or
    # its first lines: stop waiting
    give_up_titles: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.selector is not None:
            return self.selector
        if self.text is not None:
            return f"the text {self.text!r}"
        return "any text on the page"

    def expression(self) -> str:
        """JavaScript that says "yes" (rendered), "no" (not yet) or "never" (give up)."""
        if self.selector is not None:
            ready = f"!!document.querySelector({json.dumps(self.selector)})"
        elif self.text is not None:
            ready = f"!!document.body && document.body.innerText.includes({json.dumps(self.text)})"
        else:
            ready = (
                "document.readyState === 'complete' && !!document.body && "
                "document.body.innerText.trim().length > 0"
            )
        never = json.dumps(list(self.give_up_titles))
        head = "document.title + ' ' + (document.body ? document.body.innerText.slice(0, 200) : '')"
        return f"{never}.some(t => ({head}).includes(t)) ? 'never' : (({ready}) ? 'yes' : 'no')"


@dataclass(frozen=True)
class FailedRequest:
    url: str
    error: str


@dataclass(frozen=True)
class PageVisit:
    url: str
    status: int | None = None  # the main document's HTTP status; None: no HTTP answer
    status_text: str = ""
    server: str = ""  # its Server header ("nginx/1.22.1")
    error: str = ""  # the browser's navigation error ("net::ERR_CONNECTION_REFUSED")
    ready: bool = False
    ready_after: float | None = None  # seconds from asking for the page to "rendered"
    settled: bool = False
    invalid_wait: str = ""  # the selector is not valid CSS: the browser's message
    title: str = ""
    text: str = ""
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[FailedRequest] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: bytes | None = None
    seconds: float = 0.0


@dataclass
class _Watch:
    """What the page's events said so far."""

    inflight: dict[str, str] = field(default_factory=dict)  # requestId -> url
    urls: dict[str, str] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # requestId -> response
    last_activity: float = field(default_factory=time.monotonic)
    exceptions: list[str] = field(default_factory=list)
    failed: list[FailedRequest] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    gone: bool = False

    def take(self, event: Event) -> None:
        method, params = event["method"], event["params"]
        request = str(params.get("requestId", ""))
        if method == "Network.requestWillBeSent":
            url = str(params.get("request", {}).get("url", ""))
            self.urls[request] = url
            if not url.startswith("data:"):
                self.inflight[request] = url
                self.last_activity = time.monotonic()
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            status = response.get("status")
            if params.get("type") == "Document":
                self.documents[request] = response
            elif isinstance(status, int) and status >= 400 and not _is_favicon(response):
                self._keep(
                    self.failed, FailedRequest(str(response.get("url", "?")), f"HTTP {status}")
                )
        elif method == "Network.loadingFinished":
            self._done(request)
        elif method == "Network.loadingFailed":
            self._done(request)
            error = str(params.get("errorText", "failed"))
            if params.get("canceled"):
                error += " (canceled)"
            self._keep(self.failed, FailedRequest(self.urls.get(request, "?"), error))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description") or details.get("text", "")
            self._keep(self.exceptions, str(thrown).splitlines()[0] if thrown else "exception")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = params.get("args", [])
            first = args[0] if args else {}
            self._keep(self.console, str(first.get("value", first.get("description", ""))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            url = entry.get("url")
            self._keep(self.console, f"{entry.get('text', '')}" + (f" ({url})" if url else ""))
        elif method in ("Inspector.detached", "Inspector.targetCrashed"):
            self.gone = True

    def _done(self, request: str) -> None:
        if self.inflight.pop(request, None) is not None:
            self.last_activity = time.monotonic()

    @staticmethod
    def _keep(kept: list[Any], item: Any) -> None:
        if len(kept) < KEPT:
            kept.append(item)

    def quiet_for(self, now: float) -> float:
        return 0.0 if self.inflight else now - self.last_activity


def visit(
    cdp: CdpConnection, url: str, wait_for: WaitFor, *, timeout: float, screenshot: bool = True
) -> PageVisit:
    """Open `url` in a new window of the browser behind `cdp` and report what it showed."""
    started = time.monotonic()
    target = cdp.call(
        "Target.createTarget",
        {"url": "about:blank", "newWindow": True, "width": WINDOW[0], "height": WINDOW[1]},
    )["targetId"]
    try:
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        events = cdp.subscribe(session)
        try:
            return _visit(cdp, session, events, url, wait_for, started, timeout, screenshot)
        finally:
            cdp.unsubscribe(session)
    finally:
        with contextlib.suppress(BrowserError):
            cdp.call("Target.closeTarget", {"targetId": target}, timeout=5.0)


def _visit(
    cdp: CdpConnection,
    session: str,
    events: queue.Queue[Event | None],
    url: str,
    wait_for: WaitFor,
    started: float,
    timeout: float,
    screenshot: bool,
) -> PageVisit:
    def call(method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return cdp.call(method, params, session=session, **kw)

    for domain in ("Page", "Network", "Runtime", "Log"):
        call(f"{domain}.enable")
    call(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    watch = _Watch()
    deadline = started + timeout
    error = ""
    loader = ""
    navigated_at = time.monotonic()
    try:
        navigated = call("Page.navigate", {"url": url}, timeout=max(1.0, deadline - navigated_at))
        error = str(navigated.get("errorText", ""))
        loader = str(navigated.get("loaderId", ""))
    except BrowserError:
        if cdp.closed:
            raise
        error = f"no answer within {timeout:g} s"  # the server took the request and went silent
    ready, ready_at, invalid = False, None, ""
    settle_by = deadline
    if error:
        settle_by = min(deadline, time.monotonic() + ERROR_PAGE_SETTLE)
    next_poll = 0.0
    failed_document = False  # an HTTP error page (502, 404) never becomes the app: no wait
    while not watch.gone:
        now = time.monotonic()
        if not failed_document and _http_error(watch.documents.get(loader)):
            failed_document = True
            settle_by = min(settle_by, now + ERROR_PAGE_SETTLE)
        if now >= settle_by:
            break
        if failed_document and watch.quiet_for(now) >= QUIET:
            break
        if not error and not failed_document and not ready and now >= next_poll:
            state, invalid = _ready(call, wait_for)
            ready = state == "yes"
            next_poll = now + POLL
            if invalid:
                break
            if state == "never":
                failed_document = True
                settle_by = min(settle_by, now + ERROR_PAGE_SETTLE)
            if ready:
                ready_at = now - navigated_at
                settle_by = min(deadline, now + SETTLE_LIMIT)
        if (ready or error or failed_document) and watch.quiet_for(now) >= QUIET:
            break
        _drain(events, watch, until=min(settle_by, now + POLL))
    settled = watch.quiet_for(time.monotonic()) >= QUIET
    _drain(events, watch, until=time.monotonic())
    if watch.gone:
        raise BrowserError(f"the browser's page for {url} crashed or closed")
    document = watch.documents.get(loader) or next(iter(watch.documents.values()), {})
    title, text = _title_and_text(call)
    image = _screenshot(call) if screenshot else None
    headers = {str(k).lower(): str(v) for k, v in (document.get("headers") or {}).items()}
    status = document.get("status")
    return PageVisit(
        url=url,
        status=int(status) if isinstance(status, int | float) and not error else None,
        status_text=str(document.get("statusText", "")),
        server=headers.get("server", ""),
        error=error,
        ready=ready,
        ready_after=ready_at,
        settled=settled,
        invalid_wait=invalid,
        title=title,
        text=text,
        exceptions=watch.exceptions,
        failed_requests=watch.failed,
        console_errors=watch.console,
        screenshot=image,
        seconds=time.monotonic() - started,
    )


def _is_favicon(response: dict[str, Any]) -> bool:
    # Browsers ask every site for one; a lab app without it is not worth a line in a report.
    return str(response.get("url", "")).endswith("/favicon.ico")


def _http_error(document: dict[str, Any] | None) -> bool:
    status = (document or {}).get("status")
    return isinstance(status, int | float) and not 200 <= status < 300


def _drain(events: queue.Queue[Event | None], watch: _Watch, *, until: float) -> None:
    """Take the page's events until `until` (at least the ones already queued)."""
    while True:
        remaining = until - time.monotonic()
        try:
            event = events.get(timeout=remaining) if remaining > 0 else events.get_nowait()
        except queue.Empty:
            return
        if event is None:
            watch.gone = True
            return
        watch.take(event)


def _ready(call: Any, wait_for: WaitFor) -> tuple[str, str]:
    """("yes" | "no" | "never", why the selector is invalid); a page between documents: "no"."""
    try:
        answer = call(
            "Runtime.evaluate",
            {"expression": wait_for.expression(), "returnByValue": True},
            timeout=10.0,
        )
    except BrowserError:
        return "no", ""  # e.g. "Execution context was destroyed" during a redirect
    details = answer.get("exceptionDetails")
    if details:
        description = str(details.get("exception", {}).get("description", ""))
        if wait_for.selector is not None and "is not a valid selector" in description:
            return "no", description.splitlines()[0]
        return "no", ""
    return str(answer.get("result", {}).get("value", "no")), ""


def _title_and_text(call: Any) -> tuple[str, str]:
    expression = (
        "JSON.stringify([document.title, document.body ? document.body.innerText.slice(0, "
        f"{TEXT_KEPT * 4}) : ''])"
    )
    try:
        answer = call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, timeout=10.0
        )
        title, text = json.loads(answer["result"]["value"])
    except (BrowserError, KeyError, TypeError, ValueError):
        return "", ""
    return str(title).strip(), " ".join(str(text).split())[:TEXT_KEPT]


def _screenshot(call: Any) -> bytes | None:
    try:
        call("Page.bringToFront", timeout=5.0)
        shot = call(
            "Page.captureScreenshot",
            {"format": "png", "fromSurface": True},
            timeout=SCREENSHOT_TIMEOUT,
        )
        return base64.b64decode(shot["data"])
    except (BrowserError, KeyError, ValueError):
        return None
