"""Course stages: what `stage: app|proxy|lb` renders, what `up` waits for, what
`status` calls a problem, and which stage applies (--stage, recorded, lab.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.config.load import parse_lab
from labctl.ops.down import down
from labctl.ops.stage import left_to_student
from labctl.ops.status import status
from labctl.ops.up import up
from labctl.render.assets import read_assets
from labctl.render.nginx import nginx_site_path
from labctl.render.userdata import LB_APPLY_COMMAND, render_user_data
from tests.check_world import APP_IPS
from tests.lab_world import with_options

LAB = """\
name: hello
domain: hello.lab
stage: {stage}
vms: [{{name: app1, roles: [app]}}, {{name: app2, roles: [app]}}, {{name: lb, roles: [lb]}}]
"""


def _lb_user_data(stage: str) -> dict:
    lab = parse_lab(LAB.format(stage=stage))
    return yaml.safe_load(render_user_data(lab, lab.lb_vm, read_assets()))


def test_stage_app_installs_nginx_with_its_default_site_and_no_labctl_site() -> None:
    data = _lb_user_data("app")
    lab = parse_lab(LAB.format(stage="app"))
    assert data["packages"] == ["nginx"]
    assert nginx_site_path(lab) not in [f["path"] for f in data["write_files"]]
    assert data["runcmd"] == [
        "set -eu",
        # the status agent runs at every stage: status reads the VM through it
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "labctl-status-agent.service"],
        ["systemctl", "enable", "nginx"],
        ["systemctl", "restart", "nginx"],
    ]
    # proxy and lb ship the placeholder site; the default site goes away
    for stage in ("proxy", "lb"):
        later = _lb_user_data(stage)
        assert nginx_site_path(lab) in [f["path"] for f in later["write_files"]]
        assert ["rm", "-f", "/etc/nginx/sites-enabled/default"] in later["runcmd"]


def test_app_vms_are_the_same_at_every_stage() -> None:
    rendered = {
        stage: render_user_data(lab, lab.vms[0], read_assets())
        for stage in ("app", "proxy", "lb")
        for lab in [parse_lab(LAB.format(stage=stage))]
    }
    assert rendered["app"] == rendered["proxy"] == rendered["lb"]


def test_default_stage_is_lb_and_hosts_are_managed_at_app_only_when_asked() -> None:
    assert parse_lab(LAB.format(stage="lb").replace("stage: lb\n", "")).stage == "lb"
    app_lab = parse_lab(LAB.format(stage="app"))
    assert not app_lab.hosts_managed and app_lab.proxied_vms == []
    assert parse_lab(LAB.format(stage="app") + "manage_hosts: true\n").hosts_managed
    proxy = parse_lab(LAB.format(stage="proxy"))
    assert [vm.name for vm in proxy.proxied_vms] == ["app1"] and proxy.hosts_managed


def test_up_at_stage_app_waits_for_the_apps_only_and_says_what_is_left(check_world) -> None:
    world = check_world(stage="app", running=False)
    result = up(world.ctx)
    assert result.ok, result.failures
    assert result.stage == "app" and result.check is None
    assert result.left == left_to_student(world.ctx.lab) and "reverse proxy" in result.left[0]
    assert not [c for c in world.mp.calls_of("exec") if list(c[2:]) == LB_APPLY_COMMAND]
    assert "hello.lab" not in world.hosts.read_text()  # no hosts entry unless asked
    assert any(e.stage == "serve" and e.kind == "done" for e in world.events)
    report = status(world.ctx)
    assert report.healthy, report.problems  # the LB not proxying is the student's job
    assert report.stage == "app" and report.to_dict()["stage"] == "app"


def test_up_at_stage_app_fails_when_an_app_does_not_answer(check_world) -> None:
    world = check_world(stage="app", running=False)
    world.guest.online.discard("app2")
    result = up(world.ctx)
    assert [f.stage for f in result.failures] == ["serve"]
    # A stopped app's port gives no HTTP answer at all (the world closes the connection).
    assert "last: app2: Remote end closed connection" in result.failures[0].message


def test_up_at_stage_proxy_points_the_lb_at_the_first_app_only(check_world) -> None:
    world = check_world(stage="proxy", running=False)
    world.mode = "one"
    result = up(world.ctx)
    assert result.ok, result.failures
    site = world.mp.vms["hello-lb"].site
    assert f"server {APP_IPS['hello-app1']}:{world.app_port}" in site
    assert APP_IPS["hello-app2"] not in site and APP_IPS["hello-app3"] not in site
    assert "hello.lab" in world.hosts.read_text()
    assert status(world.ctx).healthy


def test_the_stage_up_was_given_sticks_until_another_is_given(check_world) -> None:
    world = check_world(stage="lb", running=False)
    assert up(with_options(world.ctx, stage="app")).ok
    assert with_options(world.ctx).lab.stage == "app"  # status, check and a later up keep it
    assert status(with_options(world.ctx)).stage == "app"
    world.events.clear()
    assert up(with_options(world.ctx)).stage == "app"
    assert any("stays at stage app" in e.message for e in world.events)
    world.guest.online = {"app1", "app2", "app3"}
    assert up(with_options(world.ctx, stage="lb")).stage == "lb"
    assert with_options(world.ctx).lab.stage == "lb"
    up(with_options(world.ctx, stage="proxy"))
    down(world.ctx)  # a lab that is gone has no stage: the next up follows lab.yaml
    assert with_options(world.ctx).lab.stage == "lb"


def test_check_with_an_unknown_check_name_exits_2_before_touching_anything(
    tmp_path: Path,
) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB.format(stage="app"))
    result = CliRunner().invoke(app, ["check", "-f", str(lab), "--check", "nope"])
    assert result.exit_code == 2
    assert "--check nope: no such check" in result.output
    bad = CliRunner().invoke(app, ["up", "-f", str(lab), "--stage", "done"])
    assert bad.exit_code == 2
