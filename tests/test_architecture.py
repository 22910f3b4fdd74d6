"""The house's walls, checked on the code itself: no import cycle among escalate's modules
(module-level imports; imports inside functions are the deliberate lazy ones), and the
engine imports no SDK, no instructor and no asyncio."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "escalate"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    return {name: {d for d in deps if d in modules} for name, deps in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_no_module_imports_itself_back() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_engine_rooms_import_no_sdk_and_no_asyncio() -> None:
    engine = [
        "_engine",
        "_gating",
        "_deploying",
        "_auditing",
        "_audit",
        "_ledger",
        "_plan",
        "_retry",
        "_outcomes",
    ]
    for name in engine:
        imported = _imports(PACKAGE / f"{name}.py")
        roots = {module.split(".")[0] for module in imported}
        assert not roots & {"openai", "anthropic", "instructor", "asyncio", "httpx2"}, name
