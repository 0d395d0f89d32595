"""No import cycle among the modules of ``cje`` (DESIGN.md: imports flow one way, lazy imports included).

The layers themselves are checked by import-linter (``lint-imports``, contracts in pyproject.toml,
run by ``.ci/run``). This test is the independent cycle check the acceptance of issue #13 asks for:
it reads every import statement of every module with :mod:`ast` — module-level and inside
functions alike, since a lazy import still ties the two modules together — and leaves out only
the imports under ``if TYPE_CHECKING:``, which never run. An edge goes to the module named
(``from cje.x import y`` names ``cje.x.y`` when that is a module, else ``cje.x``); the parent
packages Python initialises on the way are not counted, as import-linter does not count them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "cje"

def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = ("cje",) + path.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The ``cje`` modules ``tree`` imports, wherever the statement is (TYPE_CHECKING aside)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the `else:` of `if TYPE_CHECKING:` does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "cje" or a.name.startswith("cje."))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base == "cje" or base.startswith("cje."):
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imported(ast.parse(p.read_text(encoding="utf-8")), m, p.name == "__init__.py", known)
            for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a → b → … → a``) per strongly connected component with more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next((w for w in it if w in graph), None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)
    return [_one_cycle(graph, comp) for comp in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """The shortest cycle through the first module of ``comp`` (breadth-first), closed."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in component {comp}")  # pragma: no cover


def _text(cycles: list[list[str]]) -> str:
    return "\n".join(" → ".join(c) for c in cycles)


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles among cje modules (lazy imports count):\n{_text(cycles)}"


def test_the_scan_sees_lazy_imports_and_skips_type_checking():
    """Guard against a scan that finds nothing (which would make the tests above vacuous)."""
    src = ("from typing import TYPE_CHECKING\nimport cje.errors\nif TYPE_CHECKING:\n"
           "    from cje.report import Report\nelse:\n    from cje import results\n"
           "def f():\n    from cje.plots import bias_plot\n    from .data import load\n")
    known = {"cje", "cje.errors", "cje.report", "cje.results", "cje.plots", "cje.data", "cje.x"}
    assert _imported(ast.parse(src), "cje.x", False, known) == {
        "cje.errors", "cje.results", "cje.plots", "cje.data"}
    graph = _graph()
    assert len(graph) > 40 and "cje.results" in graph["cje.inference"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
