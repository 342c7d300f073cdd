"""The cell scanner (greed_kernel.analysis.scope, .bindings, .syntax, .cellnames): which
module-level names a cell reads, writes and deletes."""

from __future__ import annotations

import ast
import dataclasses
import textwrap
import warnings

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from scan_corpus import CORPUS, Cell

from greed_kernel.analysis.cellnames import EMPTY, CellNames, merge
from greed_kernel.analysis.scope import scan_source, scan_tree
from greed_kernel.analysis.syntax import scan_tokens

pytestmark = pytest.mark.timeout(60)

_TM = TransformerManager()


def ipy(source: str) -> str:
    """The Python source IPython compiles for a cell (magics become calls)."""
    return _TM.transform_cell(textwrap.dedent(source))


def scan(source: str) -> CellNames:
    """Scan a (dedented, IPython-transformed) cell that must parse."""
    result = scan_source(ipy(source))
    assert result.parsed, source
    return result


def names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- the corpus --------------------------------------------------------------------------


def test_corpus_is_big_and_uniquely_named() -> None:
    assert len(CORPUS) >= 100
    assert len({cell.name for cell in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("cell", CORPUS, ids=lambda cell: cell.name)
def test_corpus_cell(cell: Cell) -> None:
    result = scan(cell.source)
    if cell.exact:
        assert result.reads == cell.reads
    else:
        assert cell.reads <= result.reads
    assert result.writes == cell.writes
    assert result.deletes == cell.deletes
    assert not (cell.not_reads & result.reads)


@pytest.mark.parametrize("cell", CORPUS, ids=lambda cell: cell.name)
def test_corpus_scan_tree_matches_scan_source(cell: Cell) -> None:
    source = ipy(cell.source)
    assert scan_tree(ast.parse(source)) == scan_source(source)


# -- the API ---------------------------------------------------------------------------


def test_cellnames_is_frozen_slotted_and_touched_is_the_union() -> None:
    names_ = CellNames(frozenset({"a"}), frozenset({"b"}), frozenset({"c"}))
    assert names_.parsed is True
    assert names_.touched == {"a", "b", "c"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        names_.reads = frozenset()  # type: ignore[misc]
    assert not hasattr(names_, "__dict__")


def test_empty() -> None:
    assert CellNames(frozenset(), frozenset(), frozenset(), parsed=True) == EMPTY
    assert EMPTY.touched == frozenset()
    assert scan_source("") == EMPTY
    assert scan_source("# nothing\n\n") == EMPTY


def test_merge_unions_and_parsed_only_if_both() -> None:
    a = CellNames(frozenset({"x"}), frozenset({"y"}), frozenset())
    b = CellNames(frozenset({"z"}), frozenset(), frozenset({"w"}), parsed=False)
    merged = merge(a, b)
    assert merged == CellNames(
        frozenset({"x", "z"}), frozenset({"y"}), frozenset({"w"}), parsed=False
    )
    assert merge(a, a) == a
    assert merge(EMPTY, a) == a


def test_results_are_frozensets_of_str() -> None:
    result = scan("import a.b as c\nx = [y for y in z]\ndel q\n")
    for field in (result.reads, result.writes, result.deletes):
        assert type(field) is frozenset
        assert all(type(name) is str for name in field)


# -- basic rules -----------------------------------------------------------------------


def test_load_store_del() -> None:
    result = scan("x = y\ndel z\n")
    assert (result.reads, result.writes, result.deletes) == ({"y"}, {"x"}, {"z"})


def test_augmented_assignment_reads_and_writes() -> None:
    result = scan("x += 1")
    assert result.reads == {"x"}
    assert result.writes == {"x"}


def test_imports() -> None:
    result = scan("import x as y\nimport a.b.c\nfrom m import n, o as p\nfrom q import *\n")
    assert result.writes == {"y", "a", "n", "p"}
    assert result.reads == frozenset()


def test_star_import_breaks_nothing() -> None:
    result = scan("from torch import *\nt = tensor([1])\n")
    assert result.writes == {"t"}
    assert result.reads == {"tensor"}


def test_attribute_roots() -> None:
    assert scan("model.fc.weight").reads == {"model"}
    result = scan("model.fc.weight = w")
    assert result.reads == {"model", "w"}
    assert result.writes == frozenset()


def test_subscript_store_reads_container_and_key() -> None:
    result = scan("d[k] = v")
    assert result.reads == {"d", "k", "v"}
    assert result.writes == frozenset()


def test_del_name_and_subscript() -> None:
    result = scan("del a, b[0]")
    assert result.deletes == {"a"}
    assert result.reads == {"b"}


def test_builtins_are_not_special() -> None:
    assert scan("print(x)").reads == {"print", "x"}


# -- the output cache --------------------------------------------------------------------


def test_out_subscript_reads_underscore_name() -> None:
    assert scan("Out[12]").reads == {"Out", "_12"}
    assert scan("_oh[3].shape").reads == {"_oh", "_3"}
    assert scan("_12").reads == {"_12"}


def test_out_subscript_only_for_non_negative_int_constants() -> None:
    assert scan("Out[-1]").reads == {"Out"}
    assert scan("Out[i]").reads == {"Out", "i"}
    assert scan("Out['a']").reads == {"Out"}
    assert scan("Out[True]").reads == {"Out"}
    assert scan("Other[12]").reads == {"Other"}


def test_out_subscript_store_is_not_a_read_of_the_cached_name() -> None:
    result = scan("Out[3] = None")
    assert result.reads == {"Out"}


def test_out_subscript_inside_function() -> None:
    assert scan("def f():\n    return Out[7]\n").reads == {"Out", "_7"}


# -- comprehensions --------------------------------------------------------------------


def test_comprehension_targets_are_local() -> None:
    result = scan("[x * n for x in xs if x > lim]")
    assert result.reads == {"n", "xs", "lim"}
    assert result.writes == frozenset()


def test_all_comprehension_kinds() -> None:
    for source in (
        "[a for a in b]",
        "{a for a in b}",
        "(a for a in b)",
        "{a: a for a in b}",
    ):
        assert scan(source).reads == {"b"}, source


def test_comprehension_target_does_not_leak_but_global_is_still_read() -> None:
    result = scan("x = 1\n[x for x in range(3)]\nx\n")
    assert result.reads == {"range", "x"}


def test_nested_comprehension_inner_iterables_see_outer_targets() -> None:
    result = scan("[c for row in grid for c in row if c != blank]")
    assert result.reads == {"grid", "blank"}


def test_comprehension_in_class_body_first_iterable_only_sees_class() -> None:
    result = scan(
        """\
        class K:
            n = 3
            a = [i for i in range(n)]
            b = [n for i in range(3)]
        """
    )
    # The first iterable runs in the class scope (n is the class attribute);
    # the element runs in the comprehension's scope, which cannot see the class.
    assert result.reads == {"range", "n"}
    result = scan("class K:\n    n = 3\n    a = [i for i in range(n)]\n")
    assert result.reads == {"range"}


# -- walrus ----------------------------------------------------------------------------


def test_walrus_at_module_level() -> None:
    result = scan("(n := 10)")
    assert result.writes == {"n"}
    assert result.reads == frozenset()


def test_walrus_in_comprehension_binds_module_name() -> None:
    result = scan("[last := v for v in values]")
    assert result.writes == {"last"}
    assert result.reads == {"values"}


def test_walrus_in_comprehension_inside_function_is_local() -> None:
    result = scan("def f(xs):\n    [m := x for x in xs]\n    return m\n")
    assert result.reads == frozenset()
    assert result.writes == {"f"}


def test_walrus_in_function_with_global_declaration() -> None:
    result = scan("def f(xs):\n    global m\n    [m := x for x in xs]\n")
    assert result.writes == {"f", "m"}


# -- functions and closures ----------------------------------------------------------


def test_function_definition_writes_name_and_reads_free_names() -> None:
    result = scan("def f(a, *b, c=1, **d):\n    return a + b + c + d + e\n")
    assert result.writes == {"f"}
    assert result.reads == {"e"}


def test_defaults_decorators_annotations_are_read_in_enclosing_scope() -> None:
    result = scan(
        """\
        @deco(arg)
        def f(a: A, b: B = dflt, *, c: C = kwdflt) -> R:
            return a
        """
    )
    assert result.reads == {"deco", "arg", "A", "B", "dflt", "C", "kwdflt", "R"}
    assert result.writes == {"f"}


def test_local_annotations_in_function_are_not_evaluated() -> None:
    result = scan("def f():\n    x: Hidden = 1\n    y: AlsoHidden\n    return x\n")
    assert result.reads == frozenset()


def test_future_annotations_are_not_evaluated() -> None:
    result = scan("from __future__ import annotations\ndef f(a: A) -> R: pass\nv: V = 1\n")
    assert result.reads == frozenset()
    assert result.writes == {"annotations", "f", "v"}


def test_module_annotation_without_value_does_not_bind() -> None:
    result = scan("x: int\ny: int = 0\nobj.attr: int\n")
    assert result.writes == {"y"}
    assert result.reads == {"int", "obj"}


def test_local_name_is_local_everywhere_in_function() -> None:
    # print(total) raises UnboundLocalError at runtime: it is not a global read.
    result = scan("def f():\n    print(total)\n    total = 1\n")
    assert result.reads == {"print"}


def test_del_in_function_makes_name_local() -> None:
    result = scan("def f():\n    del x\n    return x\n")
    assert result.reads == frozenset()
    assert result.deletes == frozenset()


def test_nested_function_free_variables() -> None:
    result = scan(
        """\
        def outer(a):
            b = 1
            def inner():
                return a + b + c
            return inner
        """
    )
    assert result.reads == {"c"}
    assert result.writes == {"outer"}


def test_nonlocal_names_are_not_global() -> None:
    result = scan(
        """\
        def outer():
            count = 0
            def inc():
                nonlocal count
                count += 1
                return count
            return inc
        """
    )
    assert result.reads == frozenset()
    assert result.writes == {"outer"}


def test_global_declaration_in_function() -> None:
    result = scan(
        """\
        def f():
            global g, h
            g = 1
            h += 1
            del k
            return g + local_free
        """
    )
    assert result.writes == {"f", "g", "h"}
    assert result.reads == {"h", "g", "local_free"}
    # k is not declared global: `del k` makes it local.
    assert result.deletes == frozenset()


def test_global_declaration_del() -> None:
    result = scan("def f():\n    global k\n    del k\n")
    assert result.deletes == {"k"}


def test_global_declared_in_enclosing_function_makes_free_name_global() -> None:
    result = scan(
        """\
        def outer():
            global shared
            shared = []
            def inner():
                return shared
            return inner
        """
    )
    assert result.reads == {"shared"}
    assert result.writes == {"outer", "shared"}


def test_global_declared_in_nested_function_writes_module_name() -> None:
    result = scan(
        """\
        def outer():
            def inner():
                global counter
                counter = 0
            inner()
        """
    )
    assert result.writes == {"outer", "counter"}


def test_lambda_params_local_defaults_in_enclosing_scope() -> None:
    result = scan("f = lambda x, y=dflt, *a, k=kd, **kw: x + y + z")
    assert result.reads == {"dflt", "kd", "z"}
    assert result.writes == {"f"}


def test_lambda_default_binds_comprehension_variable() -> None:
    result = scan("fs = [lambda i=i: i * s for i in range(3)]")
    assert result.reads == {"range", "s"}


def test_recursive_function_reads_its_own_global_name() -> None:
    result = scan("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n")
    assert result.reads == {"fact"}
    assert result.writes == {"fact"}


def test_function_local_imports_and_defs_are_local() -> None:
    result = scan(
        """\
        def f():
            import numpy as np
            from os import path
            def helper():
                return np, path
            class Local:
                pass
            return helper, Local
        """
    )
    assert result.reads == frozenset()
    assert result.writes == {"f"}


def test_async_function_and_await() -> None:
    result = scan(
        """\
        async def main(url):
            async with session.get(url) as resp:
                async for chunk in resp.content:
                    sink.write(chunk)
        await main(URL)
        """
    )
    assert result.reads == {"session", "sink", "main", "URL"}
    assert result.writes == {"main"}


# -- classes ---------------------------------------------------------------------------


def test_class_definition() -> None:
    result = scan(
        """\
        @register
        class A(Base, metaclass=Meta, flag=FLAG):
            x = 1
            y = x + z
        """
    )
    assert result.reads == {"register", "Base", "Meta", "FLAG", "z"}
    assert result.writes == {"A"}


def test_methods_cannot_see_class_scope_names() -> None:
    result = scan(
        """\
        class A:
            x = 1
            def m(self, a=x):
                return x
        """
    )
    # The default `a=x` is evaluated in the class body (the class attribute);
    # the body's `x` is a global.
    assert result.reads == {"x"}


def test_class_body_reads_in_textual_order() -> None:
    assert scan("class A:\n    name = name\n").reads == {"name"}
    assert scan("class A:\n    name = 1\n    other = name\n").reads == frozenset()


def test_class_local_read_before_assignment_in_function_is_global() -> None:
    # LOAD_NAME: a class-local name looked up before its assignment goes to the
    # globals, past the enclosing function's `x`.
    result = scan(
        """\
        def f():
            x = 1
            class A:
                y = x
                x = 2
            class B:
                z = x
            return A, B
        """
    )
    assert result.reads == {"x"}
    result = scan("def f():\n    x = 1\n    class B:\n        z = x\n")
    assert result.reads == frozenset()


def test_class_global_declaration() -> None:
    result = scan("class A:\n    global g\n    g = 1\n    h = g\n")
    assert result.writes == {"A", "g"}
    assert result.reads == {"g"}


def test_class_name_bound_after_body() -> None:
    result = scan("class Node:\n    def children(self) -> list[Node]:\n        return []\n")
    # The return annotation is evaluated in the class body, before Node exists.
    assert result.reads == {"list", "Node"}


def test_property_setter_decorator_reads_class_attribute() -> None:
    result = scan(
        """\
        class A:
            @property
            def v(self):
                return 1
            @v.setter
            def v(self, value):
                pass
        """
    )
    assert result.reads == {"property"}


def test_nested_class_in_function_sees_function_locals() -> None:
    result = scan(
        """\
        def make(k):
            class C:
                size = k
                def get(self):
                    return k + g
            return C
        """
    )
    assert result.reads == {"g"}


# -- statements ------------------------------------------------------------------------


def test_fstrings() -> None:
    result = scan("s = f'{a!r:>{width}} {b.c:.{prec}f} {d[e]}'")
    assert result.reads == {"a", "width", "b", "prec", "d", "e"}


def test_try_except_as_writes_name() -> None:
    result = scan(
        "try:\n    f()\nexcept (A, B) as e:\n    g(e)\nelse:\n    h()\nfinally:\n    i()\n"
    )
    assert result.writes == {"e"}
    assert result.reads == {"f", "A", "B", "g", "e", "h", "i"}


def test_try_star() -> None:
    result = scan("try:\n    f()\nexcept* ValueError as eg:\n    pass\n")
    assert result.writes == {"eg"}
    assert result.reads == {"f", "ValueError"}


def test_with_and_for_targets() -> None:
    result = scan("with open(p) as f, lock:\n    for i, (j, *k) in enumerate(f):\n        pass\n")
    assert result.writes == {"f", "i", "j", "k"}
    assert result.reads == {"open", "p", "lock", "enumerate", "f"}


def test_top_level_async_for_and_with() -> None:
    result = scan("async for x in agen():\n    pass\nasync with ctx() as c:\n    pass\n")
    assert result.writes == {"x", "c"}
    assert result.reads == {"agen", "ctx"}


def test_match_captures() -> None:
    result = scan(
        """\
        match subject:
            case [first, *rest]:
                pass
            case {"k": value, **others}:
                pass
            case Point(x=px, y=0) as pt if px > limit:
                pass
            case Color.RED | None:
                pass
            case _:
                pass
        """
    )
    assert result.writes == {"first", "rest", "value", "others", "px", "pt"}
    assert result.reads == {"subject", "Point", "px", "limit", "Color"}


def test_match_in_function_captures_are_local() -> None:
    result = scan("def f(s):\n    match s:\n        case [a, *b]:\n            return a, b, c\n")
    assert result.reads == {"c"}


def test_conditional_expression_and_boolean_operators() -> None:
    assert scan("a if b else c and d or not e").reads == {"a", "b", "c", "d", "e"}


def test_starred_and_double_starred() -> None:
    result = scan("f(*args, **kw)\nfirst, *rest = seq\n{**base}\n")
    assert result.reads == {"f", "args", "kw", "seq", "base"}
    assert result.writes == {"first", "rest"}


def test_global_statement_at_module_level_is_harmless() -> None:
    result = scan("global x\nx = 1\n")
    assert result.writes == {"x"}


def test_unicode_identifiers_are_nfkc_normalized_like_the_parser() -> None:
    # U+FB01 (the "fi" ligature) normalizes to "fi".
    assert scan("\ufb01le = 1").writes == {"file"}
    assert scan_tokens("\ufb01le").reads == {"file"}


# -- IPython transformations ---------------------------------------------------------


def test_time_line_magic_reads_and_writes_its_statement() -> None:
    source = ipy("%time x = f(y)")
    assert source == "get_ipython().run_line_magic('time', 'x = f(y)')\n"
    result = scan_source(source)
    assert result.reads == {"get_ipython", "f", "y"}
    assert result.writes == {"x"}
    assert result.parsed


def test_time_cell_magic_body_is_not_seen() -> None:
    # After transformation the body is a string argument of run_cell_magic; the
    # kernel transforms and scans it separately.
    source = ipy("%%time\nx = f(y)\n")
    assert source == "get_ipython().run_cell_magic('time', '', 'x = f(y)\\n')\n"
    result = scan_source(source)
    assert result == CellNames(frozenset({"get_ipython"}), frozenset(), frozenset())


def test_timeit_with_options_reads_only() -> None:
    result = scan("%timeit -n 100 -r 5 y = f(x)")
    assert result.reads == {"get_ipython", "f", "x"}
    assert result.writes == frozenset()


def test_timeit_output_assignment() -> None:
    result = scan("r = %timeit -o f(x)")
    assert result.reads == {"get_ipython", "f", "x"}
    assert result.writes == {"r"}


def test_code_magic_with_unparseable_argument_falls_back_to_tokens() -> None:
    result = scan("%time print 'py2'")
    assert {"get_ipython", "print"} <= result.reads
    assert result.parsed


def test_matplotlib_inline_and_other_line_magics() -> None:
    assert scan("%matplotlib inline").reads == {"get_ipython"}
    assert scan("%load_ext autoreload").reads == {"get_ipython"}


def test_shell_escapes_and_variable_expansion() -> None:
    assert scan("!pip list").reads == {"get_ipython"}
    assert scan("!echo $name {obj.attr + 1} $$HOME").reads == {"get_ipython", "name", "obj"}
    result = scan("files = !ls {folder}")
    assert result.reads == {"get_ipython", "folder"}
    assert result.writes == {"files"}


def test_capture_cell_magic_binds_its_name() -> None:
    result = scan("%%capture --no-stdout captured\nprint(hidden)\n")
    assert result.writes == {"captured"}
    assert result.reads == {"get_ipython"}
    assert scan("%%capture\nprint(1)\n").writes == frozenset()


def test_help_reads_the_object() -> None:
    assert scan("df.head?").reads == {"get_ipython", "df"}


def test_xdel_deletes() -> None:
    assert scan("%xdel weights").deletes == {"weights"}
    # In a function too: %xdel acts on the user namespace.
    result = scan("def f():\n    %xdel cache\n")
    assert result.deletes == {"cache"}


def test_get_ipython_methods_with_non_constant_arguments_are_ordinary_calls() -> None:
    result = scan("get_ipython().run_line_magic(name, line)\nip.system('echo $x')\n")
    assert result.reads == {"get_ipython", "name", "line", "ip"}


# -- scan_tree inputs --------------------------------------------------------------------


def test_scan_tree_accepts_other_roots() -> None:
    assert scan_tree(ast.parse("a + b", mode="eval")).reads == {"a", "b"}
    interactive = ast.parse("x = y", mode="single")
    assert scan_tree(interactive) == CellNames(frozenset({"y"}), frozenset({"x"}), frozenset())
    assert scan_tree(ast.parse("x = y").body[0]).writes == {"x"}
    assert scan_tree(ast.Name("q", ast.Load())).reads == {"q"}


def test_scan_tree_deep_expression_is_walked_iteratively() -> None:
    # Deeper than the default recursion limit allows a recursive visitor to go.
    tree = ast.Name("leaf", ast.Load())
    for i in range(5000):
        tree = ast.BinOp(tree, ast.Add(), ast.Name(f"v{i % 7}", ast.Load()))
    result = scan_tree(ast.Module([ast.Expr(tree)], []))
    assert result.parsed
    assert result.reads == {"leaf"} | {f"v{i}" for i in range(7)}


def test_scan_tree_deep_lambda_nesting_fails_soft() -> None:
    body: ast.expr = ast.Name("x", ast.Load())
    for _ in range(20_000):
        body = ast.Lambda(ast.arguments([], [], None, [], [], None, []), body)
    result = scan_tree(ast.Module([ast.Expr(body)], []))
    assert result == CellNames(frozenset(), frozenset(), frozenset(), parsed=False)


def test_scan_tree_malformed_trees_never_raise() -> None:
    no_ctx = ast.Module([ast.Expr(ast.Name("x"))], [])
    if not hasattr(ast.Name("x"), "ctx"):  # Python < 3.13 has no default ctx
        assert scan_tree(no_ctx).parsed is False
    no_value = ast.Assign([ast.Name("y", ast.Store())], ast.Constant(0))
    del no_value.value  # (leaving it out is deprecated in 3.13, an error in 3.15)
    odd = ast.Module([ast.Expr(ast.Name(5, ast.Load())), no_value], [])
    result = scan_tree(odd)
    assert result.parsed
    assert result.writes == {"y"}
    assert result.reads == frozenset()
    junk = ast.Module(
        [ast.Expr(ast.Call("f", [None, 3, "s", [ast.Name("z", ast.Load())]], []))], []
    )
    assert scan_tree(junk).reads <= {"z"}
    assert scan_tree(None).parsed in (True, False)  # type: ignore[arg-type]
    assert scan_tree("x = 1").parsed in (True, False)  # type: ignore[arg-type]


# -- the token fallback ----------------------------------------------------------------


def test_syntax_error_falls_back_to_tokens() -> None:
    result = scan_source("def f(:\n    return alpha + beta\nif while")
    assert result.parsed is False
    assert result.reads == {"f", "alpha", "beta"}
    assert result.writes == frozenset()
    assert result.deletes == frozenset()


def test_raw_magic_source_falls_back_to_tokens() -> None:
    result = scan_source("%time x = f(y)")
    assert result.parsed is False
    assert {"time", "x", "f", "y"} <= result.reads


def test_null_byte_falls_back_to_tokens() -> None:
    result = scan_source("x = 1\0\ny = x")
    assert result.parsed is False
    assert result.reads == {"x", "y"}


@pytest.mark.parametrize(
    "source",
    [
        "(" * 100_000 + "x" + ")" * 100_000,
        "[" * 100_000,
        "-" * 100_000 + "x",
        "not " * 100_000 + "x",
        "x" + "+x" * 100_000,
        "f" + "(x)" * 50_000,
        "lambda: " * 5_000 + "x",
    ],
    ids=["parens", "brackets", "unary", "not", "binop", "calls", "lambdas"],
)
def test_pathological_nesting_falls_back_to_tokens(source: str) -> None:
    result = scan_source(source)
    assert result.parsed is False
    assert result.reads <= {"x", "f"}
    assert "lambda" not in result.reads
    assert "not" not in result.reads


def _five_megabytes() -> str:
    line = "loss_{0} = criterion(model(batch_{0}), target) + 1e-5 * reg.norm()  # step\n"
    return "".join(line.format(i) for i in range(5_000_000 // len(line) + 1))


def test_five_megabyte_cell_with_late_syntax_error() -> None:
    source = _five_megabytes() + "def broken(:\n"
    assert len(source) > 5_000_000
    result = scan_source(source)
    assert result.parsed is False
    assert {"criterion", "model", "target", "reg", "loss_0", "batch_42", "broken"} <= result.reads
    assert "def" not in result.reads
    assert "norm" not in result.reads  # attribute names are never globals
    assert "e" not in result.reads  # no identifiers inside numbers


def test_five_megabyte_scan_tokens() -> None:
    result = scan_tokens("def (:\n" + _five_megabytes())
    assert result.parsed is False
    assert {"criterion", "model", "target", "reg", "loss_0"} <= result.reads


def test_scan_tokens_rules() -> None:
    result = scan_tokens("for x in range(3): yield from obj.attr; 3e5 + 0x1f; é_var match _")
    assert result.reads == {"x", "range", "obj", "é_var", "match", "_"}
    assert result.parsed is False
    assert scan_tokens("") == CellNames(frozenset(), frozenset(), frozenset(), parsed=False)


@pytest.mark.parametrize(
    "source",
    ['pattern = re.compile("\\d+")', "y = 1if x else 2", "z = 1or y", "%time z = '\\d'"],
)
def test_parser_warnings_are_silenced(source: str) -> None:
    # IPython shows these when it compiles the cell; the scan must not repeat them,
    # and warnings configured as errors must not turn a good cell into a fallback.
    transformed = ipy(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = scan_source(transformed)
    assert result.parsed
    assert scan_source(transformed) == result


def test_scan_tokens_and_source_tolerate_non_str() -> None:
    assert scan_tokens(b"alpha beta").reads == {"alpha", "beta"}  # type: ignore[arg-type]
    assert scan_source(b"x = y").reads == {"y"}  # type: ignore[arg-type]
    assert scan_source(None).parsed is False  # type: ignore[arg-type]
    assert scan_tokens(None).reads == frozenset()  # type: ignore[arg-type]
