"""Rendering: golden user-data per VM, cloud-init rules, nginx site, pm2 ecosystem, env quoting,
and the static VM scripts (run here with fake nginx/pm2/systemctl binaries on PATH)."""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from labctl.config.load import load_lab, parse_lab
from labctl.errors import ConfigError, LabctlError
from labctl.model import Lab, Vm
from labctl.render import app as render_app
from labctl.render import nginx as render_nginx
from labctl.render import userdata as render
from labctl.render.assets import ASSET_FILES, Assets, read_assets
from labctl.render.userdata import (
    APP_LOG_COMMAND,
    CLOUD_INIT_LOG_COMMAND,
    INSTANCE_MARKER_PATH,
    LB_APPLY_COMMAND,
    NGINX_LOG_COMMAND,
    VM_STATUS_COMMAND,
    Backend,
    nginx_site_path,
    render_nginx_site,
    render_placeholder_site,
    render_user_data,
)

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
ASSET_DIR = REPO / "cloud-init"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# Equivalent to the repo's lab.yaml (the seed lab) and examples/hello/lab.yaml.
SEED_LAB = """\
name: alvin
domain: alvin.xyz
aliases: [www.alvin.xyz]
defaults:
  memory: 2G
app:
  name: dumbflix
  source:
    git: https://github.com/dumbwaysdev/dumbflix-frontend
  install: npm ci
  build: npm run build
  env:
    NODE_OPTIONS: --openssl-legacy-provider
  start:
    serve: build
    spa: true
  port: 3000
  node_version: 20
vms:
  - name: app1
    roles: [app]
  - name: gateway
    roles: [lb, app]
"""

HELLO_LAB = """\
name: hello
domain: hello.lab
app:
  name: hello
  source:
    builtin: hello
vms:
  - name: app1
    roles: [app]
  - name: app2
    roles: [app]
  - name: app3
    roles: [app]
  - name: lb
    roles: [lb]
"""

# cloud-init 22.4.2 accepts unknown top-level keys (docs/provisioning.md), so check them here.
ALLOWED_TOP_LEVEL = {
    "users",
    "package_update",
    "package_upgrade",
    "apt",
    "packages",
    "write_files",
    "runcmd",
    "final_message",
}
DEPRECATED_KEYS = {
    "apt_update",
    "apt_upgrade",
    "apt_reboot_if_required",
    "apt_sources",
    "apt_preserve_sources_list",
    "apt_proxy",
    "apt_mirror",
}
# The status agent starts first, so status reads it during provisioning.
AGENT_RUNCMD = [
    ["systemctl", "daemon-reload"],
    ["systemctl", "enable", "--now", "labctl-status-agent.service"],
]

LB_RUNCMD = [
    ["rm", "-f", "/etc/nginx/sites-enabled/default"],
    [
        "ln",
        "-sfn",
        "/etc/nginx/sites-available/labctl-alvin.conf",
        "/etc/nginx/sites-enabled/labctl-alvin.conf",
    ],
    ["nginx", "-t"],
    ["systemctl", "enable", "nginx"],
    ["systemctl", "restart", "nginx"],
]


@pytest.fixture(scope="module")
def assets() -> Assets:
    return read_assets()


def lab_from(data: dict[str, Any]) -> Lab:
    """A lab from plain data: JSON is YAML, so hostile strings arrive exactly as written."""
    return parse_lab(json.dumps(data))


def hello_data(**app: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "domain": "t.lab",
        "app": {"source": {"builtin": "hello"}, **app},
        "vms": [{"name": "app1", "roles": ["app"]}, {"name": "lb", "roles": ["lb"]}],
    }


def vm(lab: Lab, name: str) -> Vm:
    found = lab.vm(name)
    assert found is not None
    return found


def user_data(lab: Lab, name: str, assets: Assets, **kw: Any) -> dict[str, Any]:
    text = render_user_data(lab, vm(lab, name), assets, **kw)
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def file_entry(data: dict[str, Any], path: str) -> dict[str, Any]:
    entries = [f for f in data["write_files"] if f["path"] == path]
    assert len(entries) == 1, f"{path} written {len(entries)} times"
    entry: dict[str, Any] = entries[0]
    return entry


def all_rendered(assets: Assets) -> list[tuple[str, str]]:
    out = []
    for text in (SEED_LAB, HELLO_LAB):
        lab = parse_lab(text)
        out += [(lab.instance_name(v), render_user_data(lab, v, assets)) for v in lab.vms]
    return out


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ASSET_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- golden files ------------------------------------------------------------------------------

GOLDEN_CASES = [
    pytest.param(text, v.name, id=parse_lab(text).instance_name(v))
    for text in (SEED_LAB, HELLO_LAB)
    for v in parse_lab(text).vms
]


@pytest.mark.parametrize(("lab_text", "vm_name"), GOLDEN_CASES)
def test_user_data_matches_golden(lab_text: str, vm_name: str, assets: Assets) -> None:
    lab = parse_lab(lab_text)
    text = render_user_data(lab, vm(lab, vm_name), assets)
    check_golden(f"{lab.instance_name(vm(lab, vm_name))}.user-data.yaml", text)


