"""Architecture rules read from the source: no import cycles, no oversized modules, the
service never importing the engine, the simulator or the bench, Lua scripts that say what
they take.

DEVELOPERS.md "How the code should feel" 9 (lower layers never import higher ones; no
import cycles) and 10 (a module holds one concept). The import graph is built with
:mod:`ast` from the files under :data:`PACKAGES` (every ``import`` and ``from … import``,
at module level or inside a function, relative or absolute), keeping only the project's
own modules; its strongly connected components (Tarjan) of two or more modules are the
cycles. An import of ``a.b.c`` is an edge to ``a.b.c`` only: running ``a/b/__init__.py``
first is not counted, so a package may re-export its submodules' names.

Layers: ``app`` (the service) ← ``switchboard_engine`` / ``switchboard_sim`` (siblings,
each built on ``app``) ← ``bench``. A module of ``app`` names a higher layer only inside a
function of a CLI module (``cli.py``: ``switchboard engine``, ``call``, ``simulator``,
``bench``, ``campaign run`` import them lazily) or under ``if TYPE_CHECKING:`` there.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "switchboard_engine", "switchboard_sim", "bench", "flows", "tools", "migrations")
#: Directories whose modules must stay under :data:`MAX_LINES` lines.
SIZE_CHECKED = ("app", "switchboard_engine", "switchboard_sim", "bench", "flows", "tools")
#: What each layer may not import (top-level package names); see the module doc.
FORBIDDEN: dict[str, frozenset[str]] = {
    "app": frozenset({"switchboard_engine", "switchboard_sim", "bench"}),
    "flows": frozenset({"switchboard_engine", "switchboard_sim", "bench"}),
    "tools": frozenset({"switchboard_engine", "switchboard_sim", "bench"}),
    "migrations": frozenset({"switchboard_engine", "switchboard_sim", "bench"}),
    "switchboard_engine": frozenset({"switchboard_sim", "bench"}),
    "switchboard_sim": frozenset({"switchboard_engine", "bench"}),
}
MAX_LINES = 800

#: Cycles that exist today, each as the set of its modules (none since issue 10).
KNOWN_CYCLES: set[frozenset[str]] = set()
#: Modules over :data:`MAX_LINES` lines today (none since issue 10).
KNOWN_LARGE: set[str] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Dotted module name → source file, for every module of :data:`PACKAGES`."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``module`` (source ``path``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def resolve(name: str) -> str | None:
        """The longest project module that ``name`` or one of its parents names."""
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            for alias in node.names:
                # ``from a import b``: b is a submodule of ``a`` or a name defined in it.
                target = resolve(stem if alias.name == "*" else f"{stem}.{alias.name}")
                if target:
                    out.add(target)
    out.discard(module)  # ``from . import name`` in a package's own __init__
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    known = project_modules()
    return {name: _imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with a cycle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def _path_in(component: frozenset[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle through ``component`` (for the failure message): a → b → … → a."""
    start = min(component)
    seen = {start: [start]}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return [*seen[node], start]
                if child not in seen:
                    seen[child] = [*seen[node], child]
                    nxt.append(child)
        frontier = nxt
    return sorted(component)


def test_imports_resolve_to_project_modules(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        "import os\n"
        "import p.x.y\n"
        "from p.x import defined_in_x\n"
        "from . import sibling\n"
        "from .sub import thing\n"
        "def later() -> None:\n"
        "    from ..top import name\n",
        encoding="utf-8",
    )
    known = {m: src for m in ("p.q", "p.q.mod", "p.q.sibling", "p.q.sub", "p.x", "p.x.y", "p.top")}
    assert _imported("p.q.mod", src, known) == {"p.x.y", "p.x", "p.q.sibling", "p.q.sub", "p.top"}


def test_the_graph_covers_the_project() -> None:
    graph = import_graph()
    assert all(name in graph for name in PACKAGES)
    assert (
        "switchboard_engine.server" in graph["switchboard_engine"]
    )  # a re-export in a package __init__
    assert "switchboard_engine.session.facade" in graph["switchboard_engine.session"]


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(" → ".join(_path_in(c, graph)) for c in new)
    gone = KNOWN_CYCLES - set(found)
    assert not gone, (
        f"known cycles are gone, drop them from KNOWN_CYCLES: {sorted(map(sorted, gone))}"
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_by_place(path: Path) -> list[tuple[str, str]]:
    """``(place, imported module)`` for every absolute import in ``path``: ``place`` is
    ``"module"`` (runs on import), ``"function"`` (inside a function body) or
    ``"type_checking"`` (under ``if TYPE_CHECKING:`` at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[str, str]] = []

    def visit(node: ast.AST, place: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "function")
            elif isinstance(child, ast.If) and place == "module" and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "type_checking")
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "module")
            elif isinstance(child, ast.Import):
                out.extend((place, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                out.append((place, child.module))
            else:
                visit(child, place)

    visit(tree, "module")
    return out


def layer_violations(package: str, path: Path) -> list[str]:
    """The imports in ``path`` (a module of ``package``) of a layer it may not import."""
    forbidden = FORBIDDEN.get(package, frozenset())
    lazy_ok = package == "app" and path.name == "cli.py"
    bad = []
    for place, name in imports_by_place(path):
        if name.split(".")[0] not in forbidden:
            continue
        if lazy_ok and place in ("function", "type_checking"):
            continue
        bad.append(f"{path.relative_to(ROOT)}: {name} ({place})")
    return bad


def test_the_layer_check_tells_top_level_from_lazy(tmp_path: Path) -> None:
    src = tmp_path / "cli.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "import switchboard_sim.x\n"
        "if TYPE_CHECKING:\n"
        "    from bench import y\n"
        "def command() -> None:\n"
        "    from switchboard_engine.server import run\n",
        encoding="utf-8",
    )
    assert imports_by_place(src) == [
        ("module", "typing"),
        ("module", "switchboard_sim.x"),
        ("type_checking", "bench"),
        ("function", "switchboard_engine.server"),
    ]


def test_lower_layers_never_import_higher_ones() -> None:
    bad = [
        line
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in layer_violations(package, path)
    ]
    assert not bad, "imports of a higher layer (see this module's doc):\n" + "\n".join(bad)


def test_no_module_over_800_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in SIZE_CHECKED
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    large = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in KNOWN_LARGE}
    assert not large, f"modules over {MAX_LINES} lines (split them by concept): {large}"
    fixed = {p for p in KNOWN_LARGE if sizes.get(p, 0) <= MAX_LINES}
    assert not fixed, f"now within {MAX_LINES} lines, drop from KNOWN_LARGE: {sorted(fixed)}"


def test_every_lua_script_lists_the_keys_and_argv_it_uses() -> None:
    scripts = sorted((ROOT / "app").rglob("*.lua"))
    assert scripts
    for path in scripts:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = [line for line in lines if line.startswith("--")]
        code = "\n".join(line for line in lines if not line.startswith("--"))
        for kind in ("KEYS", "ARGV"):
            used = {int(n) for n in re.findall(rf"{kind}\[(\d+)\]", code)}
            listed = {int(n) for n in re.findall(rf"^-- {kind}\[(\d+)\]", "\n".join(header), re.M)}
            ranged = re.search(rf"^-- {kind}\[(\d+)\.\.\]", "\n".join(header), re.M)
            if ranged:  # ARGV[3..]: a variable tail
                used = {n for n in used if n < int(ranged.group(1))}
            assert used <= listed, f"{path.name}: {kind} {sorted(used - listed)} not in its header"
