"""Every way a lab.yaml value reaches a shell, nginx, cloud-init or the host, and the rule that
keeps it from breaking out (docs/security.md). One test per path; each names its rule:

  model   - labctl.model validation (fullmatch patterns: names, domain, image, env names, git)
  quote   - shlex.quote: app.conf / app.env are `NAME='value'` lines sourced by bash on the VM
  data    - user-data and the pm2 ecosystem are built as data and serialized (YAML / JSON)
  argv    - processes get argv lists (never a shell); `--` ends options (multipass exec, git)
  recheck - the renderers re-check what lands in nginx syntax and raise instead of injecting
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from labctl.cli.main import app
from labctl.config.load import load_lab, parse_lab
from labctl.engine.multipass.adapter import MultipassEngine
from labctl.errors import ConfigError
from labctl.host.hostsfile import update_hosts
from labctl.host.state import LabState
from labctl.model import Lab
from labctl.ops.archive import app_archive
from labctl.render.assets import read_assets
from labctl.render.nginx import Backend
from labctl.render.userdata import (
    APP_CONF_PATH,
    APP_ENV_PATH,
    ECOSYSTEM_PATH,
    SECRET_MASK,
    mask_secrets,
    render_nginx_site,
    render_placeholder_site,
    render_user_data,
)
from tests.fake_multipass.fixture import FakeMultipass

ROOT = Path(__file__).resolve().parent.parent
BASE = "name: demo\ndomain: demo.lab\nvms:\n  - {name: app1, roles: [app]}\n  - {name: lb, roles: [lb]}\n"
PWNED = "/tmp/labctl-security-pwned"


def lab_with(**fields: Any) -> Lab:
    data: dict[str, Any] = {**yaml.safe_load(BASE), **fields}
    return parse_lab(json.dumps(data))  # JSON is YAML: values arrive exactly as written


def refused(**fields: Any) -> list[str]:
    data: dict[str, Any] = {**yaml.safe_load(BASE), **fields}
    with pytest.raises(ConfigError) as caught:
        parse_lab(json.dumps(data))
    return caught.value.problems


def files_of(user_data: str) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(user_data)
    return {entry["path"]: entry for entry in doc["write_files"]}


def source_in_bash(text: str, names: list[str], tmp_path: Path) -> dict[str, str]:
    """What bash sees after `. file` (as provision-app.sh does), one variable per name."""
    path = tmp_path / "sourced.sh"
    path.write_text(text)
    script = 'set -eu; . "$1"; shift; for n in "$@"; do printf "%s\\0" "${!n}"; done'
    proc = subprocess.run(
        ["bash", "-c", script, "-", str(path), *names],
        capture_output=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )
    return dict(zip(names, proc.stdout.decode().split("\0")[:-1], strict=True))


# --- names: lab, VM -> instance names, nginx file names, hosts markers (model, recheck, argv) ----


@pytest.mark.parametrize(
    "name", ["$(reboot)", "`id`", "a;b", "a b", "lab\n", "-rf", "a/../b", "a'b", "ä"]
)
def test_lab_and_vm_names_are_multipass_names_only(name: str) -> None:
    """model: NAME_RE.fullmatch; instance names reach multipass argv, nginx paths, the hosts file."""
    assert any(p.startswith("lab.yaml:1:") and ": name: " in p for p in refused(name=name))
    vms = [{"name": name, "roles": ["app"]}, {"name": "lb", "roles": ["lb"]}]
    assert any(": vms[0].name:" in p for p in refused(vms=vms))


def test_renderers_recheck_names_and_server_names() -> None:
    """recheck: a Lab built without validation (model_construct) still cannot inject nginx text."""
    good = lab_with()
    for bad in (
        good.model_copy(update={"name": "demo;\n}"}),
        good.model_copy(update={"domain": "demo.lab; return 200"}),
        good.model_copy(update={"aliases": ["a.lab\n    location /"]}),
    ):
        with pytest.raises(ValueError):
            render_placeholder_site(bad)
    with pytest.raises(ValueError):
        render_nginx_site(good, [Backend("app1;", "10.0.0.1:3000")])
    with pytest.raises(ValueError):
        render_nginx_site(good, [Backend("app1", "10.0.0.1:3000; proxy_pass x")])


# --- domain and aliases -> nginx server_name, hosts line (model, recheck) -----------------------


@pytest.mark.parametrize(
    "domain",
    ["demo.lab;", "demo.lab{", "demo.lab}", "demo.lab\nserver_name x", "demo lab", "$host", "a..b"],
)
def test_domain_and_aliases_cannot_carry_nginx_syntax(domain: str) -> None:
    """model: hostname labels only ([a-z0-9-], fullmatch), for the domain and every alias."""
    assert any(": domain: " in p for p in refused(domain=domain))
    assert any("aliases[0]:" in p for p in refused(aliases=[domain]))


def test_site_has_the_domain_only_in_server_name() -> None:
    lab = lab_with(aliases=["www.demo.lab"])
    site = render_nginx_site(lab, [Backend("app1", "10.0.0.1:3000")])
    lines = [line for line in site.splitlines() if "demo.lab" in line]
    assert lines == ["    server_name demo.lab www.demo.lab;"]


# --- app commands, env values, git URL/ref -> app.conf / app.env / ecosystem (quote, data) ------


def test_commands_and_git_values_stay_inside_their_app_conf_variable(tmp_path: Path) -> None:
    """quote: install/build are code by design, but only where provision-app.sh runs them (as the
    app user, via `bash -c "$2"`); sourcing app.conf must not run them or anything else."""
    hostile = f"npm ci'; touch {PWNED}; echo '$(touch {PWNED})`touch {PWNED}`\n"
    url = f"https://example.com/$(touch{PWNED})/`touch{PWNED}`.git"
    lab = lab_with(
        app={
            "source": {"git": url, "ref": "v1.0+build/x_y"},
            "install": hostile,
            "build": "a\nb'c\"d",
            "start": {"command": hostile},
        }
    )
    text = files_of(render_user_data(lab, lab.vms[0], read_assets()))[APP_CONF_PATH]["content"]
    seen = source_in_bash(
        text, ["LABCTL_INSTALL", "LABCTL_BUILD", "LABCTL_GIT_URL", "LABCTL_GIT_REF"], tmp_path
    )
    assert seen == {
        "LABCTL_INSTALL": hostile,
        "LABCTL_BUILD": "a\nb'c\"d",
        "LABCTL_GIT_URL": url,
        "LABCTL_GIT_REF": "v1.0+build/x_y",
    }
    assert not Path(PWNED).exists()


def test_start_command_is_an_argv_element_in_the_ecosystem() -> None:
    """data: the ecosystem is `module.exports = ` + JSON; the command is one bash -c argument."""
    lab = lab_with(
        app={
            "source": {"git": "https://example.com/a.git"},
            "start": {"command": '"]});require("child_process").exec("x");//'},
        }
    )
    text = files_of(render_user_data(lab, lab.vms[0], read_assets()))[ECOSYSTEM_PATH]["content"]
    body = json.loads(text.removeprefix("module.exports = ").rstrip().removesuffix(";"))
    assert body["apps"][0]["args"] == ["-c", '"]});require("child_process").exec("x");//']
    assert body["apps"][0]["script"] == "/bin/bash" and body["apps"][0]["interpreter"] == "none"


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ({"git": "--upload-pack=touch /tmp/x"}, "app.source.git"),
        ({"git": "https://a/b c"}, "app.source.git"),
        ({"git": "https://a/b.git", "ref": "--orphan"}, "app.source.ref"),
        ({"git": "https://a/b.git", "ref": "a..b"}, "app.source.ref"),
        ({"git": "https://a/b.git", "ref": "main\n"}, "app.source.ref"),
    ],
)
def test_git_url_and_ref_cannot_become_git_options(source: dict[str, str], where: str) -> None:
    """model: no leading '-', no whitespace, no '..'; argv: provision-app.sh puts `--` before them."""
    problems = refused(app={"source": source, "start": {"command": "npm start"}})
    assert any(f": {where}:" in p for p in problems), problems
    script = (ROOT / "cloud-init" / "provision-app.sh").read_text()
    assert 'git clone --quiet -- "$LABCTL_GIT_URL" "$APP_DIR"' in script
    assert 'checkout --quiet "$LABCTL_GIT_REF" --' in script


def test_env_names_are_identifiers_and_values_are_quoted(tmp_path: Path) -> None:
    """model: env names are [A-Za-z_][A-Za-z0-9_]* (fullmatch); quote: values are inert."""
    for name in ("A;B", "A B", "$(x)", "A\n", "1A", "A=B"):
        assert any("app.env" in p for p in refused(app={"env": {name: "x"}})), name
    value = f"'$(touch {PWNED})'\nruncmd: [x]\n\"; touch {PWNED}"
    lab = lab_with(app={"env": {"EVIL": value}})
    text = files_of(render_user_data(lab, lab.vms[0], read_assets()))[APP_ENV_PATH]["content"]
    assert source_in_bash(text, ["EVIL"], tmp_path) == {"EVIL": value}
    assert not Path(PWNED).exists()


# --- paths (model, recheck) ------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_start_paths_stay_inside_the_app_folder(script: str) -> None:
    problems = refused(
        app={"source": {"git": "https://a/b.git"}, "start": {"script": script}},
    )
    assert any("app.start" in p for p in problems), problems


def test_path_app_archive_refuses_links_out_and_skips_tool_dirs(tmp_path: Path) -> None:
    """A `source: path` app is packed on the host (config/sources.py walk_source): a symlink that
    leaves the app folder is refused (never followed, so /etc/shadow or ~/.ssh cannot travel),
    a link inside it travels as a link, tool dirs and private files stay home."""
    app_dir = tmp_path / "app"
    (app_dir / "node_modules" / "x").mkdir(parents=True)
    (app_dir / ".git").mkdir()
    (app_dir / "server.js").write_text("// app\n")
    (app_dir / "main.js").symlink_to("server.js")
    (app_dir / ".env").write_text("TOKEN=secret\n")
    (app_dir / "deploy.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    lab_path = tmp_path / "lab.yaml"
    lab_path.write_text(BASE + "app: {source: {path: ./app}, start: {script: server.js}}\n")
    data = app_archive(load_lab(lab_path))
    assert data is not None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert all(m.uid == 0 and not m.uname for m in members.values())
    assert sorted(members) == [".", "./main.js", "./server.js"]
    assert members["./main.js"].issym() and members["./main.js"].linkname == "server.js"
    for name, target in (("shadow", Path("/etc/shadow")), ("ssh", Path.home())):
        (app_dir / name).symlink_to(target)
        with pytest.raises(ConfigError) as caught:
            app_archive(load_lab(lab_path))
        assert any(
            f"app.source.path: {name!r} is a symlink to {str(target)!r}, outside the app folder"
            in p
            for p in caught.value.problems
        ), caught.value.problems
        (app_dir / name).unlink()


# --- multipass argv (argv) ---------------------------------------------------------------------------


def test_multipass_gets_argv_lists_with_a_guard_before_the_remote_command() -> None:
    seen: list[tuple[list[str], dict[str, Any]]] = []

    def runner(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, "", "")

    mp = MultipassEngine("multipass", run=runner)
    mp.exec("demo-app1", ["sh", "-c", "$(reboot); `id`"], timeout=5)
    argv, kwargs = seen[0]
    assert argv == ["multipass", "exec", "demo-app1", "--", "sh", "-c", "$(reboot); `id`"]
    assert "shell" not in kwargs


# --- secrets -------------------------------------------------------------------------------------------

SECRET = "s3cr3t-Tok3n-value"
SECRET_LAB = (
    BASE.replace("name: demo\n", "name: sec\n")
    + "defaults: {memory: 256M, disk: 1G}\n"
    + f"app: {{env: {{API_TOKEN: {SECRET}, MODE: prod}}, secret_env: [API_TOKEN]}}\n"
    + "waits: {launch: 5s, cloud_init: 5s, serve: 1s, check: 2s}\n"
)


def test_mask_secrets_replaces_only_secret_values() -> None:
    lab = parse_lab(SECRET_LAB)
    masked = mask_secrets(lab)
    assert masked.app.env == {"API_TOKEN": SECRET_MASK, "MODE": "prod"}
    assert lab.app.env["API_TOKEN"] == SECRET  # the real one is untouched (it is launched)


def test_secrets_never_printed_or_logged(
    fake_multipass: FakeMultipass, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """render masks secret_env values unless --show-secrets; --debug logs argv, never stdin."""
    lab = tmp_path / "lab.yaml"
    lab.write_text(SECRET_LAB)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    fake_multipass.on_exec("sec-lb", ["/usr/local/sbin/labctl-lb-apply"], stdout="applied\n")
    env = {
        **fake_multipass.env,
        "LABCTL_MULTIPASS": str(fake_multipass.executable),
        "LABCTL_HOSTS_FILE": str(tmp_path / "hosts"),
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
    }
    runner = CliRunner()
    caplog.set_level(logging.DEBUG)
    outputs = []
    for args in (
        ["render", "app1"],
        ["--debug", "plan", "--json"],
        ["--debug", "up"],
        ["--debug", "status", "--json"],
        ["--debug", "down"],
    ):
        result = runner.invoke(app, [*args, "-f", str(lab)], env=env)
        assert "Traceback" not in result.output
        outputs.append(result.output)
    assert SECRET not in "\n".join(outputs)
    assert SECRET not in caplog.text
    assert "running " in caplog.text  # --debug did log the multipass calls
    assert SECRET_MASK in outputs[0] and "--show-secrets prints them" in outputs[0]
    # Positive control: the secret did travel to the VM, on launch's stdin.
    assert any(SECRET in call.get("cloud_init", "") for call in fake_multipass.calls("launch"))
    shown = runner.invoke(app, ["render", "app1", "--show-secrets", "-f", str(lab)], env=env)
    assert f"API_TOKEN={SECRET}" in files_of(shown.output)[APP_ENV_PATH]["content"]


# --- permissions -----------------------------------------------------------------------------------------


def test_env_files_are_root_only_on_the_vm() -> None:
    lab = parse_lab(SECRET_LAB)
    files = files_of(render_user_data(lab, lab.vms[0], read_assets()))
    for path in (APP_ENV_PATH, APP_CONF_PATH, ECOSYSTEM_PATH):
        assert (files[path]["permissions"], files[path]["owner"]) == ("0600", "root:root"), path
    script = (ROOT / "cloud-init" / "provision-app.sh").read_text()
    assert '-m 0600 "$ECOSYSTEM" "$APP_DIR/ecosystem.config.js"' in script
    assert "set -x" not in script.replace("Never `set -x`", "")


def test_state_dir_and_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = LabState(tmp_path / ".labctl" / "demo")
        state.record("demo-app1", "app1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664])
def test_hosts_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    hosts.chmod(mode)
    block = "# BEGIN labctl demo\n10.0.0.2\tdemo.lab\n# END labctl demo\n"
    assert update_hosts(hosts, "demo", block)
    assert stat.S_IMODE(hosts.stat().st_mode) == mode
    assert update_hosts(hosts, "demo", None)
    assert stat.S_IMODE(hosts.stat().st_mode) == mode
    assert hosts.read_text() == "127.0.0.1 localhost\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]  # no temp file left
