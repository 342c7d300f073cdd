"""The benchmarks read like the product: small modules, and the code they run inside
kernels measures through public surfaces (it sets no attribute, reaches no private
name and patches no class of greed's)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MODULES = sorted(BENCHMARKS.glob("*.py"))
MAX_LINES = 400


def _kernel_snippets(path: Path) -> list[tuple[int, ast.Module]]:
    """The string constants of *path* that are code meant for a kernel (they mention
    ``get_ipython()`` and parse as Python), with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "get_ipython()" not in node.value:
                continue
            try:
                found.append((node.lineno, ast.parse(node.value)))
            except SyntaxError:
                continue
    return found


def _violations(tree: ast.Module) -> list[str]:
    """What a snippet does that it must not: set or delete an attribute, read a
    private attribute (``_name``, ``__dict__``, ``__class__``), call setattr or
    delattr. Other dunders (``__name__``) only describe an object."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            if node.attr.startswith("_") and (not dunder or node.attr in ("__dict__", "__class__")):
                out.append(f"reads .{node.attr}")
            if isinstance(node.ctx, ast.Store | ast.Del):
                out.append(f"sets or deletes .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
        ):
            out.append(f"calls {node.func.id}")
    return out


def test_the_modules_are_found() -> None:
    assert len(MODULES) > 10
    assert len([p for p in MODULES if _kernel_snippets(p)]) >= 2


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_is_over_the_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_kernel_code_uses_public_surfaces(path: Path) -> None:
    for line, tree in _kernel_snippets(path):
        assert not _violations(tree), f"{path.name}:{line}: {_violations(tree)}"


def test_the_check_sees_a_patch() -> None:
    """What the suites used to run: a method of greed's class replaced from a cell."""
    patch = ast.parse("H = type(get_ipython().kernel.greed.hooks)\nH.pre_run_cell = None")
    assert _violations(patch) == ["sets or deletes .pre_run_cell"]
    assert _violations(ast.parse("get_ipython().kernel.__dict__['x'] = 1")) == ["reads .__dict__"]
