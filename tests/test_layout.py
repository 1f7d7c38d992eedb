"""The house stays as docs/ARCHITECTURE.md draws it: engine/ is a row of stages, each importing only
itself and the stages before it, and no module anywhere imports itself back through others.

Every import counts, also the ones inside functions: a deferred import that runs against the
stage order is a cycle waiting for its first caller."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "pixret_desktop")

# engine's stages, lowest first: a module may import its own stage and the ones above it in this list.
STAGES = ("base", "parallel", "catalog", "ingest", "features", "index", "verify", "propagate", "segment",
          "indexing", "project", "pipeline", "annotate", "formats", "evaluate", "demo", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "versions" in path.parts:  # Alembic migration scripts: run from disk, not imported
                continue
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that `import name` (or `from name import ...`) loads, if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule pkg.mod when there is one
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                out.add(resolved)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "engine" or len(parts) == 1:
        return None  # engine/__init__ only names the package
    return STAGES.index(parts[1]) if parts[1] in STAGES else -1


def test_every_engine_module_belongs_to_a_stage():
    loose = [m for m in MODULES if m.startswith("engine.") and _stage(m) == -1]
    assert loose == [], f"modules outside the stages of STAGES (add the stage, in its place): {loose}"


def test_engine_imports_follow_the_stage_order():
    backwards = []
    for module, targets in GRAPH.items():
        here = _stage(module)
        if here is None:
            continue
        for target in targets:
            there = _stage(target)
            if there is not None and there > here:
                backwards.append(f"{module} imports {target} ({STAGES[here]} < {STAGES[there]})")
    assert backwards == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def test_no_import_cycles_anywhere():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_import_parser_sees_deferred_and_package_imports():
    # premise of the tests above: imports inside functions and `from package import module` count
    assert "engine.pipeline" in GRAPH["engine.cli"]  # cli imports the pipeline inside its commands
    assert "engine.annotate.objects" in GRAPH["engine.cli"]  # `from engine.annotate import objects`
