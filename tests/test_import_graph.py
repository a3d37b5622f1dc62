"""The package graph the README draws: no import cycles in ``pipelines/`` or ``workers/``, stage packages that
never reach the storage, the catalog, the job or the workers, and no module borrowing another's private names.

The graph is read from the source (every module parsed, not imported), so an import made lazily inside a
function counts as much as one at the top of a module: a cycle that only closes at run time is still a cycle.
An edge goes from a module to the module it names: ``from pipelines.catalog import leases`` to
``pipelines.catalog.leases``, ``from pipelines.catalog import Catalog`` to ``pipelines.catalog``. The package
``__init__`` that Python runs before any of its submodules is no edge: a package that imports its own
submodules in its ``__init__`` (as ``pipelines.catalog`` does) is the usual layout, not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipelines", "workers")
STAGE_PACKAGES = ("pipelines.media", "pipelines.video", "pipelines.audio", "pipelines.match", "pipelines.report")
"""Pure stages: local files and frozen config in, frozen dataclasses out."""
FORBIDDEN_IN_STAGES = ("pipelines.storage", "pipelines.catalog", "pipelines.job", "pipelines.clip_job", "workers")
"""What a stage must never load, directly or through another module: it would no longer be pure."""

Graph = Mapping[str, frozenset[str]]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project's packages by dotted name (a package by its own name, for its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:  # Alembic's scripts: loaded by Alembic from files, never imported
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(module: str, source: str, *, is_package: bool, known: Collection[str]) -> set[str]:
    """The project modules (those in ``known``) that ``source`` imports anywhere: at the top, inside functions,
    under ``TYPE_CHECKING``; relative imports resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # ``from x import y`` where y is a module of x
                    found.add(submodule)
                elif base in known:  # a name defined in x
                    found.add(base)
    found.discard(module)
    return found


def import_graph(root: Path = ROOT) -> Graph:
    """Each project module → the project modules it imports."""
    files = module_files(root)
    return {
        module: frozenset(imported_modules(module, path.read_text(encoding="utf-8"),
                                           is_package=path.name == "__init__.py", known=files))
        for module, path in files.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected component of more than one module, each as a cycle through it (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_a_cycle(graph, frozenset(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _a_cycle(graph: Graph, component: frozenset[str]) -> list[str]:
    """One import cycle inside ``component``, as the modules in import order, the first repeated at the end."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to the start
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def reachable(graph: Graph, module: str) -> dict[str, list[str]]:
    """Every module ``module`` loads, directly or not, with the chain of imports that brings it in."""
    chains = {module: [module]}
    frontier = [module]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target not in chains:
                    chains[target] = [*chains[node], target]
                    following.append(target)
        frontier = following
    return chains


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


# --- the project's graph --------------------------------------------------------------------------------------


def test_no_import_cycles_in_pipelines_or_workers() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in found)


def test_stage_packages_never_reach_storage_catalog_job_or_workers() -> None:
    graph = import_graph()
    stages = [module for module in graph if _within(module, STAGE_PACKAGES)]
    assert len(stages) > 20, stages  # the packages were found and read
    violations = [
        " → ".join(chain)
        for module in stages
        for target, chain in reachable(graph, module).items()
        if _within(target, FORBIDDEN_IN_STAGES)
    ]
    assert violations == [], "stage modules that load what they must not:\n" + "\n".join(violations)


def private_imports(source: str) -> list[str]:
    """``module.name`` for every ``from module import _name`` of a project module: a name its module keeps to
    itself (dunders such as ``__version__`` are public)."""
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in PACKAGES)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


def test_no_module_imports_another_modules_private_names() -> None:
    found = {module: names for module, path in module_files().items()
             if (names := private_imports(path.read_text(encoding="utf-8")))}
    assert found == {}, found
    assert private_imports("from pipelines.catalog import Catalog, _insert_ignore\nfrom os import _exit\n") == [
        "pipelines.catalog._insert_ignore"]


def test_the_graph_sees_the_imports_the_workers_are_known_to_make() -> None:
    """The graph is not empty by mistake: imports this project is known to make, lazy ones included."""
    graph = import_graph()
    assert "pipelines.catalog.leases" in graph["workers.tasks"]
    assert "pipelines.catalog" in graph["pipelines.catalog.leases"]
    assert "pipelines.catalog.models" in graph["pipelines.catalog"]
    assert {"workers.tasks", "workers.notifications", "workers.sweeper"} <= graph["workers.celery_app"]  # lazy


# --- the checks themselves, on small made-up packages ----------------------------------------------------------


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_a_lazy_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "workers/tasks.py": "def handle():\n    from workers.notifications import handle_bucket_event\n",
        "workers/notifications.py": "from workers.tasks import PROCESS_ASSET\n",
    })
    assert cycles(import_graph(root)) == [["workers.notifications", "workers.tasks", "workers.notifications"]]


def test_relative_imports_and_submodules_named_in_from_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "pipelines/audio/__init__.py": "",
        "pipelines/audio/features.py": "from . import rhythm\nfrom ..catalog import Catalog\n",
        "pipelines/audio/rhythm.py": "from .features import tempo\n",
        "pipelines/catalog/__init__.py": "from pipelines.catalog.models import Job\nclass Catalog: ...\n",
        "pipelines/catalog/models.py": "",
    })
    graph = import_graph(root)
    assert graph["pipelines.audio.features"] == {"pipelines.audio.rhythm", "pipelines.catalog"}
    assert graph["pipelines.catalog"] == {"pipelines.catalog.models"}
    assert cycles(graph) == [["pipelines.audio.features", "pipelines.audio.rhythm", "pipelines.audio.features"]]
    assert reachable(graph, "pipelines.audio.rhythm")["pipelines.catalog.models"] == [
        "pipelines.audio.rhythm", "pipelines.audio.features", "pipelines.catalog", "pipelines.catalog.models"]


@pytest.mark.parametrize("module", ["pipelines.storage", "pipelines.catalog.leases", "workers", "pipelines.job"])
def test_forbidden_targets_are_recognised(module: str) -> None:
    assert _within(module, FORBIDDEN_IN_STAGES)
    assert not _within("pipelines.storageless", FORBIDDEN_IN_STAGES)  # a prefix of a name is not the package