def test_seed_sites_match_golden() -> None:
    lab = parse_lab(SEED_LAB)
    backends = [Backend("app1", "10.20.30.11:3000"), Backend("gateway", "10.20.30.12:3000")]
    check_golden("alvin.site.conf", render_nginx_site(lab, backends))
    check_golden("alvin.placeholder.conf", render_placeholder_site(lab))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with LABCTL_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs; LABCTL_UPDATE_GOLDEN=1 to accept"
    )


@pytest.mark.parametrize("lab_file", ["lab.yaml", "examples/hello/lab.yaml"])
def test_repo_labs_render_like_the_inline_copies(lab_file: str, assets: Assets) -> None:
    """The inline labs above stand for the repo's lab files: keep them equivalent."""
    path = REPO / lab_file
    if not path.exists():
        pytest.skip(f"{lab_file} not in this checkout")
    lab = load_lab(path).lab
    for v in lab.vms:
        golden = GOLDEN / f"{lab.instance_name(v)}.user-data.yaml"
        assert render_user_data(lab, v, assets) == golden.read_text(), f"{lab_file} {v.name}"


def test_rendering_is_deterministic(assets: Assets) -> None:
    assert all_rendered(assets) == all_rendered(assets)


# --- cloud-init rules --------------------------------------------------------------------------


def walk_keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [str(k) for k in node] + [k for v in node.values() for k in walk_keys(v)]
    if isinstance(node, list):
        return [k for item in node for k in walk_keys(item)]
    return []


def test_user_data_follows_cloud_init_rules(assets: Assets) -> None:
    for instance, text in all_rendered(assets):
        assert text.startswith("#cloud-config\n"), instance
        data = yaml.safe_load(text)
        assert next(iter(data)) == "users" and data["users"] == ["default"], instance
        assert set(data) <= ALLOWED_TOP_LEVEL, (instance, set(data) - ALLOWED_TOP_LEVEL)
        keys = walk_keys(data)
        assert not DEPRECATED_KEYS & set(keys), instance
        assert not [k for k in keys if "-" in k], f"{instance}: hyphenated (deprecated) keys"
        assert data["package_update"] is True and data["package_upgrade"] is False
        assert data["runcmd"][0] == "set -eu", "runcmd must stop at the first failure"
        for entry in data["write_files"]:
            assert isinstance(entry["permissions"], str), entry["path"]
            assert entry["permissions"] in {"0600", "0644", "0755"}, entry["path"]
            owner = entry.get("owner", "root:root")
            if owner.startswith("ubuntu") or entry["path"].startswith("/home/ubuntu"):
                assert entry.get("defer") is True, entry["path"]
        marker = json.loads(file_entry(data, INSTANCE_MARKER_PATH)["content"])
        assert set(marker) == {"lab", "vm", "roles", "labctl"}
        assert f"{marker['lab']}-{marker['vm']}" == instance
        assert file_entry(data, "/usr/local/sbin/labctl-vm-status")["permissions"] == "0755"


def test_app_vm_gets_nodesource_node_and_provisioning(assets: Assets) -> None:
    lab = parse_lab(SEED_LAB)
    data = user_data(lab, "app1", assets)
    assert data["packages"] == ["nodejs", "git"]
    source = data["apt"]["sources"]["nodesource"]
    expected = "deb [signed-by=$KEY_FILE] https://deb.nodesource.com/node_20.x nodistro main"
    assert source["source"] == expected
    assert source["key"] == (ASSET_DIR / "nodesource-repo.gpg.key").read_text()
    assert data["runcmd"] == [
        "set -eu",
        *AGENT_RUNCMD,
        ["/usr/local/lib/labctl/provision-app.sh"],
    ]
    assert (
        file_entry(data, "/usr/local/lib/labctl/provision-app.sh")["content"]
        == assets.provision_app
    )
    for path in ("/etc/labctl/app.conf", "/etc/labctl/app.env", "/etc/labctl/ecosystem.config.js"):
        assert file_entry(data, path)["permissions"] == "0600"
    config = json.loads(file_entry(data, "/etc/labctl/config.json")["content"])
    assert config["lb"] is None and config["app"]["port"] == 3000
    assert not [f for f in data["write_files"] if f["path"].startswith("/etc/nginx")]


def test_node_version_selects_the_nodesource_channel(assets: Assets) -> None:
    lab = lab_from(hello_data(node_version=22))
    source = user_data(lab, "app1", assets)["apt"]["sources"]["nodesource"]["source"]
    assert "https://deb.nodesource.com/node_22.x nodistro main" in source


def test_lb_vm_gets_nginx_placeholder_and_apply_script(assets: Assets) -> None:
    lab = parse_lab(HELLO_LAB)
    data = user_data(lab, "lb", assets)
    assert data["packages"] == ["nginx"]
    assert "apt" not in data
    site = file_entry(data, "/etc/nginx/sites-available/labctl-hello.conf")
    assert site["content"] == render_placeholder_site(lab) and site["defer"] is True
    assert file_entry(data, "/usr/local/sbin/labctl-lb-apply")["content"] == assets.lb_apply
    assert data["runcmd"][3:] == [[c.replace("alvin", "hello") for c in cmd] for cmd in LB_RUNCMD]
    config = json.loads(file_entry(data, "/etc/labctl/config.json")["content"])
    assert config == {
        "app": None,
        "lb": {
            "site": "/etc/nginx/sites-available/labctl-hello.conf",
            "enabled": "/etc/nginx/sites-enabled/labctl-hello.conf",
            "port": 80,
        },
        "status_agent": {"port": 7391, "key_file": "/etc/labctl/status-agent.key"},
    }


