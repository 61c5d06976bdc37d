"""The architecture's boundaries, checked by reading the source (the layering rules in
docs/architecture.md), and a repository that cites only what its reader can open."""

from __future__ import annotations

import ast
import re
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


def test_only_the_engines_and_the_sudo_writer_start_processes() -> None:
    users = {rel(p) for p in MODULES if {"subprocess", "os.system", "pty"} & imports_of(p)}
    assert users == {
        "labctl/engine/process.py",  # the engines' bounded runner
        "labctl/engine/multipass/adapter.py",  # its CLI, through that runner (and a terminal)
        "labctl/engine/lxd/adapter.py",  # likewise
        "labctl/host/privileged.py",  # the hosts file through sudo
        # the headless browser of the browser check: started, and its whole tree always killed
        "labctl/host/browser/process.py",
    }
    spawners = {rel(p) for p in MODULES if "posix_spawn" in p.read_text()}
    assert spawners <= {"labctl/host/browser/process.py"}


def test_only_the_adapter_names_the_multipass_binary_in_argv() -> None:
    for path in MODULES:
        if rel(path).startswith("labctl/engine/multipass/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant):
                assert node.elts[0].value != "multipass", f"{rel(path)} builds a multipass argv"


MULTIPASS_STATE_WORDS = {
    "Running", "Starting", "Restarting", "Stopped", "Suspending", "Suspended", "Deleted",
    "Delayed Shutdown", "Unknown", "Unavailable",
}  # fmt: skip


def strings_of(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module that are not docstrings, with their lines."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_use_cases_and_cli_name_no_engine_detail() -> None:
    """ops/ and cli/ speak the engine interface: no engine's name, state word or argv in what
    they say or compare (docstrings may explain why), and no import of an engine's package."""
    for path in MODULES:
        where = rel(path)
        if not where.startswith(("labctl/ops/", "labctl/cli/")):
            continue
        if where == "labctl/cli/templates.py":  # starter lab.yaml files: data for each engine
            continue
        for line, text in strings_of(path):
            assert "multipass" not in text.lower(), f"{where}:{line} names Multipass: {text!r}"
            assert text not in MULTIPASS_STATE_WORDS, f"{where}:{line} compares a state word"
    for module, imported in GRAPH.items():
        if not module.startswith("labctl.engine"):
            engines = {m for m in imported if m.startswith("labctl.engine.multipass")}
            assert not engines, f"{module} imports {engines}: open engines through the registry"


def test_the_registry_alone_opens_an_engine_package() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("labctl.engine.") and not module.startswith("labctl.engine.multipass"):
            engines = {m for m in imported if m.startswith("labctl.engine.multipass")}
            assert module == "labctl.engine.registry" or not engines, module


# Also the code that runs on the VMs and the test doubles that run processes for the tests.
SHELL_FREE = [
    *MODULES,
    *sorted((PACKAGE.parent / "cloud-init").glob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "fake_multipass").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "simvm").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "e2e").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "fake_lxc").rglob("*.py")),
    *sorted((PACKAGE.parent / "tests" / "lxd").rglob("*.py")),
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


def test_tenacity_lives_in_the_two_retry_modules_only() -> None:
    assert {rel(p) for p in MODULES if "tenacity" in imports_of(p)} == {
        "labctl/host/probes.py",  # every wait on the lab
        "labctl/engine/lxd/settle.py",  # riding out a cluster member catching up
    }


def test_yaml_is_read_in_one_place_and_written_by_rendering() -> None:
    users = {rel(p) for p in MODULES if "yaml" in imports_of(p)}
    assert users <= {"labctl/config/yamlpos.py", "labctl/render/userdata.py"}
    assert "labctl/config/yamlpos.py" in users


def test_cli_only_parses_and_prints() -> None:
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
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
MODULE_PATHS = {module_name(p): p for p in MODULES}
GRAPH = {module_name(p): labctl_imports(p) & GRAPH_NODES for p in MODULES}

