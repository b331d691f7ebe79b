"""The packages import only downwards (node -> web -> realtime -> hooks -> bus -> store ->
transport -> config -> primitives), no module imports itself back through others, and the leaf
modules (service/primitives) import nothing else of the project. Read from the source with `ast`,
so a new import that breaks the shape fails here, naming the module and what it imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
# lowest first; a module may import its own layer's modules and those of layers below
LAYERS = [
    ("primitives", ("service.primitives", "service.errors")),
    ("config", ("service.settings", "service.tokens", "service.passwords", "service.app_keys",
                "service.app_tokens")),
    ("transport", ("service.transport",)),
    ("store", ("service.store",)),
    ("bus", ("service.bus",)),
    ("hooks", ("service.hooks",)),
    ("realtime", ("service.realtime",)),
    ("web", ("service.web",)),
    ("node", ("service.node", "service")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports (a package import counts as its __init__)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # `from package import module` needs the module; `from module import name`, the
            # module (a package's __init__ when the name is no module of its own)
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != this:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in SERVICE.rglob("*.py")}
    return {module: imports_of(path, set(paths)) for module, path in sorted(paths.items())}


GRAPH = graph()


def test_every_module_is_in_a_layer():
    for module in GRAPH:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_its_layer_and_those_below(module):
    own = layer_of(module)
    upwards = sorted(f"{name} ({LAYERS[layer_of(name)][0]})" for name in GRAPH[module]
                     if layer_of(name) > own
                     and not (module == "service" and name.startswith("service.")))
    assert not upwards, f"{module} ({LAYERS[own][0]}) imports upwards: {', '.join(upwards)}"


def test_the_leaf_modules_import_nothing_else_of_the_project():
    for module, imported in GRAPH.items():
        if module.startswith("service.primitives"):
            others = sorted(name for name in imported if not name.startswith("service.primitives"))
            assert not others, f"{module} imports {others}"


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """The module groups that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for name in graph.get(module, ()):
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in on_stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            component = []
            while True:
                name = stack.pop()
                on_stack.discard(name)
                component.append(name)
                if name == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_back():
    assert not cycles_in(GRAPH), f"modules that import each other: {cycles_in(GRAPH)}"


def test_the_shape_checks_can_fail(tmp_path, monkeypatch):
    """An upward import, a cycle and a package import are seen for what they are."""
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles_in({"a": {"b"}, "b": set()}) == []
    package = tmp_path / "service"
    (package / "store").mkdir(parents=True)
    (package / "web").mkdir()
    for name in ("__init__.py", "store/__init__.py", "web/__init__.py", "web/api.py"):
        (package / name).write_text("")
    (package / "store" / "keys.py").write_text("from ..web import api\nfrom . import rules\n")
    (package / "store" / "rules.py").write_text("X = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    modules = {module_name(path) for path in package.rglob("*.py")}
    imported = imports_of(package / "store" / "keys.py", modules)
    assert imported == {"service.web.api", "service.store.rules"}
    assert layer_of("service.web.api") > layer_of("service.store.keys")
