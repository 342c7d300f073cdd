"""How each Python statement and expression reads and binds names, as Python's scopes say.

One handler per node type that the generic walk in :mod:`greed_kernel.analysis.scope` cannot
treat as "visit every child in the current scope": definitions and lambdas open a
function scope (parameters bound, decorators, defaults and annotations evaluated
outside it), classes a class scope, comprehensions a comprehension scope whose
first iterable is evaluated outside; walrus targets bind in the nearest enclosing
non-comprehension scope; ``x += 1`` reads before it binds; ``global`` and
``nonlocal`` declare; imports, ``except ... as``, ``match`` captures bind; and
statement lists are pushed so that they are visited in source order.

Each handler takes (scanner, node, stack) and fully handles the node, in the
scanner's current scope: children to visit in that scope are pushed on ``stack``
(the last pushed is visited first); new scopes are walked by a nested ``run``.
``HANDLERS`` maps node types to them. Stdlib only.
"""

from __future__ import annotations

import ast
from ast import AST, DictComp, GeneratorExp, ListComp, Name, SetComp, Subscript
from typing import TYPE_CHECKING

from .syntax import OUT_NAMES, output_subscript

if TYPE_CHECKING:
    from .scope import Scanner, Scope

__all__ = ["CLASS", "COMPREHENSION", "FUNCTION", "HANDLERS", "MODULE"]

# Scope kinds.
MODULE = 0
FUNCTION = 1
CLASS = 2
COMPREHENSION = 3


def _rev(nodes: object) -> list:
    return nodes[::-1] if type(nodes) is list else []


def _h_subscript(s: Scanner, node: Subscript, stack: list) -> None:
    value = node.value
    if type(value) is Name and value.id in OUT_NAMES:
        output_subscript(s, s.scope, node)
    stack.append(node.slice)
    stack.append(value)


def _h_function(s: Scanner, node: ast.FunctionDef, stack: list) -> None:
    # Decorators, defaults and annotations are evaluated where the def runs,
    # before the name is bound (that order matters in class bodies: @x.setter).
    args = node.args
    before = [*node.decorator_list, *_defaults_and_annotations(s, args)]
    if s.eval_annotations and node.returns is not None:
        before.append(node.returns)
    if before:
        s.run(before[::-1])
    if type(node.name) is str:
        s.store(s.scope, node.name)
    scope = s.open(FUNCTION)
    _bind_params(scope, args)
    try:
        s.body(node.body)
    finally:
        s.close(scope)


def _h_lambda(s: Scanner, node: ast.Lambda, stack: list) -> None:
    args = node.args
    stack.extend(_defaults_and_annotations(s, args))
    scope = s.open(FUNCTION)
    _bind_params(scope, args)
    try:
        s.visit(node.body)
    finally:
        s.close(scope)


def _defaults_and_annotations(s: Scanner, args: ast.arguments) -> list:
    if not isinstance(args, ast.arguments):
        return []
    found = [*args.defaults, *args.kw_defaults]
    if s.eval_annotations:
        found.extend(getattr(arg, "annotation", None) for arg in _all_args(args))
    return [n for n in found if n is not None]


def _all_args(args: ast.arguments) -> list:
    found = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg is not None:
        found.append(args.vararg)
    if args.kwarg is not None:
        found.append(args.kwarg)
    return found


def _bind_params(scope: Scope, args: object) -> None:
    if isinstance(args, ast.arguments):
        for arg in _all_args(args):
            scope.bound.add(arg.arg)


def _h_class(s: Scanner, node: ast.ClassDef, stack: list) -> None:
    before = [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]
    if before:
        s.run(before[::-1])
    scope = s.open(CLASS)
    try:
        s.body(node.body)
    finally:
        s.close(scope)
    # The class name is bound only after its body ran.
    s.store(s.scope, node.name)


def _h_comprehension(s: Scanner, node: ast.expr, stack: list) -> None:
    generators = node.generators  # type: ignore[attr-defined]
    if not generators:
        return
    # The outermost iterable is evaluated in the enclosing scope.
    stack.append(generators[0].iter)
    scope = s.open(COMPREHENSION)
    try:
        # Order is irrelevant here: comprehension loads resolve when the scope closes.
        nodes: list = []
        for i, gen in enumerate(generators):
            if i:
                nodes.append(gen.iter)
            nodes.append(gen.target)
            nodes.extend(gen.ifs)
        if type(node) is DictComp:
            nodes.append(node.key)
            nodes.append(node.value)
        else:
            nodes.append(node.elt)  # type: ignore[attr-defined]
        s.run(nodes)
    finally:
        s.close(scope)


def _h_named_expr(s: Scanner, node: ast.NamedExpr, stack: list) -> None:
    target = node.target
    scope = s.scope
    if scope.kind == COMPREHENSION and type(target) is Name:
        # Walrus binds in the nearest enclosing non-comprehension scope.
        while scope.kind == COMPREHENSION and scope.parent is not None:
            scope = scope.parent
        s.store(scope, target.id)
    else:
        stack.append(target)  # a Name(Store): bound in this scope, after the value
    stack.append(node.value)


