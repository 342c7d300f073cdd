"""Property tests for the cell scanner (greed_kernel.analysis.scope, .syntax): it never raises,
and on generated programs it agrees with CPython's own scope analysis (``symtable``)."""

from __future__ import annotations

import ast
import symtable
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from greed_kernel.analysis.cellnames import CellNames
from greed_kernel.analysis.scope import scan_source, scan_tree
from greed_kernel.analysis.syntax import scan_tokens

pytestmark = pytest.mark.timeout(60)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _well_formed(result: CellNames) -> None:
    assert type(result) is CellNames
    for field in (result.reads, result.writes, result.deletes):
        assert type(field) is frozenset
        assert all(type(name) is str for name in field)
    assert type(result.parsed) is bool


# -- never raises --------------------------------------------------------------------------

# Text that is often almost Python: the interesting failures are near-valid sources.
_PYTHONISH = st.lists(
    st.sampled_from(
        [
            *"abcxyz_019 \n\t()[]{}:=+-*/%@.,;'\"\\#!?$<>|&^~",
            *["\0", "é", "λ", ":=", "f'{", "    ", "def ", "class ", "lambda ", "for ", " in "],
            *["if ", "import ", "global ", "nonlocal ", "match ", "case ", "async ", "await "],
            *["yield ", "del ", "return "],
        ]
    ),
    max_size=120,
).map("".join)


@FAST
@given(st.text(max_size=500))
def test_scan_source_never_raises_on_arbitrary_text(source: str) -> None:
    _well_formed(scan_source(source))


@FAST
@given(_PYTHONISH)
def test_scan_source_never_raises_on_pythonish_text(source: str) -> None:
    result = scan_source(source)
    _well_formed(result)
    if not result.parsed:
        assert result == scan_tokens(source)


@FAST
@given(st.text(max_size=500))
def test_scan_tokens_never_raises_and_never_reports_keywords(source: str) -> None:
    result = scan_tokens(source)
    _well_formed(result)
    assert result.parsed is False
    assert not result.writes
    assert not result.deletes
    assert not ({"def", "class", "lambda", "None", "True", "if"} & result.reads)


# -- generated programs ------------------------------------------------------------------

# Few names, so that bindings, loads and declarations collide often.
_NAMES = ["a", "b", "c", "d", "e"]
_PARAMS = ["p", "q", "a"]
name = st.sampled_from(_NAMES)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    leaf = st.one_of(name, st.sampled_from(["1", "'s'", "None", "Out[3]", "_oh[1]"]))
    if depth >= 2:
        return draw(leaf)
    sub = expressions(depth + 1)
    kind = draw(st.integers(0, 11))
    if kind <= 2:
        return draw(leaf)
    if kind == 3:
        return f"({draw(sub)} + {draw(sub)})"
    if kind == 4:
        return f"{draw(name)}({draw(sub)}, k={draw(sub)})"
    if kind == 5:
        return f"{draw(name)}.attr[{draw(sub)}]"
    if kind == 6:
        params = draw(st.lists(st.sampled_from(_PARAMS), max_size=2, unique=True))
        default = f"={draw(sub)}" if params else ""
        return f"(lambda {', '.join(params)}{default}: {draw(sub)})"
    if kind == 7:
        target = draw(name)
        return f"[{draw(sub)} for {target} in {draw(sub)} if {draw(sub)}]"
    if kind == 8:
        return f"{{{draw(name)}: {draw(sub)} for {draw(name)}, {draw(name)} in {draw(sub)}}}"
    if kind == 9:
        return f"({draw(name)} := {draw(sub)})"
    if kind == 10:
        # Names only: 3.11 cannot nest the same quote inside an f-string.
        return f'f"{{{draw(name)}!r}} {{{draw(name)}.attr:>{{{draw(name)}}}}}"'
    return f"({draw(sub)} if {draw(sub)} else {draw(sub)})"


