"""The architecture's boundaries, checked by reading the source (style.md §6.2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "labctl"
MODULES = sorted(PACKAGE.rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0] if node.level == 0 else node.module)
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_modules_exist() -> None:
    assert len(MODULES) > 15


def test_only_the_adapter_and_the_sudo_writer_start_processes() -> None:
    users = {rel(p) for p in MODULES if {"subprocess", "os.system", "pty"} & imports_of(p)}
    assert users == {"labctl/multipass.py", "labctl/privileged.py"}


def test_only_the_adapter_names_the_multipass_binary_in_argv() -> None:
    for path in MODULES:
        if path.name in ("multipass.py", "multipass_parse.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant):
                assert node.elts[0].value != "multipass", f"{rel(path)} builds a multipass argv"


# Also the code that runs on the VMs and the test doubles that run processes for the tests.
SHELL_FREE = [
    *MODULES,
    *sorted((PACKAGE.parent / "cloud-init").glob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "fake_multipass").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "simvm").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "e2e").rglob("*.py")),
]


def test_no_shell_anywhere() -> None:
    assert len(SHELL_FREE) > len(MODULES) + 10
    for path in SHELL_FREE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                pytest.fail(f"{rel(path)} passes shell= to a process call")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("system", "popen", "create_subprocess_shell")
                and getattr(node.value, "id", "") in ("os", "asyncio")
            ):
                pytest.fail(f"{rel(path)} uses {getattr(node.value, 'id', '')}.{node.attr}")


def test_tenacity_lives_in_probes_only() -> None:
    assert {rel(p) for p in MODULES if "tenacity" in imports_of(p)} == {"labctl/probes.py"}


def test_yaml_is_read_in_one_place_and_written_by_rendering() -> None:
    users = {rel(p) for p in MODULES if "yaml" in imports_of(p)}
    assert users <= {"labctl/yamlpos.py", "labctl/render.py"}
    assert "labctl/yamlpos.py" in users


def test_cli_only_parses_and_prints() -> None:
    cli = imports_of(PACKAGE / "cli.py")
    assert not cli & {"subprocess", "yaml", "tenacity", "click", "socket", "http"}


def test_use_cases_never_print() -> None:
    for path in sorted((PACKAGE / "ops").glob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"
        ]
        assert not calls, f"{rel(path)} prints"
        assert not {"rich", "typer"} & imports_of(path), f"{rel(path)} imports a UI library"


def test_layers_import_downwards_only() -> None:
    lower = [
        "labctl/model.py",
        "labctl/config.py",
        "labctl/render.py",
        "labctl/render_app.py",
        "labctl/render_nginx.py",
        "labctl/hosts.py",
        "labctl/probes.py",
        "labctl/multipass.py",
        "labctl/multipass_parse.py",
        "labctl/errors.py",
        "labctl/yamlpos.py",
        "labctl/state.py",
    ]
    for name in lower:
        path = PACKAGE.parent / name
        if not path.exists():
            continue
        imported = imports_of(path)
        assert not {
            m for m in imported if m.startswith(("labctl.ops", "labctl.cli", "labctl.output"))
        }, name


def test_modules_stay_small() -> None:
    big = {rel(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 450}
    assert not big, f"split these modules (style.md 'When it grows'): {big}"