def test_vm_with_both_roles_gets_both_merged(assets: Assets) -> None:
    lab = parse_lab(SEED_LAB)
    data = user_data(lab, "gateway", assets)
    assert data["packages"] == ["nginx", "nodejs", "git"]
    paths = [f["path"] for f in data["write_files"]]
    assert len(paths) == len(set(paths))
    assert "/usr/local/sbin/labctl-lb-apply" in paths and "/etc/labctl/app.env" in paths
    # LB first: it is quick and answers 503 while the app builds.
    assert data["runcmd"] == [
        "set -eu",
        *AGENT_RUNCMD,
        *LB_RUNCMD,
        ["/usr/local/lib/labctl/provision-app.sh"],
    ]
    config = json.loads(file_entry(data, "/etc/labctl/config.json")["content"])
    assert config["app"] and config["lb"]
    assert json.loads(file_entry(data, INSTANCE_MARKER_PATH)["content"])["roles"] == ["lb", "app"]


def test_hello_vm_ships_the_hello_server(assets: Assets) -> None:
    data = user_data(parse_lab(HELLO_LAB), "app2", assets)
    assert (
        file_entry(data, "/usr/local/lib/labctl/hello/server.js")["content"] == assets.hello_server
    )
    conf = file_entry(data, "/etc/labctl/app.conf")["content"]
    assert "LABCTL_SOURCE=builtin\n" in conf and "LABCTL_VM=app2\n" in conf


def test_path_source_embeds_the_archive_as_b64(assets: Assets) -> None:
    lab = lab_from(hello_data(source={"path": "site"}, start={"script": "index.js"}))
    archive = bytes(range(256)) * 4
    data = user_data(lab, "app1", assets, app_archive=archive)
    entry = file_entry(data, "/usr/local/lib/labctl/app.tar.gz")
    assert entry["encoding"] == "b64" and entry["permissions"] == "0600"
    assert base64.b64decode(entry["content"]) == archive
    assert "LABCTL_SOURCE=path\n" in file_entry(data, "/etc/labctl/app.conf")["content"]
    lb = user_data(lab, "lb", assets, app_archive=archive)  # ignored: the LB runs no app
    assert "/usr/local/lib/labctl/app.tar.gz" not in [f["path"] for f in lb["write_files"]]


def test_archive_is_required_for_path_apps_and_refused_otherwise(assets: Assets) -> None:
    path_lab = lab_from(hello_data(source={"path": "site"}, start={"script": "index.js"}))
    with pytest.raises(ValueError, match="app_archive"):
        render_user_data(path_lab, vm(path_lab, "app1"), assets)
    hello = parse_lab(HELLO_LAB)
    with pytest.raises(ValueError, match="app_archive"):
        render_user_data(hello, vm(hello, "app1"), assets, app_archive=b"x")


def test_vm_of_another_lab_is_refused(assets: Assets) -> None:
    other = parse_lab(SEED_LAB).vms[0].model_copy(update={"name": "zzz"})
    with pytest.raises(ValueError, match="not part of lab"):
        render_user_data(parse_lab(SEED_LAB), other, assets)


def test_git_source_settings_reach_the_provisioning_script(assets: Assets) -> None:
    lab = lab_from(
        hello_data(
            source={"git": "https://example.com/o/r.git", "ref": "v1.2"},
            install="npm ci",
            build="npm run build",
            start={"script": "dist/main.js"},
        )
    )
    conf = file_entry(user_data(lab, "app1", assets), "/etc/labctl/app.conf")["content"]
    assert "LABCTL_GIT_URL=https://example.com/o/r.git\n" in conf
    assert "LABCTL_GIT_REF=v1.2\n" in conf
    assert "LABCTL_INSTALL='npm ci'\n" in conf and "LABCTL_BUILD='npm run build'\n" in conf


# --- hostile values ------------------------------------------------------------------------------