@st.composite
def blocks(draw: st.DrawFn, indent: int = 0, where: str = "module") -> list[str]:
    pad = "    " * indent
    lines: list[str] = []
    if where == "function":
        declared = draw(st.lists(name, max_size=2, unique=True))
        if declared:
            keyword = draw(st.sampled_from(["global", "global", "nonlocal"]))
            lines.append(f"{pad}{keyword} {', '.join(declared)}")
    for _ in range(draw(st.integers(1, 3))):
        expr = draw(expressions())
        kind = draw(st.integers(0, 14 if indent < 3 else 7))
        if kind == 0:
            lines.append(f"{pad}{draw(name)} = {expr}")
        elif kind == 1:
            lines.append(f"{pad}{draw(name)}, *{draw(name)} = {expr}")
        elif kind == 2:
            lines.append(f"{pad}{draw(name)} += {expr}")
        elif kind == 3:
            lines.append(f"{pad}del {draw(name)}")
        elif kind == 4:
            lines.append(f"{pad}{expr}")
        elif kind == 5:
            lines.append(f"{pad}import {draw(name)}.sub as {draw(name)}")
        elif kind == 6:
            lines.append(f"{pad}{draw(name)}.attr = {draw(name)}[{expr}] = {expr}")
        elif kind == 7 and where == "function":
            lines.append(f"{pad}return {expr}")
        elif kind == 7:
            lines.append(f"{pad}pass")
        elif kind == 8:
            lines.append(f"{pad}if {expr}:")
            lines.extend(draw(blocks(indent + 1, where)))
        elif kind == 9:
            lines.append(f"{pad}for {draw(name)} in {expr}:")
            lines.extend(draw(blocks(indent + 1, where)))
        elif kind == 10:
            params = draw(st.lists(st.sampled_from(_PARAMS), max_size=2, unique=True))
            deco = f"{pad}@{draw(name)}\n" if draw(st.booleans()) else ""
            lines.append(f"{deco}{pad}def {draw(name)}({', '.join(params)}):")
            lines.extend(draw(blocks(indent + 1, "function")))
        elif kind == 11:
            lines.append(f"{pad}class {draw(name)}({draw(name)}):")
            lines.extend(draw(blocks(indent + 1, "class")))
        elif kind == 12:
            lines.append(f"{pad}try:")
            lines.extend(draw(blocks(indent + 1, where)))
            lines.append(f"{pad}except {draw(name)} as {draw(name)}:")
            lines.extend(draw(blocks(indent + 1, where)))
        elif kind == 13:
            lines.append(f"{pad}with {expr} as {draw(name)}:")
            lines.extend(draw(blocks(indent + 1, where)))
        else:
            lines.append(f"{pad}match {expr}:")
            lines.append(f"{pad}    case [{draw(name)}, *{draw(name)}] | {{'k': {draw(name)}}}:")
            lines.extend(draw(blocks(indent + 2, where)))
            lines.append(f"{pad}    case {draw(name)}.X(y={draw(name)}) as {draw(name)}:")
            lines.extend(draw(blocks(indent + 2, where)))
    return lines


def _symtable_truth(source: str) -> tuple[set[str], set[str], set[str]]:
    """(reads, bindings, slack) of module-level names, from CPython's symtable.

    ``slack`` holds the names the scanner may report as reads where symtable does
    not: augmented-assignment targets (symtable marks ``x += 1`` as a binding only),
    class-local names (a load before the assignment in the class body reads the
    global), and the output-cache aliases (``Out[3]`` is also ``_3``).
    """
    reads: set[str] = set()
    binds: set[str] = set()
    slack: set[str] = {"_3", "_1"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            slack.add(node.target.id)

    def walk(table: symtable.SymbolTable) -> None:
        kind = table.get_type()
        for sym in table.get_symbols():
            n = sym.get_name()
            if kind == "module":
                if sym.is_referenced():
                    reads.add(n)
                if sym.is_assigned() or sym.is_imported():
                    binds.add(n)
            else:
                if sym.is_global() and sym.is_referenced():
                    reads.add(n)
                if sym.is_declared_global() and (sym.is_assigned() or sym.is_imported()):
                    binds.add(n)
                if kind == "class" and sym.is_referenced() and sym.is_local():
                    slack.add(n)
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(source, "<cell>", "exec"))
    return reads, binds, slack


@FAST
@given(blocks())
def test_generated_programs_agree_with_symtable(lines: list[str]) -> None:
    source = "\n".join(lines) + "\n"
    if sys.version_info >= (3, 12):
        # PEP 709 inlines list, set and dict comprehensions into the enclosing scope of
        # symtable's tables, though their variables still do not leak: symtable is no
        # reference for them there (the scan corpus covers them on every version)
        inlined = (ast.ListComp, ast.SetComp, ast.DictComp)
        assume(not any(isinstance(n, inlined) for n in ast.walk(ast.parse(source))))
    try:
        truth_reads, truth_binds, slack = _symtable_truth(source)
    except SyntaxError:
        # e.g. `nonlocal` with no enclosing binding, or a parameter declared global.
        assume(False)
        raise
    result = scan_source(source)
    assert result.parsed, source
    assert truth_reads <= result.reads, source
    assert result.reads <= truth_reads | slack, source
    assert result.writes | result.deletes == truth_binds, source


@FAST
@given(blocks())
def test_scan_tree_never_raises_on_mangled_trees(lines: list[str]) -> None:
    # Hand-built or transformer-mangled trees: swap fields for junk, never raise.
    tree = ast.parse("\n".join(lines) + "\n")
    junk: list[object] = [None, 3, "s", [None], ast.Load(), ast.Pass(), ast.Name(7, ast.Store())]
    for i, node in enumerate(ast.walk(tree)):
        fields = node._fields
        if fields and i % 3 == 0:
            setattr(node, fields[i % len(fields)], junk[i % len(junk)])
    _well_formed(scan_tree(tree))