# The layers, bottom up; a module may import its own layer's package and the layers below.
LAYERS: list[tuple[str, ...]] = [
    ("labctl", "labctl.errors", "labctl.model", "labctl.scalars", "labctl.safefs"),
    ("labctl.config", "labctl.render", "labctl.engine", "labctl.host"),
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
    assert {"labctl.config", "labctl.render", "labctl.engine", "labctl.host"} <= packages
    assert {"labctl.ops", "labctl.ops.classroom", "labctl.cli"} <= packages
    flat = sorted(module_name(p) for p in PACKAGE.glob("*.py"))
    assert flat == [
        "labctl",
        "labctl.__main__",
        "labctl.errors",
        "labctl.model",
        "labctl.safefs",
        "labctl.scalars",
    ]
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
                # config, render, engine and host stand side by side: none uses another
                assert target_package == package, f"{module} imports {target} (a sibling layer)"


def test_single_lab_use_cases_never_reach_up_to_the_class_fan_out() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("labctl.ops.") and not module.startswith("labctl.ops.classroom"):
            assert not {m for m in imported if m.startswith("labctl.ops.classroom")}, module


COMMAND_MODULES = sorted(m for m in GRAPH if m.startswith("labctl.cli.commands."))


def test_each_command_is_a_module_the_app_names_and_never_imports() -> None:
    """One module per command, named in app.COMMANDS (loaded when its command runs): nothing in
    labctl imports one, so no command module reaches into another and the app stays free of
    them."""
    from labctl.cli.app import COMMANDS

    named = set(COMMANDS.values())
    assert len(COMMAND_MODULES) >= 17
    assert named == set(COMMAND_MODULES)
    for module in COMMAND_MODULES:
        tree = ast.parse(MODULE_PATHS[module].read_text())
        defined = {
            t.id
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert "cli" in defined, f"{module}: its typer app is `cli`"
    for module, imported in GRAPH.items():
        commands = {m for m in imported if m.startswith("labctl.cli.commands")}
        assert not commands, f"{module} imports {commands}: commands load through app.COMMANDS"


def test_the_shared_cli_modules_build_on_each_other_in_one_direction() -> None:
    # app.py: the typer app, consoles and options; it imports no command, printer or fork
    assert {m for m in GRAPH["labctl.cli.app"] if m.startswith("labctl.cli.")} <= {
        "labctl.cli.progress",
        "labctl.cli.conventions",
        "labctl.cli.terminal",
    }
    # printers format results: they register no command and open no context
    for module, imported in GRAPH.items():
        if module.startswith("labctl.cli.printers."):
            cli = {m for m in imported if m.startswith("labctl.cli.")}
            allowed = {"labctl.cli.terminal", "labctl.cli.jsonout", "labctl.cli.printers"}
            assert not {m for m in cli if not m.startswith(tuple(allowed))}, module
        if module != "labctl.__main__":
            assert "labctl.cli.main" not in imported, f"{module} imports the entry point"


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
    assert not big, f"split these modules by concept (over 450 lines, one mixes several): {big}"


# --- the repository cites only what its reader can open -------------------------------------------

REPO = PACKAGE.parent
# Not the repository's text: build output and, with the hidden folders (.git, .venv, tool caches,
# a lab's .labctl state), skipped below; .ci is the repository's own.
GENERATED_DIRS = {"__pycache__", "node_modules", "build", "dist"}
# Built so that this file does not match itself: a section sign with a number, a tracker number
# (the word issue and a number; upstream issues are links or "project #N"), paths into a folder
# beside the repository, and absolute paths on an author's machine.
UNOPENABLE = {
    "a section of a document outside the repository": re.compile("\u00a7" + r"\s*\d"),
    "a tracker number": re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE),
    "a path outside the repository": re.compile(r"\.\./shared\b|\bshared[/]reference\b"),
    "a path on an author's machine": re.compile(r"(?<![\w.~-])/(?:work|farm|check)/"),
}
MARKDOWN_NAME = re.compile(r"(?<![\w./<>-])([\w./-]*[\w-]+\.md)\b")


def repository_text_files() -> list[Path]:
    found = []
    for path in sorted(REPO.rglob("*")):
        folders = path.relative_to(REPO).parts[:-1]
        hidden = [part for part in folders if part.startswith(".") and part != ".ci"]
        generated = GENERATED_DIRS & set(folders) or [p for p in folders if p.endswith(".egg-info")]
        if path.name == ".git" or hidden or generated or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, bytecode
        found.append(path)
    return found


def test_the_repository_cites_nothing_a_reader_cannot_open() -> None:
    """A reader has only the repository: no section of a reference document outside it, no
    tracker number, no path on someone's machine. Say the one-line reason instead, or link a
    page under docs/ (and upstream issues by their URL)."""
    files = repository_text_files()
    names = {str(p.relative_to(REPO)) for p in files}
    assert {"README.md", "CHANGELOG.md", "Makefile", "docs/architecture.md"} <= names
    assert any(n.startswith("tests/fixtures/golden/") for n in names)  # rendered comments too
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [
                f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()[:100]}"
                for what, pattern in UNOPENABLE.items()
                if pattern.search(line)
            ]
    assert not found, "\n".join(found)


def test_every_markdown_page_the_repository_names_exists() -> None:
    """Reference notes an author kept beside the repository (the code style, the stack's facts) are
    not in it: a page named in the text must be a file of the repository (relative to the naming
    file, the repository root, docs/ or docs/engines/)."""
    missing = []
    for path in repository_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in MARKDOWN_NAME.findall(line):
                bases = (path.parent, REPO, REPO / "docs", REPO / "docs" / "engines")
                if not any((base / name).is_file() for base in bases):
                    missing.append(f"{path.relative_to(REPO)}:{number}: {name}")
    assert not missing, "\n".join(missing)