HOSTILE = {
    "QUOTES": "it's \"quoted\" '' \\",
    "NEWLINES": "line1\nline2\nruncmd: [evil]\n",
    "SUBST": "$(touch pwned-subst)",
    "BACKTICK": "`touch pwned-tick`",
    "VARS": "$HOME ${PATH} $0 !! ~",
    "SEMI": "a; touch pwned-semi && echo x | cat > pwned-pipe",
    "SPACES": "  padded  ",
    "UNICODE": "héllo ☃ \u2028 end",
    "EMPTY": "",
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("domain",), "alvin.xyz; evil"),
        (("domain",), "alvin.xyz{"),
        (("domain",), "alvin xyz"),
        (("domain",), "alvin.xyz\nserver"),
        (("aliases",), ["www.alvin.xyz;"]),
        (("name",), "a;b"),
        (("name",), "lab name"),
        (("vms", 0, "name"), "app1}"),
        (("app", "name"), "my app"),
        (("app", "source"), {"git": "--upload-pack=touch pwned"}),
        (("app", "source"), {"git": "https://x/y z"}),
        (("app", "source"), {"git": "https://x/y", "ref": "-b"}),
        (("app", "source"), {"git": "https://x/y", "ref": "a..b"}),
        (("app", "env"), {"BAD-NAME": "x"}),
        (("app", "env"), {"A": "nul\x00byte"}),
        (("app", "port"), "3000; evil"),
        (("lb", "port"), 0),
        (("lb", "fail_timeout"), "5s; evil"),
        (("lb", "method"), "least_conn; evil"),
    ],
)
def test_model_rejects_values_that_could_break_out(path: tuple[Any, ...], value: Any) -> None:
    data = hello_data()
    target: Any = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    with pytest.raises(ConfigError):
        lab_from(data)


def test_hostile_env_values_stay_inert_in_the_env_file(assets: Assets, tmp_path: Path) -> None:
    lab = lab_from(hello_data(env=HOSTILE, secret_env=["SUBST"]))
    data = user_data(lab, "app1", assets)
    assert set(data) <= ALLOWED_TOP_LEVEL  # the newline value did not add YAML keys
    env_file = file_entry(data, "/etc/labctl/app.env")["content"]
    # Load it the way provision-app.sh does (`set -a; eval "$(cat)"`) and also with `.`.
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    for loader in ('set -a; eval "$(cat)"; set +a', "set -a; . /dev/stdin; set +a"):
        proc = subprocess.run(
            ["bash", "-c", f'{loader}; exec "$0" -c "$1"', sys.executable, dump],
            input=env_file,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"]},
            check=True,
        )
        loaded = json.loads(proc.stdout)
        for name, value in HOSTILE.items():
            assert loaded[name] == value, name
        assert loaded["PORT"] == "3000" and loaded["LABCTL_VM"] == "app1"
    assert list(tmp_path.iterdir()) == [], "a value was executed"
    # Secrets: names only in app.conf (its summary line goes to the log), values only in 0600 files.
    conf = file_entry(data, "/etc/labctl/app.conf")["content"]
    assert "SUBST(secret)" in conf and "touch pwned-subst" not in conf
    for entry in data["write_files"]:
        if "touch pwned-subst" in entry["content"]:
            assert entry["permissions"] == "0600", entry["path"]


def test_shell_assignments_refuse_bad_names() -> None:
    with pytest.raises(ValueError, match="variable name"):
        render_app.shell_assignments({"A;B": "x"})


def test_hostile_env_values_stay_inert_in_the_ecosystem(assets: Assets) -> None:
    lab = lab_from(hello_data(env=HOSTILE))
    js = file_entry(user_data(lab, "app1", assets), "/etc/labctl/ecosystem.config.js")["content"]
    env = parse_ecosystem(js)["env"]
    assert {k: env[k] for k in HOSTILE} == HOSTILE
    assert "\u2028" not in js  # escaped: older JS engines treat a raw U+2028 as a line break


# --- pm2 ecosystem ----------------------------------------------------------------------------


def parse_ecosystem(text: str) -> dict[str, Any]:
    prefix = "module.exports = "
    assert text.startswith(prefix) and text.endswith(";\n")
    data = json.loads(text[len(prefix) : -2])
    assert len(data["apps"]) == 1
    app: dict[str, Any] = data["apps"][0]
    return app


def ecosystem(**app: Any) -> dict[str, Any]:
    if "start" in app:  # the built-in app takes no start: (config/values.py)
        app.setdefault("source", {"git": "https://example.com/app.git"})
    lab = lab_from(hello_data(**app))
    return parse_ecosystem(render_app.render_ecosystem(lab, vm(lab, "app1")))


def test_ecosystem_serve_mode() -> None:
    lab = parse_lab(SEED_LAB)
    app = parse_ecosystem(render_app.render_ecosystem(lab, vm(lab, "gateway")))
    assert app["script"] == "serve" and app["name"] == "dumbflix"
    assert app["env"] == {
        "NODE_OPTIONS": "--openssl-legacy-provider",
        "PORT": "3000",
        "LABCTL_VM": "gateway",
        "PM2_SERVE_PATH": "/home/ubuntu/app/build",
        "PM2_SERVE_PORT": "3000",
        "PM2_SERVE_SPA": "true",
        "PM2_SERVE_HOMEPAGE": "/index.html",
    }
    assert "CI" not in app["env"]  # CI=true breaks CRA builds (docs/provisioning.md)
    assert "instances" not in app and "exec_mode" not in app
    assert ecosystem(start={"serve": "dist", "spa": False})["env"]["PM2_SERVE_SPA"] == "false"


def test_ecosystem_script_mode_and_cluster() -> None:
    one = ecosystem(start={"script": "server.js"})
    assert one["script"] == "/home/ubuntu/app/server.js" and "exec_mode" not in one
    many = ecosystem(start={"script": "./src/main.js", "instances": 3}, port=8080)
    assert many["script"] == "/home/ubuntu/app/src/main.js"
    assert many["instances"] == 3 and many["exec_mode"] == "cluster"
    assert many["env"]["PORT"] == "8080"


