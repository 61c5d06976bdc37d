"""Each thing is reported once: `check` and `drill` show each verdict as progress (through the
progress view, so --quiet hides it) and print it once in their table. (`down`'s live view:
tests/test_progress.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from labctl.cli import labs
from labctl.cli.main import app
from labctl.model import BUILTIN_CHECKS
from tests.cli_world import WorldContexts
from tests.lab_world import lab_text
from tests.test_drill import ready, wire_backends


def test_check_prints_each_result_once_and_shows_progress_through_the_view(
    check_world, monkeypatch
) -> None:
    world = check_world()
    path = world.ctx.lab_file.path
    path.write_text(world.text)
    monkeypatch.setattr(labs, "contexts", WorldContexts(world.ctx))
    quiet = CliRunner().invoke(app, ["check", "-f", str(path), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    for name in BUILTIN_CHECKS:
        assert len(re.findall(rf"^│ {name} +│", quiet.output, re.M)) == 1, (name, quiet.output)
    assert "all checks pass" in quiet.output
    shown = CliRunner().invoke(app, ["check", "-f", str(path)])
    assert shown.exit_code == 0, shown.output
    for name in BUILTIN_CHECKS:  # progress on stderr, as every command's, then the table
        # ✓ passed; - skipped (a machine with no browser skips the browser check)
        assert re.search(rf"^\d\d:\d\d:\d\d [✓-] check +{name}: ", shown.stderr, re.M), name
        assert len(re.findall(rf"^│ {name} +│", shown.stdout, re.M)) == 1, name


def test_drill_prints_each_step_once(make_world, monkeypatch, tmp_path: Path) -> None:
    world = ready(make_world)
    wire_backends(world)
    path = tmp_path / "lab.yaml"
    path.write_text(lab_text(world.lb.port))
    monkeypatch.setattr(labs, "contexts", WorldContexts(world.ctx))
    result = CliRunner().invoke(app, ["drill", "-f", str(path), "--requests", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    for others in ("app2, app3", "app1, app3", "app1, app2"):  # what each step observed
        assert result.output.count(f"20/20 x 200 from {others}") == 1, result.output
    assert "drill passed" in result.output
