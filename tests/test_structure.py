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
    assert users == {"labctl/multipass/adapter.py", "labctl/host/privileged.py"}


def test_only_the_adapter_names_the_multipass_binary_in_argv() -> None:
    for path in MODULES:
        if rel(path).startswith("labctl/multipass/"):
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
    assert {rel(p) for p in MODULES if "tenacity" in imports_of(p)} == {"labctl/host/probes.py"}


def test_yaml_is_read_in_one_place_and_written_by_rendering() -> None:
    users = {rel(p) for p in MODULES if "yaml" in imports_of(p)}
    assert users <= {"labctl/config/yamlpos.py", "labctl/render/userdata.py"}
    assert "labctl/config/yamlpos.py" in users


def test_cli_only_parses_and_prints() -> None:
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        banned = imports_of(path) & {"subprocess", "yaml", "tenacity", "click", "socket", "http"}
        assert not banned, f"{rel(path)} imports {banned}"


def test_use_cases_never_print() -> None:
    for path in sorted((PACKAGE / "ops").rglob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"
        ]
        assert not calls, f"{rel(path)} prints"
        assert not {"rich", "typer"} & imports_of(path), f"{rel(path)} imports a UI library"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def labctl_imports(path: Path) -> set[str]:
    """The labctl modules `path` imports, absolute (`from labctl.x import y` names labctl.x.y
    when that is a module, else labctl.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("labctl"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labctl"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in GRAPH_NODES else node.module)
    return found


GRAPH_NODES = {module_name(p) for p in MODULES}
GRAPH = {module_name(p): labctl_imports(p) & GRAPH_NODES for p in MODULES}

# The layers, bottom up; a module may import its own layer's package and the layers below.
LAYERS: list[tuple[str, ...]] = [
    ("labctl", "labctl.errors", "labctl.model", "labctl.scalars"),
    ("labctl.config", "labctl.render", "labctl.multipass", "labctl.host"),
    ("labctl.ops",),
    ("labctl.cli",),
    ("labctl.__main__",),
]


def layer_of(module: str) -> tuple[int, str]:
    """(rank, package) of a module: the longest layer prefix it falls under."""
    best = (0, "labctl")
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) >= len(
                best[1]
            ):
                best = (rank, package)
    return best


def test_the_tree_has_one_package_per_layer() -> None:
    packages = {module_name(p) for p in MODULES if p.name == "__init__.py"}
    assert {"labctl.config", "labctl.render", "labctl.multipass", "labctl.host"} <= packages
    assert {"labctl.ops", "labctl.ops.classroom", "labctl.cli"} <= packages
    flat = sorted(module_name(p) for p in PACKAGE.glob("*.py"))
    assert flat == ["labctl", "labctl.__main__", "labctl.errors", "labctl.model", "labctl.scalars"]
    for path in MODULES:
        if path.name == "__init__.py" and path.parent != PACKAGE:
            tree = ast.parse(path.read_text())
            assert ast.get_docstring(tree), f"{rel(path)} says what the package owns"
            assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)][1:], (
                f"{rel(path)}: a layer's __init__ holds its docstring, not re-exports"
            )


def test_layers_import_downwards_only() -> None:
    assert len(GRAPH) == len(MODULES)
    for module, imported in GRAPH.items():
        rank, package = layer_of(module)
        for target in imported:
            target_rank, target_package = layer_of(target)
            assert target_rank <= rank, f"{module} imports {target}, a higher layer"
            if target_rank == rank and rank == 1:
                # config, render, multipass and host stand side by side: none uses another
                assert target_package == package, f"{module} imports {target} (a sibling layer)"


def test_single_lab_use_cases_never_reach_up_to_the_class_fan_out() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("labctl.ops.") and not module.startswith("labctl.ops.classroom"):
            assert not {m for m in imported if m.startswith("labctl.ops.classroom")}, module


def test_cli_command_modules_import_the_shared_app_never_the_other_way_round() -> None:
    # app.py may use the helpers that register no commands: output, progress, conventions
    assert not {m for m in GRAPH["labctl.cli.app"] if m.startswith("labctl.cli.")} - {
        "labctl.cli.output",
        "labctl.cli.progress",
        "labctl.cli.conventions",
    }
    for module, imported in GRAPH.items():
        if module != "labctl.__main__":
            assert "labctl.cli.main" not in imported, f"{module} imports the entry point"
        if module.startswith("labctl.cli.output"):
            assert not {m for m in imported if m.startswith("labctl.cli.")} - {
                "labctl.cli.output"
            }, f"{module}: output formats results, it registers no commands"


def test_no_import_cycles() -> None:
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if target == module or target in ("labctl",) or module.startswith(target + "."):
                continue  # a package's own __init__ is imported by Python before its modules
            if state.get(target) == "open":
                cycle = path[path.index(target) :] if target in path else path
                pytest.fail(f"import cycle: {' -> '.join([*cycle, target])}")
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_modules_stay_small() -> None:
    big = {rel(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 450}
    assert not big, f"split these modules (style.md 'When it grows'): {big}"