def test_ecosystem_command_mode() -> None:
    app = ecosystem(start={"command": "npm start -- --port $PORT"})
    assert app["script"] == "/bin/bash"
    assert app["args"] == ["-c", "npm start -- --port $PORT"]
    assert app["interpreter"] == "none"


def test_ecosystem_builtin_hello_defaults_and_labctl_env_wins() -> None:
    app = ecosystem(env={"GREETING": "hi"})  # app.env PORT is refused by config
    assert app["script"] == "/home/ubuntu/app/server.js" and app["cwd"] == "/home/ubuntu/app"
    assert app["env"] == {"GREETING": "hi", "PORT": "3000", "LABCTL_VM": "app1"}
    assert app["merge_logs"] is True
    assert (
        app["out_file"] == render_app.PM2_OUT_LOG and app["error_file"] == render_app.PM2_ERROR_LOG
    )


# --- nginx site --------------------------------------------------------------------------------

BACKENDS = [Backend("app1", "10.0.0.11:3000"), Backend("app2", "10.0.0.12:3000")]


def site(backends: list[Backend] = BACKENDS, **lb: Any) -> str:
    data = hello_data()
    data["lb"] = lb
    return render_nginx_site(lab_from(data), backends)


@pytest.mark.parametrize(
    ("method", "line"),
    [("round_robin", None), ("least_conn", "least_conn;"), ("ip_hash", "ip_hash;")],
)
def test_site_method_line(method: str, line: str | None) -> None:
    lines = [x.strip() for x in site(method=method).splitlines()]
    upstream = lines[lines.index("upstream labctl_t {") + 1 :]
    methods = [x for x in upstream[: upstream.index("}")] if x in {"least_conn;", "ip_hash;"}]
    assert methods == ([line] if line else [])


def test_site_servers_keepalive_and_proxy_settings() -> None:
    text = site(max_fails=3, fail_timeout="7s", connect_timeout=1.5, read_timeout="1m")
    assert "    server 10.0.0.11:3000 max_fails=3 fail_timeout=7s;  # app1\n" in text
    assert "    server 10.0.0.12:3000 max_fails=3 fail_timeout=7s;  # app2\n" in text
    assert "    keepalive 16;\n    keepalive_timeout 4s;\n" in text
    for line in (
        "listen 80 default_server;",
        "server_name t.lab;",
        "add_header X-Lab-Backend $upstream_addr always;",
        "proxy_pass http://labctl_t;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_connect_timeout 1500ms;",
        "proxy_read_timeout 60s;",
        "proxy_next_upstream error timeout http_502 http_503 http_504;",
    ):
        assert f" {line}\n" in text, line
    assert "non_idempotent" not in text
    assert text.count("{") == text.count("}")


def test_site_keepalive_zero_omits_keepalive_lines() -> None:
    text = site(keepalive=0)
    assert "keepalive" not in text


def test_site_retry_non_idempotent() -> None:
    assert "http_504 non_idempotent;" in site(retry_non_idempotent=True)


def test_site_server_names_and_port_follow_the_lab() -> None:
    data = hello_data()
    data |= {"aliases": ["www.t.lab", "t2.lab"], "lb": {"port": 8080}}
    lab = lab_from(data)
    for text in (render_nginx_site(lab, BACKENDS), render_placeholder_site(lab)):
        assert "    listen 8080 default_server;\n" in text
        assert "    server_name t.lab www.t.lab t2.lab;\n" in text


def test_placeholder_site_answers_503() -> None:
    text = render_placeholder_site(parse_lab(SEED_LAB))
    assert 'return 503 "labctl: waiting for backends\\n";' in text
    assert "upstream" not in text and "listen 80 default_server;" in text


@pytest.mark.parametrize(
    "address",
    [
        "app1:3000",
        "10.0.0.1",
        "10.0.0.1:0",
        "10.0.0.1:70000",
        "10.0.0.1:3000; evil",
        "10.0.0.1:3000 backup",
        "10.0.0.1 :3000",
        "fd00::1:3000",
        "[10.0.0.1]:3000",
        "[fe80::1%eth0;}]:3000",
        "",
    ],
)
def test_backend_address_must_be_ip_and_port(address: str) -> None:
    with pytest.raises(ValueError, match="backend"):
        site([Backend("app1", address)])


def test_backend_vm_name_and_ipv6() -> None:
    with pytest.raises(ValueError, match="VM name"):
        site([Backend("app1\n}", "10.0.0.1:3000")])
    assert "server [fd00::1]:3000 " in site([Backend("app1", "[fd00:0::1]:3000")])


def test_site_without_backends_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        site([])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.0, "2s"), (5, "5s"), (1.5, "1500ms"), (0.25, "250ms"), (0.0001, "1ms"), (120.0, "120s")],
)
def test_nginx_time(seconds: float, text: str) -> None:
    assert render_nginx.nginx_time(seconds) == text


def test_fail_timeout_is_whole_seconds() -> None:
    assert "fail_timeout=2s;" in site(fail_timeout=1.2)
    assert "fail_timeout=3s;" in site(fail_timeout=2.5)
    assert render_nginx.nginx_seconds(4.0) == "4s"


