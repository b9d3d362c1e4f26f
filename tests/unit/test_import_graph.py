"""The layers' import rules, read from the source (AST, nothing imported): SQL and the ORM stay in
`adapters/db/`, and no `marketplace_saas` module imports itself round a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "marketplace_saas"

# Modules not yet ported onto the unit of work (part B of issue 16: metering, hooks, the
# console's read side). The lead empties this list when part B is merged; do not add to it.
NOT_YET_PORTED: frozenset[str] = frozenset()
# Where a use case or an entrypoint must not reach: the database's own vocabulary.
FORBIDDEN = ("sqlalchemy", f"{PACKAGE}.adapters.db.models")
# The use cases may reach `adapters.db` only for its error names (re-exported SQLAlchemy ones).
SERVICE_MAY_USE = frozenset({f"{PACKAGE}.adapters.db.errors"})


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, at the top, in functions, or for type checking only."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module


def _violations(module: str) -> list[str]:
    found = []
    for imported in _imports(MODULES[module]):
        if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN) or (
            module.startswith(f"{PACKAGE}.service")
            and imported.startswith(f"{PACKAGE}.adapters.db")
            and imported not in SERVICE_MAY_USE
        ):
            found.append(imported)
    return sorted(set(found))


LAYERED = sorted(
    name for name in MODULES if name.startswith((f"{PACKAGE}.service.", f"{PACKAGE}.entrypoints."))
)


@pytest.mark.parametrize("module", LAYERED)
def test_use_cases_and_entrypoints_do_not_import_the_database(module: str) -> None:
    """Neither SQLAlchemy nor the ORM models outside `adapters/db/` (issue 16)."""
    violations = _violations(module)
    if module in NOT_YET_PORTED:
        pytest.skip(f"not yet ported (part B of issue 16): {violations}")
    assert violations == [], f"{module} imports {violations}"


def test_the_allowlist_names_only_modules_that_still_break_the_rule() -> None:
    """A ported module leaves the allowlist (which would otherwise hide a relapse)."""
    assert sorted(NOT_YET_PORTED - set(MODULES)) == []
    assert [m for m in sorted(NOT_YET_PORTED) if not _violations(m)] == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_backend_modules() -> None:
    """Counting imports inside functions and under TYPE_CHECKING too: a cycle dodged by a local
    import is still a cycle."""
    graph = {
        module: {target for target in _imports(path) if target in MODULES and target != module}
        for module, path in MODULES.items()
    }
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
