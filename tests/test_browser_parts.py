"""The browser driver's parts that need no browser: finding one, its flags, the websocket
client's framing, and how one browser is shared by a class (with a stand-in for the browser)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.host.browser import process
from labctl.host.browser.discover import BrowserExecutable, find_browser
from labctl.host.browser.errors import BrowserError, BrowserUnavailableError
from labctl.host.browser.page import WaitFor
from labctl.host.browser.shared import SharedBrowser, VisitRequest
from labctl.host.browser.websocket import WebSocket

# --- discovery ---------------------------------------------------------------------------------


def _which(found: dict[str, str]):
    return lambda name: found.get(name)


def test_labctl_browser_wins_then_path_in_order() -> None:
    found = {"chromium": "/usr/bin/chromium", "google-chrome": "/opt/google/chrome/chrome"}
    assert find_browser({}, platform="linux", which=_which(found)).path == Path("/usr/bin/chromium")
    chosen = find_browser(
        {"LABCTL_BROWSER": "google-chrome"}, platform="linux", which=_which(found)
    )
    assert chosen.path == Path("/opt/google/chrome/chrome")


def test_a_labctl_browser_that_is_not_there_is_named_not_replaced() -> None:
    found = {"chromium": "/usr/bin/chromium"}
    with pytest.raises(BrowserUnavailableError, match="LABCTL_BROWSER=/nope/chrome is not"):
        find_browser({"LABCTL_BROWSER": "/nope/chrome"}, platform="linux", which=_which(found))


def test_labctl_browser_none_turns_it_off() -> None:
    found = {"chromium": "/usr/bin/chromium"}
    with pytest.raises(BrowserUnavailableError, match=r"turned off \(LABCTL_BROWSER=none\)"):
        find_browser({"LABCTL_BROWSER": "none"}, platform="linux", which=_which(found))


def test_no_browser_says_what_to_install() -> None:
    with pytest.raises(BrowserUnavailableError) as caught:
        find_browser({}, platform="linux", which=_which({}))
    assert "no Chromium, Chrome or Edge found" in caught.value.message
    assert "apt install chromium" in (caught.value.hint or "")


def test_macos_app_bundles_and_windows_install_paths(tmp_path: Path) -> None:
    app = tmp_path / "Applications" / "Google Chrome.app" / "Contents" / "MacOS" / "Google Chrome"
    app.parent.mkdir(parents=True)
    app.write_text("")
    app.chmod(0o755)
    assert find_browser({}, platform="darwin", which=_which({}), home=tmp_path).path == app
    edge = tmp_path / "pf" / "Microsoft" / "Edge" / "Application" / "msedge.exe"
    edge.parent.mkdir(parents=True)
    edge.write_text("")
    edge.chmod(0o755)
    found = find_browser({"PROGRAMFILES": str(tmp_path / "pf")}, platform="win32", which=_which({}))
    assert found.path == edge


def test_ubuntus_chromium_browser_script_is_a_snap(tmp_path: Path) -> None:
    script = tmp_path / "chromium-browser"
    script.write_text('#!/bin/sh\nexec /snap/bin/chromium "$@"\n')
    script.chmod(0o755)
    debian = tmp_path / "chromium"
    debian.write_text('#!/bin/sh\nexec /usr/lib/chromium/chromium "$@"\n')
    debian.chmod(0o755)
    assert find_browser({}, platform="linux", which=_which({"chromium": str(script)})).snap
    assert not find_browser({}, platform="linux", which=_which({"chromium": str(debian)})).snap


def test_flags_no_sandbox_only_as_root_and_the_lab_mapped(tmp_path: Path) -> None:
    rules = ["MAP alvin.xyz 10.0.0.4", "MAP www.alvin.xyz 10.0.0.4"]
    user = process.browser_args(tmp_path, transport="pipe", resolver_rules=rules, as_root=False)
    root = process.browser_args(tmp_path, transport="websocket", resolver_rules=[], as_root=True)
    assert "--no-sandbox" not in user and "--no-sandbox" in root
    assert "--remote-debugging-pipe" in user and "--remote-debugging-port=0" in root
    assert "--host-resolver-rules=MAP alvin.xyz 10.0.0.4, MAP www.alvin.xyz 10.0.0.4" in user
    assert f"--user-data-dir={tmp_path}" in user and "--headless" in user
    assert not [a for a in root if a.startswith("--host-resolver-rules")]


def test_a_snap_browser_gets_its_profile_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    profile = process._profile_dir(BrowserExecutable(Path("/snap/bin/chromium"), snap=True))
    try:
        assert profile.parent == tmp_path / "snap" / "chromium" / "common"
    finally:
        profile.rmdir()


# --- websocket framing -------------------------------------------------------------------------


def _server_frame(payload: bytes, opcode: int = 0x1, final: bool = True) -> bytes:
    head = bytes([(0x80 if final else 0) | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + len(payload).to_bytes(2, "big") + payload
    return head + bytes([127]) + len(payload).to_bytes(8, "big") + payload


def _read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    reader = sock.makefile("rb")
    first, second = reader.read(2)
    assert second & 0x80, "a client must mask every frame (RFC 6455 5.3)"
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(reader.read(2), "big")
    elif length == 127:
        length = int.from_bytes(reader.read(8), "big")
    mask = reader.read(4)
    data = reader.read(length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [5, 300, 70_000])
def test_websocket_frames_both_ways_at_every_length_encoding(size: int) -> None:
    ours, theirs = socket.socketpair()
    client = WebSocket(ours)
    text = ("é" * size)[:size]
    client.send(text)
    opcode, got = _read_client_frame(theirs)
    assert opcode == 0x1 and got.decode() == text
    # a ping is answered, a fragmented message is joined, close ends it
    theirs.sendall(_server_frame(b"hi", opcode=0x9))
    theirs.sendall(_server_frame(b'{"a":', final=False))
    theirs.sendall(_server_frame(text.encode(), opcode=0x0))
    assert client.receive() == '{"a":' + text
    assert _read_client_frame(theirs) == (0xA, b"hi")
    theirs.sendall(_server_frame(b"", opcode=0x8))
    assert client.receive() is None
    ours.close()
    theirs.close()


# --- one browser for a class -------------------------------------------------------------------


class FakeBrowser:
    def __init__(self, rules: list[str]) -> None:
        self.rules = rules
        self.closed = False
        self.running = True

    def close(self) -> None:
        self.closed = True


class Starter:
    def __init__(self, fail: Exception | None = None) -> None:
        self.started: list[FakeBrowser] = []
        self.fail = fail

    def __call__(self, rules: list[str]) -> FakeBrowser:
        if self.fail is not None:
            raise self.fail
        browser = FakeBrowser(rules)
        self.started.append(browser)
        return browser


@pytest.fixture
def no_pages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Visits recorded instead of made: (url, rules of the browser that made it)."""
    seen: list[tuple[str, list[str]]] = []

    def fake_visit(cdp, url, wait_for, *, timeout):
        seen.append((url, cdp.rules))
        return url

    monkeypatch.setattr("labctl.host.browser.shared.visit", fake_visit)
    monkeypatch.setattr(FakeBrowser, "cdp", property(lambda self: self), raising=False)
    return seen


