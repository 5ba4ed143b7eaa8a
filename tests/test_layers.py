"""The layers the tree promises, checked on the import graph (every import statement, at module level or inside a
function; imports only for type checkers are left out, as they never run):

- the engine library (scenarios, markets, agents, regulation, engine, metrics, output, aggregate, the CLI and the
  API client) imports neither the platform layer (algocomp.platform: settings, logs, db, storage, queue, progress,
  tracking) nor a service;
- the platform layer imports no service;
- no service imports another;
- no two modules import each other, directly or round a longer cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "algocomp": ROOT / "shared" / "algocomp",
    "algocomp_api": ROOT / "services" / "api" / "algocomp_api",
    "algocomp_worker": ROOT / "services" / "worker" / "algocomp_worker",
    "algocomp_aggregator": ROOT / "services" / "aggregator" / "algocomp_aggregator",
}
PLATFORM = "platform"


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module of ours that `import name` loads (its longest prefix that is a module), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(module: str, path: Path) -> set[str]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else node.module
            )
            names = [f"{base}.{alias.name}".strip(".") for alias in node.names]
        else:
            continue
        found.update(m for m in map(_known, names) if m and m != module)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _layer(module: str) -> str:
    package, _, rest = module.partition(".")
    if package != "algocomp":
        return package  # a service
    top = rest.split(".")[0]
    if top == PLATFORM:
        return "platform"
    return "library"


def test_the_graph_sees_the_packages():
    assert {
        "algocomp.engine.session",
        "algocomp.platform.db.models",
        "algocomp_api.main",
        "algocomp_worker.execute",
    } <= set(MODULES)
    assert "algocomp.engine.build" in GRAPH["algocomp.engine.session"]
    assert "algocomp.platform.db" in GRAPH["algocomp_api.runs.service"] or any(
        m.startswith("algocomp.platform.db") for m in GRAPH["algocomp_api.runs.service"]
    )


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) == "library"))
def test_the_engine_library_imports_no_platform_module_or_service(module):
    wrong = sorted(m for m in GRAPH[module] if _layer(m) != "library")
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) == "platform"))
def test_the_platform_imports_no_service(module):
    wrong = sorted(m for m in GRAPH[module] if _layer(m) not in ("library", "platform"))
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith("algocomp.") and m != "algocomp"))
def test_no_service_imports_another(module):
    own = module.split(".")[0]
    wrong = sorted(m for m in GRAPH[module] if _layer(m) not in (own, "library", "platform"))
    assert not wrong, f"{module} imports {wrong}"


def test_no_import_cycles():
    """Tarjan's strongly connected components: any with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in GRAPH[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles
