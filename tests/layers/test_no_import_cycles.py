"""No import cycles among mergekit_evo's modules outside the zoo builder: config does not
import space (preflight sits above both), methods/ is a tree under its lazy hook, and search/'s
parts import one way (run > stage > fleet > scoring, rundir)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "mergekit_evo"


def _graph() -> dict[str, set[str]]:
    """Module -> the mergekit_evo modules it imports anywhere (top level or in a function)."""
    out: dict[str, set[str]] = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mergekit_evo"):
                deps.add(node.module or "")
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("mergekit_evo"))
        out[name] = deps
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_outside_the_zoo():
    cycles = [c for c in _cycles(_graph()) if not all(m.startswith("mergekit_evo.zoo") for m in c)]
    assert cycles == []


def test_config_does_not_import_space_or_preflight():
    deps = _graph()["mergekit_evo.config"]
    assert not any(d.startswith(("mergekit_evo.space", "mergekit_evo.preflight")) for d in deps)


#: search/'s parts, top first: a module may import its own part or a part on a lower floor;
#: parts on one floor (scoring, rundir) do not import each other
SEARCH_FLOORS = {"run": 4, "stage": 3, "fleet": 2, "scoring": 1, "rundir": 1}


def _search_part(module: str) -> str | None:
    """``mergekit_evo.search.stage.loop`` -> ``stage``; the package itself -> None."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["mergekit_evo", "search"] else None


def test_every_search_module_sits_in_a_part():
    loose = [m for m in _graph() if _search_part(m) not in (None, *SEARCH_FLOORS)]
    assert loose == []


def test_search_parts_import_one_way():
    wrong = []
    for module, deps in _graph().items():
        part = _search_part(module)
        if part is None:
            continue
        for dep in deps:
            if dep == "mergekit_evo.search":  # the package re-exports run/: an import from above
                wrong.append(f"{module} -> {dep}")
                continue
            other = _search_part(dep)
            if other is None or other == part:
                continue
            if SEARCH_FLOORS.get(other, 0) >= SEARCH_FLOORS.get(part, 0):
                wrong.append(f"{module} -> {dep}")
    assert wrong == []