def test_site_path_and_commands() -> None:
    lab = parse_lab(SEED_LAB)
    assert nginx_site_path(lab) == "/etc/nginx/sites-available/labctl-alvin.conf"
    assert LB_APPLY_COMMAND == ["sudo", "/usr/local/sbin/labctl-lb-apply"]
    assert VM_STATUS_COMMAND == ["sudo", "/usr/local/sbin/labctl-vm-status"]
    assert INSTANCE_MARKER_PATH == "/etc/labctl/instance.json"
    assert APP_LOG_COMMAND(50) == [
        "sudo",
        "tail",
        "-n",
        "50",
        "/home/ubuntu/.pm2/logs/labctl-app-out.log",
        "/home/ubuntu/.pm2/logs/labctl-app-error.log",
    ]
    assert NGINX_LOG_COMMAND(5) == ["sudo", "tail", "-n", "5", "/var/log/nginx/error.log"]
    assert CLOUD_INIT_LOG_COMMAND(7)[-1] == "/var/log/cloud-init-output.log"
    with pytest.raises(ValueError):
        NGINX_LOG_COMMAND(0)


# --- purity and assets ----------------------------------------------------------------------------


def test_render_modules_are_pure() -> None:
    impure_modules = {
        "os",
        "subprocess",
        "pathlib",
        "time",
        "datetime",
        "random",
        "socket",
        "shutil",
    }
    for module in (render, render_app, render_nginx):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & impure_modules, f"{module.__name__} imports {names}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "print", "input"}, module.__name__


def test_read_assets_finds_every_file() -> None:
    assets = read_assets()
    assert assets.nodesource_key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert assets.provision_app.startswith("#!/bin/bash\n")
    assert read_assets(ASSET_DIR) == assets
    with pytest.raises(AttributeError):
        assets.hello_server = "x"  # type: ignore[misc]


def test_read_assets_reports_a_broken_install(tmp_path: Path) -> None:
    with pytest.raises(LabctlError, match="missing"):
        read_assets(tmp_path)
    shutil.copytree(ASSET_DIR, tmp_path / "ci")
    (tmp_path / "ci" / ASSET_FILES["vm_status"]).unlink()
    with pytest.raises(LabctlError, match="vm_status"):
        read_assets(tmp_path / "ci")
    (tmp_path / "ci" / ASSET_FILES["vm_status"]).write_text("x")
    (tmp_path / "ci" / ASSET_FILES["nodesource_key"]).write_text("not a key")
    with pytest.raises(LabctlError, match="armored"):
        read_assets(tmp_path / "ci")


# --- provision-app.sh ---------------------------------------------------------------------------


def test_provision_script_fails_loudly_and_never_traces(assets: Assets) -> None:
    script = assets.provision_app
    subprocess.run(["bash", "-n", str(ASSET_DIR / "provision-app.sh")], check=True)
    assert "set -euo pipefail\n" in script
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "set -x" in line or "xtrace" in line]
    assert not [line for line in code if "CI=true" in line]
    for needle in (
        "command -v pm2",
        "npm install -g --no-fund --no-audit pm2@7",
        'git clone --quiet -- "$LABCTL_GIT_URL"',
        'checkout --quiet "$LABCTL_GIT_REF" --',
        "pm2 startOrReload ecosystem.config.js && pm2 save",
        'env PATH="$PATH:/usr/bin" pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME"',
        # the app runs under the startup unit, so a power-off keeps pm2's saved list as saved
        'runuser -l "$APP_USER" -c \'pm2 kill\' >/dev/null\nsystemctl restart "pm2-$APP_USER"',
    ):
        assert needle in script, needle


# --- labctl-lb-apply --------------------------------------------------------------------------


def run_lb_apply(
    tmp_path: Path, text: str | bytes, **commands: list[str]
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.json"
    site_path = tmp_path / "sites-available" / "labctl-t.conf"
    lb = {"site": str(site_path), "enabled": str(tmp_path / "enabled.conf"), "port": 80}
    defaults = {"test": ["true"], "is_active": ["true"], "reload": ["true"], "start": ["true"]}
    config.write_text(json.dumps({"app": None, "lb": {**lb, "commands": defaults | commands}}))
    data = text.encode() if isinstance(text, str) else text
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(ASSET_DIR / "lb_apply.py")],
        input=data,
        capture_output=True,
        env={"PATH": os.environ["PATH"], "LABCTL_CONFIG": str(config)},
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def test_lb_apply_applies_then_reports_unchanged(tmp_path: Path) -> None:
    site_path = tmp_path / "sites-available" / "labctl-t.conf"
    first = run_lb_apply(tmp_path, "one;\n")
    assert (first.returncode, first.stdout) == (0, "applied\n"), first.stderr
    assert site_path.read_text() == "one;\n"
    assert stat.S_IMODE(site_path.stat().st_mode) == 0o644
    again = run_lb_apply(tmp_path, "one;\n", reload=["false"])  # nginx untouched: no reload
    assert (again.returncode, again.stdout) == (0, "unchanged\n")
    second = run_lb_apply(tmp_path, "two;\n")
    assert second.stdout == "applied\n"
    assert site_path.with_name("labctl-t.conf.bak").read_text() == "one;\n"


