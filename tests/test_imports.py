"""The shape of the library's imports: no cycle among src/midilm modules (lazy imports inside
functions included), stage modules are leaves (only the CLI imports them), models never import
train, and the library never imports stages or flows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every midilm module `path` imports, at module level or in a function; imports under
    `if TYPE_CHECKING:` are annotations only and do not count. `from pkg import sub` of a
    submodule counts as importing `sub` (its package is already being imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                subs = {f"{child.module}.{a.name}" for a in child.names} & modules
                found.update(subs)
                if len(subs) < len(child.names):  # names defined in the module itself
                    found.add(child.module)
            visit(child)

    visit(tree)
    return {name for name in found if name.split(".")[0] in ("midilm", "stages", "flows")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    return {
        name: {m for m in imports_of(path, set(modules)) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_stage_modules_are_leaves(graph: dict[str, set[str]]) -> None:
    stages = {name for name in graph if name.endswith(".stage")}
    assert {"midilm.train.stage", "midilm.generate.stage", "midilm.report.stage"} <= stages
    for name, targets in graph.items():
        if name not in ("midilm.cli", "midilm.__main__"):
            assert not targets & stages, f"{name} imports a stage module: {targets & stages}"


def test_layers(graph: dict[str, set[str]]) -> None:
    for name, targets in graph.items():
        assert not any(t.startswith(("stages", "flows")) for t in targets), name
        if name.startswith("midilm.models"):
            assert not any(t.startswith(("midilm.train", "midilm.finetune")) for t in targets), (
                name,
                targets,
            )
        if name.startswith("midilm.specs"):  # parameters know no library code
            assert all(t.startswith(("midilm.specs", "midilm.common")) for t in targets), name