def _visit(shared: SharedBrowser, lab: str, results: dict[str, object]) -> None:
    try:
        results[lab] = shared.visit_all(
            lab,
            [f"MAP {lab}.lab 10.0.0.{len(results) + 1}"],
            [VisitRequest(f"http://{lab}.lab/", WaitFor(), 5)],
        )
    except LabctlError as exc:
        results[lab] = exc


def test_a_class_shares_one_browser_started_with_every_students_rules(no_pages) -> None:
    starter = Starter()
    labs = [f"s{i}" for i in range(6)]
    results: dict[str, object] = {}
    with SharedBrowser(labs, start=starter, gather=30) as shared:  # type: ignore[arg-type]
        threads = [threading.Thread(target=_visit, args=(shared, lab, results)) for lab in labs[:5]]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        assert starter.started == []  # s5 has not asked yet: nobody starts the browser
        shared.withdraw("s5")  # s5's lab could not be checked
        for thread in threads:
            thread.join(10)
    assert len(starter.started) == 1
    assert sorted(r.split()[1] for r in starter.started[0].rules) == [f"s{i}.lab" for i in range(5)]
    assert {url for url, _ in no_pages} == {f"http://{lab}.lab/" for lab in labs[:5]}
    assert starter.started[0].closed  # leaving the with closes it


def test_a_lab_that_comes_after_the_gathering_gets_its_own_browser(no_pages) -> None:
    starter = Starter()
    results: dict[str, object] = {}
    with SharedBrowser(["early", "late"], start=starter, gather=0.2) as shared:  # type: ignore[arg-type]
        _visit(shared, "early", results)  # waits 0.2 s for "late", then starts without it
        _visit(shared, "late", results)
    assert len(starter.started) == 2
    assert [b.rules for b in starter.started] == [
        ["MAP early.lab 10.0.0.1"],
        ["MAP late.lab 10.0.0.2"],
    ]
    assert all(b.closed for b in starter.started)


def test_no_browser_is_every_labs_error_and_none_is_started_twice(no_pages) -> None:
    starter = Starter(fail=BrowserUnavailableError("no Chromium, Chrome or Edge found"))
    results: dict[str, object] = {}
    with SharedBrowser(["a", "b"], start=starter) as shared:  # type: ignore[arg-type]
        threads = [threading.Thread(target=_visit, args=(shared, lab, results)) for lab in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert all(isinstance(r, BrowserUnavailableError) for r in results.values()), results
    assert no_pages == []


def test_closing_while_labs_wait_ends_their_wait(no_pages) -> None:
    starter = Starter()
    results: dict[str, object] = {}
    shared = SharedBrowser(["a", "b"], start=starter, gather=60)  # type: ignore[arg-type]
    thread = threading.Thread(target=_visit, args=(shared, "a", results))
    thread.start()
    time.sleep(0.2)
    shared.close()  # e.g. Ctrl-C in the CLI
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(results["a"], BrowserError) and starter.started == []