def test_lb_apply_restores_the_old_site_when_nginx_rejects(tmp_path: Path) -> None:
    site_path = tmp_path / "sites-available" / "labctl-t.conf"
    run_lb_apply(tmp_path, "good;\n")
    marker = tmp_path / "reloaded"
    bad = run_lb_apply(
        tmp_path,
        "bad {\n",
        test=["sh", "-c", "echo 'nginx: [emerg] unexpected end of file' >&2; exit 1"],
        reload=["touch", str(marker)],
    )
    assert bad.returncode == 1
    assert "unexpected end of file" in bad.stderr and bad.stdout == ""
    assert site_path.read_text() == "good;\n"
    assert not marker.exists(), "must not reload after a failed nginx -t"


def test_lb_apply_first_site_rejected_leaves_no_file(tmp_path: Path) -> None:
    bad = run_lb_apply(tmp_path, "bad {\n", test=["false"])
    assert bad.returncode == 1
    assert not (tmp_path / "sites-available" / "labctl-t.conf").exists()


def test_lb_apply_starts_inactive_nginx_and_reports_reload_failure(tmp_path: Path) -> None:
    started = tmp_path / "started"
    ok = run_lb_apply(tmp_path, "a;\n", is_active=["false"], start=["touch", str(started)])
    assert ok.stdout == "applied\n" and started.exists()
    failed = run_lb_apply(tmp_path, "b;\n", reload=["sh", "-c", "echo boom >&2; exit 1"])
    assert failed.returncode == 3 and "boom" in failed.stderr


@pytest.mark.parametrize("stdin", [b"", b"  \n", b"\xff\xfe bad utf8", b"x" * 1_000_001])
def test_lb_apply_rejects_bad_input(tmp_path: Path, stdin: bytes) -> None:
    proc = run_lb_apply(tmp_path, stdin)
    assert proc.returncode == 2 and proc.stdout == ""


def test_lb_apply_reports_missing_config(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(ASSET_DIR / "lb_apply.py")],
        input="x;\n",
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "LABCTL_CONFIG": str(tmp_path / "none.json")},
        check=False,
    )
    assert proc.returncode == 2 and "cannot read the LB settings" in proc.stderr


# --- labctl-vm-status -----------------------------------------------------------------------------


def test_status_parses_cloud_init_json_and_text() -> None:
    status = load_script("vm_status")
    assert status.parse_cloud_init('{"status": "done", "errors": []}') == {
        "status": "done",
        "errors": [],
    }
    degraded = {
        "status": "done",
        "extended_status": "degraded done",
        "errors": [],
        "recoverable_errors": {"DEPRECATED": ["apt_update is deprecated"]},
    }
    assert status.parse_cloud_init(json.dumps(degraded)) == {
        "status": "degraded done",
        "errors": ["DEPRECATED: apt_update is deprecated"],
    }
    failed = {"status": "error", "extended_status": "error - done", "errors": ["runcmd failed"]}
    assert status.parse_cloud_init(json.dumps(failed)) == {
        "status": "error",
        "errors": ["runcmd failed"],
    }
    assert status.parse_cloud_init("\nstatus: running\n")["status"] == "running"
    with pytest.raises(ValueError):
        status.parse_cloud_init("garbage")


PM2_BANNER = "                        -------------\n__/\\\\\\\\ PM2 banner\n[PM2] Spawning PM2 daemon with pm2_home=/x\n"
JLIST = [
    {
        "pid": 1234,
        "name": "app",
        "pm_id": 0,
        "monit": {"memory": 52_000_000, "cpu": 0.5},
        "pm2_env": {"status": "online", "restart_time": 2, "env": {"SECRET": "hunter2"}},
    }
]


def test_status_parses_jlist_even_after_a_banner_and_drops_env() -> None:
    status = load_script("vm_status")
    expected = [
        {"name": "app", "status": "online", "restarts": 2, "pid": 1234, "memory": 52_000_000}
    ]
    assert status.parse_jlist(json.dumps(JLIST)) == expected
    assert status.parse_jlist(PM2_BANNER + json.dumps(JLIST) + "\n") == expected
    assert "hunter2" not in json.dumps(status.parse_jlist(json.dumps(JLIST)))
    with pytest.raises(ValueError, match="no JSON"):
        status.parse_jlist(PM2_BANNER)