def _h_aug_assign(s: Scanner, node: ast.AugAssign, stack: list) -> None:
    target = node.target
    if type(target) is Name:
        # `x += 1` reads x, then rebinds it.
        s.load(s.scope, target.id)
        s.store(s.scope, target.id)
    else:
        stack.append(target)
    stack.append(node.value)


def _h_ann_assign(s: Scanner, node: ast.AnnAssign, stack: list) -> None:
    scope = s.scope
    target = node.target
    # Annotations are evaluated only at module and class level (PEP 526), last.
    if s.eval_annotations and scope.kind in (MODULE, CLASS):
        stack.append(node.annotation)
    if node.value is not None or type(target) is not Name:
        stack.append(target)
    elif scope.kind == FUNCTION and target.id not in scope.glob:
        # A bare `x: int` makes x local to a function without binding it.
        scope.bound.add(target.id)
    if node.value is not None:
        stack.append(node.value)


def _h_for(s: Scanner, node: ast.For, stack: list) -> None:
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.body))
    stack.append(node.target)
    stack.append(node.iter)


def _h_if_while(s: Scanner, node: ast.If, stack: list) -> None:
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.body))
    stack.append(node.test)


def _h_with(s: Scanner, node: ast.With, stack: list) -> None:
    stack.extend(_rev(node.body))
    for item in _rev(node.items):
        if item.optional_vars is not None:
            stack.append(item.optional_vars)
        stack.append(item.context_expr)


def _h_try(s: Scanner, node: ast.Try, stack: list) -> None:
    stack.extend(_rev(node.finalbody))
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.handlers))
    stack.extend(_rev(node.body))


def _h_except(s: Scanner, node: ast.ExceptHandler, stack: list) -> None:
    stack.extend(_rev(node.body))
    if type(node.name) is str:
        s.store(s.scope, node.name)
    if node.type is not None:
        stack.append(node.type)


def _h_match(s: Scanner, node: ast.Match, stack: list) -> None:
    stack.extend(_rev(node.cases))
    stack.append(node.subject)


def _h_match_case(s: Scanner, node: ast.match_case, stack: list) -> None:
    stack.extend(_rev(node.body))
    if node.guard is not None:
        stack.append(node.guard)
    stack.append(node.pattern)


def _h_match_as(s: Scanner, node: ast.MatchAs, stack: list) -> None:
    if type(node.name) is str:
        s.store(s.scope, node.name)
    if node.pattern is not None:
        stack.append(node.pattern)


def _h_match_star(s: Scanner, node: ast.MatchStar, stack: list) -> None:
    if type(node.name) is str:
        s.store(s.scope, node.name)


def _h_match_mapping(s: Scanner, node: ast.MatchMapping, stack: list) -> None:
    if type(node.rest) is str:
        s.store(s.scope, node.rest)
    stack.extend(node.keys)
    stack.extend(node.patterns)


def _h_import(s: Scanner, node: ast.Import, stack: list) -> None:
    scope = s.scope
    for alias in node.names:
        if alias.asname:
            s.store(scope, alias.asname)
        elif alias.name and alias.name != "*":
            # `import a.b.c` binds only `a`.
            s.store(scope, alias.name.partition(".")[0])


def _h_global(s: Scanner, node: ast.Global, stack: list) -> None:
    scope = s.scope
    if scope.kind in (FUNCTION, CLASS):
        scope.glob.update(node.names)


def _h_nonlocal(s: Scanner, node: ast.Nonlocal, stack: list) -> None:
    scope = s.scope
    if scope.kind in (FUNCTION, CLASS):
        scope.nonloc.update(node.names)


def _h_leaf(s: Scanner, node: AST, stack: list) -> None:
    return None


HANDLERS: dict[type, object] = {
    Subscript: _h_subscript,
    ast.FunctionDef: _h_function,
    ast.AsyncFunctionDef: _h_function,
    ast.Lambda: _h_lambda,
    ast.ClassDef: _h_class,
    ListComp: _h_comprehension,
    SetComp: _h_comprehension,
    GeneratorExp: _h_comprehension,
    DictComp: _h_comprehension,
    ast.NamedExpr: _h_named_expr,
    ast.AugAssign: _h_aug_assign,
    ast.AnnAssign: _h_ann_assign,
    ast.For: _h_for,
    ast.AsyncFor: _h_for,
    ast.If: _h_if_while,
    ast.While: _h_if_while,
    ast.With: _h_with,
    ast.AsyncWith: _h_with,
    ast.Try: _h_try,
    ast.ExceptHandler: _h_except,
    ast.Match: _h_match,
    ast.match_case: _h_match_case,
    ast.MatchAs: _h_match_as,
    ast.MatchStar: _h_match_star,
    ast.MatchMapping: _h_match_mapping,
    ast.Import: _h_import,
    ast.ImportFrom: _h_import,
    ast.Global: _h_global,
    ast.Nonlocal: _h_nonlocal,
    ast.Pass: _h_leaf,
    ast.Break: _h_leaf,
    ast.Continue: _h_leaf,
}
if hasattr(ast, "TryStar"):  # Python 3.11+
    HANDLERS[ast.TryStar] = _h_try
