"""The wings are layered as greed_kernel's wing docstrings say: a module imports only
from its own wing and the wings below it, and no module grows past 400 lines. Read
from the sources (every import, function-level ones included), not by importing."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "greed_kernel"
#: Each wing, and the wings it may import from.
BELOW = {
    "analysis": set(),
    "memory": set(),
    "session": {"analysis", "memory"},
    "engine": {"analysis", "memory", "session"},
    "frontends": {"analysis", "memory", "session", "engine"},
}
MAX_LINES = 400


def imported_wings(path: Path) -> set[str]:
    """The wings that *path* imports from (relative and absolute imports)."""
    rel = path.relative_to(PACKAGE).parts
    here = list(rel[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if not node.module:
                    target += [alias.name for alias in node.names][:1]
            elif node.module and node.module.startswith("greed_kernel."):
                target = node.module.split(".")[1:]
            else:
                continue
            if target and target[0] in BELOW:
                found.add(target[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "greed_kernel" and len(parts) > 1 and parts[1] in BELOW:
                    found.add(parts[1])
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def test_every_wing_imports_only_from_the_wings_below_it() -> None:
    wrong = []
    for path in modules():
        rel = path.relative_to(PACKAGE).parts
        if len(rel) < 2:
            continue  # kernel.py and the like wire the wings together
        wing = rel[0]
        for other in imported_wings(path) - {wing} - BELOW[wing]:
            wrong.append(f"{'/'.join(rel)} imports from {other}")
    assert wrong == []


def test_the_rule_sees_a_wrong_import(tmp_path: Path) -> None:
    fake = PACKAGE / "memory" / "_layer_probe.py"
    fake.write_text("from ..engine import policy\n")
    try:
        assert imported_wings(fake) == {"engine"}
    finally:
        fake.unlink()


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["greed_kernel", *parts])


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package's modules *path* imports at run time (``if TYPE_CHECKING:`` blocks
    aside), at module level or in a function."""
    tree = ast.parse(path.read_text())
    checking = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking or not isinstance(node, ast.ImportFrom):
            continue
        base = package[: len(package) - node.level + 1] if node.level else []
        target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        for alias in node.names:
            full = f"{target}.{alias.name}"
            found.add(full if full in known else target)
    # the package itself only holds __version__ (and a lazy GreedKernel): not an edge
    return {m for m in found if m in known and m not in (module_name(path), "greed_kernel")}


def test_there_is_no_import_cycle() -> None:
    paths = {module_name(p): p for p in modules()}
    graph = {name: imported_modules(p, set(paths)) for name, p in paths.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(name: str, trail: list[str]) -> bool:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle.extend(
                    [*trail[trail.index(other) :], other] if other in trail else [name, other]
                )
                return True
            if other not in state and visit(other, [*trail, other]):
                return True
        state[name] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, [name]):
            break
    assert cycle == []