def fake_bin(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def status_env(tmp_path: Path) -> Any:
    """Fake cloud-init/runuser/pm2/systemctl/nginx on PATH, a listening app port, a PM2-named
    daemon process, and a config.json for both roles."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake_bin(bin_dir, "cloud-init", """echo '{"status": "done", "errors": []}'; exit 0""")
    fake_bin(bin_dir, "runuser", 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"')
    jlist = json.dumps(JLIST).replace("'", "")
    fake_bin(
        bin_dir,
        "pm2",
        f"echo \"pm2 $* HOME=$HOME PM2_HOME=$PM2_HOME\" >> {calls}\nprintf '%s' '{PM2_BANNER}'\necho '{jlist}'",
    )
    fake_bin(bin_dir, "systemctl", "echo active")
    fake_bin(bin_dir, "nginx", "exit 0")
    pm2_home = tmp_path / "home" / ".pm2"
    pm2_home.mkdir(parents=True)
    site_path = tmp_path / "site.conf"
    site_path.write_text("server {}\n")
    enabled = tmp_path / "enabled.conf"
    enabled.symlink_to(site_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    daemon = subprocess.Popen(["bash", "-c", 'exec -a "PM2 v7.0.4: God Daemon (x)" sleep 60'])
    (pm2_home / "pm2.pid").write_text(f"{daemon.pid}\n")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "app": {
                    "name": "app",
                    "port": listener.getsockname()[1],
                    "user": "nobody",
                    "pm2_home": str(pm2_home),
                },
                "lb": {"site": str(site_path), "enabled": str(enabled), "port": 80},
            }
        )
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LABCTL_CONFIG": str(config)}

    def run_status(path: str | None = None) -> dict[str, Any]:
        if path is not None:
            env["PATH"] = path
        proc = subprocess.run(
            [SYSTEM_PYTHON, str(ASSET_DIR / "vm_status.py")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, proc.stdout
        result: dict[str, Any] = json.loads(lines[0])
        return result

    try:
        yield {
            "run": run_status,
            "bin": bin_dir,
            "calls": calls,
            "pm2_home": pm2_home,
            "config": config,
            "daemon": daemon,
            "listener": listener,
            "enabled": enabled,
        }
    finally:
        daemon.kill()
        daemon.wait()
        listener.close()


def test_status_reports_a_healthy_vm(status_env: Any) -> None:
    report = status_env["run"]()
    # The app's port is held by this test's process, which pm2 did not start.
    [listener] = report["app"].pop("listeners")
    assert listener["pid"] == os.getpid() and listener["pm2"] == []
    assert report == {
        "cloud_init": {"status": "done", "errors": []},
        "app": {
            "pm2_daemon": True,
            "processes": [
                {
                    "name": "app",
                    "status": "online",
                    "restarts": 2,
                    "pid": 1234,
                    "memory": 52_000_000,
                }
            ],
            "port_open": True,
            "error": None,
        },
        "nginx": {
            "active": True,
            "config_ok": True,
            "config_error": "",
            "site_enabled": True,
            "error": None,
        },
    }
    home = status_env["pm2_home"]
    assert status_env["calls"].read_text() == f"pm2 jlist HOME={home.parent} PM2_HOME={home}\n"


def test_status_never_spawns_a_pm2_daemon(status_env: Any) -> None:
    status_env["daemon"].kill()
    status_env["daemon"].wait()
    report = status_env["run"]()
    assert report["app"]["pm2_daemon"] is False and report["app"]["processes"] == []
    assert not status_env["calls"].exists(), "pm2 jlist would have spawned a daemon"
    # A pid file naming a live process that is not PM2 (pid reuse after reboot) does not count.
    (status_env["pm2_home"] / "pm2.pid").write_text(f"{os.getpid()}\n")
    assert status_env["run"]()["app"]["pm2_daemon"] is False


def test_status_reports_failures_without_crashing(status_env: Any) -> None:
    bin_dir = status_env["bin"]
    fake_bin(
        bin_dir, "cloud-init", """echo '{"status": "error", "errors": ["runcmd failed"]}'; exit 1"""
    )
    fake_bin(bin_dir, "nginx", "echo 'nginx: [emerg] unknown directive \"x\"' >&2; exit 1")
    fake_bin(bin_dir, "systemctl", "echo failed; exit 3")
    fake_bin(bin_dir, "pm2", "echo 'not json'; exit 0")
    status_env["listener"].close()
    status_env["enabled"].unlink()
    report = status_env["run"]()
    assert report["cloud_init"] == {"status": "error", "errors": ["runcmd failed"]}
    assert report["app"]["port_open"] is False and report["app"]["pm2_daemon"] is True
    assert "no JSON array" in report["app"]["error"]
    nginx = report["nginx"]
    assert (
        nginx["active"] is False and nginx["config_ok"] is False and nginx["site_enabled"] is False
    )
    assert 'unknown directive "x"' in nginx["config_error"]


def test_status_survives_missing_tools_and_config(status_env: Any) -> None:
    for name in ("cloud-init", "nginx", "systemctl", "runuser", "pm2"):
        (status_env["bin"] / name).unlink()
    report = status_env["run"](str(status_env["bin"]))  # only the (now empty) fake bin dir
    assert report["cloud_init"]["status"] == "unknown" and report["cloud_init"]["errors"]
    assert report["nginx"]["config_error"].startswith("nginx -t:")
    status_env["config"].unlink()
    report = status_env["run"]()
    assert report["app"] is None and report["nginx"] is None
    assert any("labctl config" in e for e in report["cloud_init"]["errors"])


def test_status_app_only_vm_has_null_nginx(status_env: Any) -> None:
    config = json.loads(status_env["config"].read_text())
    config["lb"] = None
    status_env["config"].write_text(json.dumps(config))
    report = status_env["run"]()
    assert report["nginx"] is None and report["app"]["pm2_daemon"] is True
