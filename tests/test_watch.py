"""`labctl status --watch`: refreshes in place, paced, bounded by --count, Ctrl-C exits 130."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from labctl.cli.commands import status as status_command
from labctl.cli.main import app
from labctl.cli.watch import watch
from tests.fake_multipass.fixture import FakeMultipass
from tests.test_cli import HELLO


@dataclass
class Report:
    n: int
    healthy: bool = True


def render(out: Console, report: Report) -> None:
    out.print(f"report number {report.n}")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_watch_redraws_each_refresh_in_place_paced_by_start_times() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    clock = Clock()
    reports = iter(Report(i) for i in range(1, 10))

    def refresh() -> Report:
        clock.now += 1.5  # each status call takes 1.5 s
        return next(reports)

    last = watch(console, refresh, render, interval=5, count=3, sleep=clock.sleep, clock=clock)
    assert last.n == 3
    assert clock.sleeps == [3.5, 3.5]  # 5 s from one start to the next; none after the last
    text = out.getvalue()
    for n in (1, 2, 3):
        assert f"report number {n}" in text and f"refresh {n} took 1.5 s; every 5 s" in text
    assert "\x1b[" in text  # the terminal got cursor movement: the frame is redrawn in place


def test_a_slow_refresh_is_followed_at_once_and_the_interval_has_a_floor() -> None:
    clock = Clock()

    def refresh() -> Report:
        clock.now += 7
        return Report(1)

    console = Console(file=io.StringIO(), force_terminal=True)
    watch(console, refresh, render, interval=0.1, count=2, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [0.0]  # slower than the interval: no sleep, no overlap


def test_ctrl_c_during_a_refresh_reaches_the_caller() -> None:
    calls = []

    def refresh() -> Report:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return Report(len(calls))

    console = Console(file=io.StringIO(), force_terminal=True)
    with pytest.raises(KeyboardInterrupt):
        watch(console, refresh, render, interval=1, sleep=lambda s: None)
    assert len(calls) == 2


@pytest.fixture
def cli(fake_multipass: FakeMultipass, tmp_path: Path):
    lab = tmp_path / "lab.yaml"
    lab.write_text(HELLO.format(serve="1s"))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(hosts),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    fake_multipass.on_exec("hello-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    report = {"cloud_init": {"status": "done"}, "app": None, "nginx": None}
    fake_multipass.on_exec("*", ["/usr/local/sbin/labctl-vm-status"], stdout=json.dumps(report))
    runner = CliRunner()
    runner.invoke(app, ["up", "-f", str(lab)], env=env)
    return lambda *args: runner.invoke(app, [*args, "-f", str(lab)], env=env), fake_multipass


def test_status_watch_with_count_prints_each_refresh_and_exits_by_health(cli) -> None:
    invoke, fake = cli
    lists_before = len(fake.calls("list"))
    result = invoke("status", "--watch", "--count", "2", "--interval", "1")
    assert result.exit_code == 1, result.output  # the plain fake's LB does not serve
    assert "refresh 1 took" in result.output and "refresh 2 took" in result.output
    assert result.output.count("lab hello") >= 2  # the status table, once per refresh
    assert len(fake.calls("list")) - lists_before == 2  # one `multipass list` per refresh


def test_status_watch_ctrl_c_exits_130_without_a_traceback(cli, monkeypatch) -> None:
    invoke, _ = cli
    calls = []

    def interrupted(ctx: object) -> object:
        calls.append(ctx)
        raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "lab_status", interrupted)
    result = invoke("status", "--watch")
    assert result.exit_code == 130 and calls
    assert "Traceback" not in result.output and "interrupted" not in result.output


def test_status_watch_refuses_json(cli) -> None:
    invoke, _ = cli
    result = invoke("status", "--watch", "--json")
    assert result.exit_code == 2 and "--watch redraws a table" in result.output


@pytest.mark.parametrize("interval", ["inf", "nan", "-inf", "0.5", "1e400"])
def test_status_watch_refuses_an_interval_that_is_not_a_number_of_seconds(
    cli, interval: str
) -> None:
    # `--interval inf` drew one frame, then crashed in sleep(inf); nan silently became 1 s
    invoke, fake = cli
    calls_before = len(fake.calls())
    result = invoke("status", "--watch", "--count", "2", "--interval", interval)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())  # typer's error box wraps the line
    expected = f"{float(interval):g} is not a number of seconds from 1 to 3600"
    assert f"Invalid value for '--interval': {expected}" in said, said
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert len(fake.calls()) == calls_before  # refused before asking any VM
