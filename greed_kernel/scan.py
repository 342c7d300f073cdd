"""Which module-level names a notebook cell reads, writes and deletes.

Before every cell the kernel needs to know which globals the cell touches, so
this module answers that from the cell's AST (after IPython's transformations)
in a single pass, with an explicit model of Python's scopes:

* module scope: every load is a read, every store a write, every ``del`` a delete;
* function and lambda scopes: a name is local when it is a parameter or bound
  anywhere in the body (unless declared ``global``/``nonlocal``), exactly as
  CPython decides; loads of non-local names are resolved outward at the end of
  the function, skipping class scopes, and become global reads when nothing
  encloses them;
* comprehension scopes: the ``for`` targets are local; the first iterable is
  evaluated in the enclosing scope; walrus targets bind in the nearest
  enclosing non-comprehension scope;
* class scopes: names bound in the class body are class attributes. Loads in the
  body are resolved in textual order (``class A: x = x`` reads the global ``x``,
  like CPython's ``LOAD_NAME``, even inside a function that binds ``x``), and
  nested functions cannot see class names.

IPython's transformations turn magics into ``get_ipython()`` calls with string
arguments, which a plain tree walk cannot see into. So: the argument of a
code-running line magic (``%time x = f(y)``, ``%timeit``, ``%prun``, ``x?``;
see ``CODE_LINE_MAGICS``) is parsed and scanned as module code (``%timeit``
contributes reads only: its statement runs inside a function); ``$name`` and
``{expr}`` in shell commands and magic lines are reads (IPython's variable
expansion); ``%%capture name`` writes ``name`` and ``%xdel name`` deletes it.
Cell-magic bodies are NOT scanned: the caller must transform them with IPython
first (they may contain magics) and scan them itself. ``%run``, ``%reset`` and
``from m import *`` can bind or delete names that no scan can know.

Everything here is stdlib only and never raises: ``scan_source`` falls back to
``scan_tokens`` (every identifier-like token counted as a read) when the source
does not parse, and ``scan_tree`` returns ``parsed=False`` on any internal
failure so that the caller can fall back to ``scan_tokens`` on the source.
"""

from __future__ import annotations

import ast
import keyword
import re
import unicodedata
import warnings
from ast import (
    AST,
    Attribute,
    Call,
    Constant,
    DictComp,
    GeneratorExp,
    ListComp,
    Load,
    Name,
    SetComp,
    Store,
    Subscript,
)
from dataclasses import dataclass

__all__ = [
    "CODE_LINE_MAGICS",
    "EMPTY",
    "CellNames",
    "merge",
    "scan_source",
    "scan_tokens",
    "scan_tree",
]


@dataclass(frozen=True, slots=True)
class CellNames:
    """The module-level names one cell reads, writes and deletes.

    ``parsed`` is False when the names came from the token fallback (or the tree
    scan failed), in which case ``reads`` is an over-approximation and
    ``writes``/``deletes`` are empty.
    """

    reads: frozenset[str]
    writes: frozenset[str]
    deletes: frozenset[str]
    parsed: bool = True

    @property
    def touched(self) -> frozenset[str]:
        """Every name the cell reads, writes or deletes."""
        return self.reads | self.writes | self.deletes


_NOTHING: frozenset[str] = frozenset()
EMPTY = CellNames(_NOTHING, _NOTHING, _NOTHING)
_FAILED = CellNames(_NOTHING, _NOTHING, _NOTHING, parsed=False)

# Line magics whose argument is Python code run in the user namespace: IPython
# hands it over as a string, so the tree alone would miss `%time x = f(y)`.
CODE_LINE_MAGICS = frozenset(
    {"time", "timeit", "prun", "debug", "pinfo", "pinfo2", "pdef", "pdoc", "psource", "pfile"}
)
# The get_ipython() methods whose string arguments IPython expands ($x, {expr})
# or runs; anything else called on get_ipython() is an ordinary call.
_IPY_METHODS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})
# Output-cache containers: Out[12] is the same object as the global _12.
_OUT_NAMES = frozenset({"Out", "_oh"})

_KEYWORDS = frozenset(keyword.kwlist)
# An identifier not glued to a preceding word character (so no `e5` out of `1e5`)
# and not preceded by a dot (an attribute is never a global read).
_IDENT_RE = re.compile(r"(?<![\w.])[^\W\d]\w*")
_DOLLAR_RE = re.compile(r"(?<!\$)\$([^\W\d]\w*)")
_BRACES_RE = re.compile(r"\{([^{}]*)\}")
_OPTION_WORD_RE = re.compile(r"\S+")
_PARSE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

# Scope kinds.
_MODULE = 0
_FUNC = 1
_CLASS = 2
_COMP = 3

# Fields that never hold a child worth visiting: contexts, operators and scalars.
_SKIP_FIELDS = frozenset(
    {
        "ctx",
        "op",
        "ops",
        "id",
        "attr",
        "arg",
        "type_comment",
        "kind",
        "conversion",
        "module",
        "level",
        "is_async",
        "simple",
        "tag",
        "rest",
        "kwd_attrs",
        "type_ignores",
    }
)
# type -> handler function, or the fields to walk generically; filled lazily
# (after the handlers are registered below).
_TABLE: dict[type, object] = {}


def _table_entry(t: type) -> object:
    entry = _HANDLERS.get(t)
    if entry is None:
        if isinstance(t, type) and issubclass(t, AST):
            entry = tuple(f for f in t._fields if f not in _SKIP_FIELDS)
        else:
            entry = ()
    _TABLE[t] = entry
    return entry


class _Scope:
    __slots__ = ("bound", "glob", "kind", "nonloc", "parent", "pending")

    def __init__(self, kind: int, parent: _Scope | None) -> None:
        self.kind = kind
        self.parent = parent
        self.bound: set[str] = set()
        self.glob: set[str] = set()
        self.nonloc: set[str] = set()
        # Loads (here or in nested scopes) not yet known to be local; resolved on close.
        self.pending: set[str] = set()


class _Scanner:
    __slots__ = ("deletes", "depth", "eval_annotations", "module", "reads", "scope", "writes")

    def __init__(self, eval_annotations: bool = True, depth: int = 0) -> None:
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.deletes: set[str] = set()
        self.module = _Scope(_MODULE, None)
        self.scope = self.module
        self.eval_annotations = eval_annotations
        # Nesting of magic arguments scanned as code (bounded, just in case).
        self.depth = depth

    # -- name events -------------------------------------------------------

    def _load(self, scope: _Scope, name: str) -> None:
        kind = scope.kind
        if kind == _MODULE:
            self.reads.add(name)
        elif kind == _CLASS:
            if name in scope.glob:
                self.reads.add(name)
            elif name not in scope.bound and name not in scope.nonloc:
                # Not (yet) a class attribute: where the lookup goes next depends on
                # whether the class binds the name anywhere, known when the class closes.
                scope.pending.add(name)
        elif name in scope.glob:
            self.reads.add(name)
        else:
            scope.pending.add(name)

    def _store(self, scope: _Scope, name: str) -> None:
        kind = scope.kind
        if kind == _MODULE:
            self.writes.add(name)
        elif kind == _COMP:
            scope.bound.add(name)
        elif name in scope.glob:
            self.writes.add(name)
        elif name not in scope.nonloc:
            scope.bound.add(name)

    def _delete(self, scope: _Scope, name: str) -> None:
        kind = scope.kind
        if kind == _MODULE or name in scope.glob:
            self.deletes.add(name)
        elif name not in scope.nonloc:
            # `del x` makes x local to a function, like any binding.
            scope.bound.add(name)

    def _propagate(self, scope: _Scope | None, name: str) -> None:
        # Free name leaving a scope: class scopes are invisible to nested code.
        while scope is not None and scope.kind == _CLASS:
            scope = scope.parent
        if scope is None or scope.kind == _MODULE:
            self.reads.add(name)
        else:
            scope.pending.add(name)

    def _open(self, kind: int) -> _Scope:
        scope = _Scope(kind, self.scope)
        self.scope = scope
        return scope

    def _close(self, scope: _Scope) -> None:
        parent = scope.parent
        self.scope = parent  # type: ignore[assignment]
        if scope.kind == _CLASS:
            for name in scope.pending:
                if name in scope.bound:
                    # A class-local name read before its assignment: LOAD_NAME goes
                    # straight to the globals, past any enclosing function.
                    self.reads.add(name)
                else:
                    # A free name of the class body: the enclosing scopes decide.
                    self._propagate(parent, name)
            return
        bound = scope.bound
        nonloc = scope.nonloc
        glob = scope.glob
        for name in scope.pending:
            if name in bound or name in nonloc:
                continue
            if name in glob:
                # A free name in a nested function whose enclosing function declared it global.
                self.reads.add(name)
            else:
                self._propagate(parent, name)

    # -- the walk ----------------------------------------------------------

    def run(self, stack: list) -> None:
        """Visit the nodes on ``stack`` (popped from the end) in the current scope.

        The walk is iterative: handlers push children instead of recursing, so
        deep expression trees cannot exhaust the Python stack; only new scopes
        (functions, lambdas, classes, comprehensions) recurse, and the parser
        already bounds their nesting. Statement lists are pushed reversed so that
        they pop in source order, which class bodies rely on.
        """
        scope = self.scope
        kind = scope.kind
        at_module = kind == _MODULE
        # In functions and comprehensions a load is resolved when the scope closes.
        deferred = kind in (_FUNC, _COMP)
        glob = scope.glob
        pending_add = scope.pending.add
        reads_add = self.reads.add
        writes_add = self.writes.add
        pop = stack.pop
        push = stack.append
        extend = stack.extend
        table = _TABLE
        while stack:
            node = pop()
            t = type(node)
            if t is Name:
                ctx = type(node.ctx)
                if ctx is Load:
                    if at_module:
                        reads_add(node.id)
                    elif deferred and node.id not in glob:
                        pending_add(node.id)
                    else:
                        self._load(scope, node.id)
                elif ctx is Store:
                    if at_module:
                        writes_add(node.id)
                    else:
                        self._store(scope, node.id)
                else:
                    self._delete(scope, node.id)
            elif t is Attribute:
                push(node.value)
            elif t is Call:
                func = node.func
                if type(func) is Attribute and func.attr in _IPY_METHODS:
                    self._ipython_call(node)
                push(func)
                extend(node.args)
                extend(node.keywords)
            elif t is Constant:
                continue
            else:
                entry = table.get(t)
                if entry is None:
                    entry = _table_entry(t)
                if type(entry) is tuple:
                    # Non-AST values (None, str, ...) pushed here have no fields and vanish.
                    for field in entry:
                        value = getattr(node, field, None)
                        if type(value) is list:
                            extend(value)
                        elif value is not None:
                            push(value)
                else:
                    entry(self, node, stack)

    def body(self, nodes: object) -> None:
        """Visit a statement list in order, in the current scope."""
        if type(nodes) is list and nodes:
            self.run(nodes[::-1])

    def visit(self, node: object) -> None:
        """Visit one optional child node in the current scope."""
        if node is not None:
            self.run([node])

    # -- IPython specifics -------------------------------------------------

    def _out_subscript(self, scope: _Scope, node: Subscript) -> None:
        # Out[12] / _oh[12] is the object also bound to the global _12.
        index = node.slice
        if type(index) is Constant and type(node.ctx) is Load:
            number = index.value
            if type(number) is int and number >= 0:
                self._load(scope, f"_{number}")

    def _ipython_call(self, node: Call) -> None:
        owner = node.func.value  # type: ignore[attr-defined]
        if not (
            type(owner) is Call
            and type(owner.func) is Name
            and owner.func.id == "get_ipython"
            and not owner.args
        ):
            return
        method = node.func.attr  # type: ignore[attr-defined]
        args = [a.value if type(a) is Constant else None for a in node.args]
        if not args or not all(type(a) is str for a in args[:3]):
            return
        scope = self.scope
        if method in ("system", "getoutput"):
            self._expansions(scope, args[0])
        elif method == "run_line_magic" and len(args) >= 2:
            magic, line = args[0], args[1]
            if magic in CODE_LINE_MAGICS:
                found = _scan_magic_code(line, self.depth + 1)
                if magic == "timeit":
                    # %timeit runs the statement inside a function: its bindings are local.
                    found = CellNames(found.reads, _NOTHING, _NOTHING, found.parsed)
                self._merge(found)
            elif magic == "xdel":
                # %xdel removes the name from the user namespace, wherever it is called.
                for word in line.split():
                    if word.isidentifier() and not keyword.iskeyword(word):
                        self._delete(self.module, word)
            else:
                self._expansions(scope, line)
        elif method == "run_cell_magic" and len(args) >= 2:
            # The cell body (args[2]) is left to the caller, which must run
            # IPython's transforms on it first.
            magic, line = args[0], args[1]
            self._expansions(scope, line)
            if magic == "capture":
                # `%%capture name [--no-stdout ...]` binds the CapturedIO object.
                for word in line.split():
                    if not word.startswith("-") and word.isidentifier():
                        self._store(self.module, word)
                        break

    def _expansions(self, scope: _Scope, text: str) -> None:
        # IPython's var_expand: `$name` and `{expression}` read the namespace.
        if "$" in text:
            for name in _DOLLAR_RE.findall(text):
                self._load(scope, _normalize(name))
        if "{" in text:
            for inner in _BRACES_RE.findall(text):
                for name in _identifiers(inner):
                    self._load(scope, name)

    def _merge(self, names: CellNames) -> None:
        # Code run by a line magic executes in the user namespace.
        self.reads |= names.reads
        self.writes |= names.writes
        self.deletes |= names.deletes


def _normalize(name: str) -> str:
    # The parser NFKC-normalizes identifiers; the token fallback must agree.
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


def _identifiers(text: str) -> set[str]:
    names = set(_IDENT_RE.findall(text))
    if not text.isascii():
        odd = [n for n in names if not n.isascii()]
        names.difference_update(odd)
        names.update(_normalize(n) for n in odd)
    names -= _KEYWORDS
    return names


def _parse(source: str) -> AST:
    # Top-level await / async for / async with are legal in IPython cells. The
    # parser's Syntax/DeprecationWarnings (`"\d"`, `1if x`) are silenced: IPython
    # reports them when it compiles the cell, and a second copy would confuse users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(source, "<cell>", "exec", _PARSE_FLAGS)


def _scan_magic_code(line: str, depth: int) -> CellNames:
    """Scan the argument of a code-running line magic such as ``%time``."""
    if depth > 20:
        return CellNames(frozenset(_identifiers(line)), _NOTHING, _NOTHING)
    candidates = [line]
    if line.lstrip().startswith("-"):
        # Leading options (`-n 10 -r 3`): try the code starting at each of the next words.
        starts = [m.start() for m in _OPTION_WORD_RE.finditer(line, 0)][1:8]
        candidates.extend(line[s:] for s in starts)
    for candidate in candidates:
        try:
            tree = _parse(candidate.strip())
        except Exception:
            continue
        result = _scan(tree, depth)
        if result.parsed:
            return result
    words = [w for w in line.split() if not w.startswith("-")]
    return CellNames(frozenset(_identifiers(" ".join(words))), _NOTHING, _NOTHING)


# -- handlers -------------------------------------------------------------------
# Each takes (scanner, node, stack) and fully handles the node, in the scanner's
# current scope: children to visit in that scope are pushed on ``stack`` (the
# last pushed is visited first); new scopes are walked by a nested ``run``.


def _rev(nodes: object) -> list:
    return nodes[::-1] if type(nodes) is list else []


def _h_subscript(s: _Scanner, node: Subscript, stack: list) -> None:
    value = node.value
    if type(value) is Name and value.id in _OUT_NAMES:
        s._out_subscript(s.scope, node)
    stack.append(node.slice)
    stack.append(value)


def _h_function(s: _Scanner, node: ast.FunctionDef, stack: list) -> None:
    # Decorators, defaults and annotations are evaluated where the def runs,
    # before the name is bound (that order matters in class bodies: @x.setter).
    args = node.args
    before = [*node.decorator_list, *_defaults_and_annotations(s, args)]
    if s.eval_annotations and node.returns is not None:
        before.append(node.returns)
    if before:
        s.run(before[::-1])
    if type(node.name) is str:
        s._store(s.scope, node.name)
    scope = s._open(_FUNC)
    _bind_params(scope, args)
    try:
        s.body(node.body)
    finally:
        s._close(scope)


def _h_lambda(s: _Scanner, node: ast.Lambda, stack: list) -> None:
    args = node.args
    stack.extend(_defaults_and_annotations(s, args))
    scope = s._open(_FUNC)
    _bind_params(scope, args)
    try:
        s.visit(node.body)
    finally:
        s._close(scope)


def _defaults_and_annotations(s: _Scanner, args: ast.arguments) -> list:
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


def _bind_params(scope: _Scope, args: object) -> None:
    if isinstance(args, ast.arguments):
        for arg in _all_args(args):
            scope.bound.add(arg.arg)


def _h_class(s: _Scanner, node: ast.ClassDef, stack: list) -> None:
    before = [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]
    if before:
        s.run(before[::-1])
    scope = s._open(_CLASS)
    try:
        s.body(node.body)
    finally:
        s._close(scope)
    # The class name is bound only after its body ran.
    s._store(s.scope, node.name)


def _h_comprehension(s: _Scanner, node: ast.expr, stack: list) -> None:
    generators = node.generators  # type: ignore[attr-defined]
    if not generators:
        return
    # The outermost iterable is evaluated in the enclosing scope.
    stack.append(generators[0].iter)
    scope = s._open(_COMP)
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
        s._close(scope)


def _h_named_expr(s: _Scanner, node: ast.NamedExpr, stack: list) -> None:
    target = node.target
    scope = s.scope
    if scope.kind == _COMP and type(target) is Name:
        # Walrus binds in the nearest enclosing non-comprehension scope.
        while scope.kind == _COMP and scope.parent is not None:
            scope = scope.parent
        s._store(scope, target.id)
    else:
        stack.append(target)  # a Name(Store): bound in this scope, after the value
    stack.append(node.value)


def _h_aug_assign(s: _Scanner, node: ast.AugAssign, stack: list) -> None:
    target = node.target
    if type(target) is Name:
        # `x += 1` reads x, then rebinds it.
        s._load(s.scope, target.id)
        s._store(s.scope, target.id)
    else:
        stack.append(target)
    stack.append(node.value)


def _h_ann_assign(s: _Scanner, node: ast.AnnAssign, stack: list) -> None:
    scope = s.scope
    target = node.target
    # Annotations are evaluated only at module and class level (PEP 526), last.
    if s.eval_annotations and scope.kind in (_MODULE, _CLASS):
        stack.append(node.annotation)
    if node.value is not None or type(target) is not Name:
        stack.append(target)
    elif scope.kind == _FUNC and target.id not in scope.glob:
        # A bare `x: int` makes x local to a function without binding it.
        scope.bound.add(target.id)
    if node.value is not None:
        stack.append(node.value)


def _h_for(s: _Scanner, node: ast.For, stack: list) -> None:
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.body))
    stack.append(node.target)
    stack.append(node.iter)


def _h_if_while(s: _Scanner, node: ast.If, stack: list) -> None:
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.body))
    stack.append(node.test)


def _h_with(s: _Scanner, node: ast.With, stack: list) -> None:
    stack.extend(_rev(node.body))
    for item in _rev(node.items):
        if item.optional_vars is not None:
            stack.append(item.optional_vars)
        stack.append(item.context_expr)


def _h_try(s: _Scanner, node: ast.Try, stack: list) -> None:
    stack.extend(_rev(node.finalbody))
    stack.extend(_rev(node.orelse))
    stack.extend(_rev(node.handlers))
    stack.extend(_rev(node.body))


def _h_except(s: _Scanner, node: ast.ExceptHandler, stack: list) -> None:
    stack.extend(_rev(node.body))
    if type(node.name) is str:
        s._store(s.scope, node.name)
    if node.type is not None:
        stack.append(node.type)


def _h_match(s: _Scanner, node: ast.Match, stack: list) -> None:
    stack.extend(_rev(node.cases))
    stack.append(node.subject)


def _h_match_case(s: _Scanner, node: ast.match_case, stack: list) -> None:
    stack.extend(_rev(node.body))
    if node.guard is not None:
        stack.append(node.guard)
    stack.append(node.pattern)


def _h_match_as(s: _Scanner, node: ast.MatchAs, stack: list) -> None:
    if type(node.name) is str:
        s._store(s.scope, node.name)
    if node.pattern is not None:
        stack.append(node.pattern)


def _h_match_star(s: _Scanner, node: ast.MatchStar, stack: list) -> None:
    if type(node.name) is str:
        s._store(s.scope, node.name)


def _h_match_mapping(s: _Scanner, node: ast.MatchMapping, stack: list) -> None:
    if type(node.rest) is str:
        s._store(s.scope, node.rest)
    stack.extend(node.keys)
    stack.extend(node.patterns)


def _h_import(s: _Scanner, node: ast.Import, stack: list) -> None:
    scope = s.scope
    for alias in node.names:
        if alias.asname:
            s._store(scope, alias.asname)
        elif alias.name and alias.name != "*":
            # `import a.b.c` binds only `a`.
            s._store(scope, alias.name.partition(".")[0])


def _h_global(s: _Scanner, node: ast.Global, stack: list) -> None:
    scope = s.scope
    if scope.kind in (_FUNC, _CLASS):
        scope.glob.update(node.names)


def _h_nonlocal(s: _Scanner, node: ast.Nonlocal, stack: list) -> None:
    scope = s.scope
    if scope.kind in (_FUNC, _CLASS):
        scope.nonloc.update(node.names)


def _h_leaf(s: _Scanner, node: AST, stack: list) -> None:
    return None


_HANDLERS: dict[type, object] = {
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
    _HANDLERS[ast.TryStar] = _h_try


def _future_annotations(tree: AST) -> bool:
    # `from __future__ import annotations` in the cell turns annotations into strings.
    body = getattr(tree, "body", None)
    for stmt in body if type(body) is list else ():
        if (
            type(stmt) is ast.ImportFrom
            and stmt.module == "__future__"
            and any(alias.name == "annotations" for alias in stmt.names)
        ):
            return True
    return False


def _names(found: set) -> frozenset[str]:
    names = frozenset(found)
    # Only a malformed hand-built tree can carry a non-str identifier.
    if not all(type(n) is str for n in names):
        names = frozenset(n for n in names if type(n) is str)
    return names


def _scan(tree: AST, depth: int) -> CellNames:
    try:
        scanner = _Scanner(not _future_annotations(tree), depth)
        body = getattr(tree, "body", None)
        if type(tree) in (ast.Module, ast.Interactive) and type(body) is list:
            scanner.body(body)
        elif type(tree) is ast.Expression:
            scanner.visit(body)
        elif type(tree) is list:
            scanner.body(tree)
        else:
            scanner.visit(tree)
        return CellNames(_names(scanner.reads), _names(scanner.writes), _names(scanner.deletes))
    except Exception:
        # RecursionError on pathological nesting of scopes, or a malformed tree.
        return _FAILED


def scan_tree(tree: ast.AST) -> CellNames:
    """Return the module-level names that the cell ``tree`` reads, writes and deletes.

    ``tree`` is normally the ``ast.Module`` IPython compiles; ``Interactive``,
    ``Expression`` and bare statement or expression nodes are accepted too.
    Never raises: on any failure (e.g. ``RecursionError`` on absurdly nested
    lambdas, or a malformed hand-built tree) it returns an empty result with
    ``parsed=False``, and the caller should then use ``scan_tokens`` on the source.
    """
    return _scan(tree, 0)


def scan_source(source: str) -> CellNames:
    """Parse ``source`` and scan it; fall back to ``scan_tokens`` if that fails.

    The fallback covers SyntaxError, null bytes, parser MemoryError/RecursionError
    on deep nesting, and anything else. Never raises.
    """
    try:
        if isinstance(source, bytes):
            source = source.decode("utf-8", "replace")
        tree = _parse(source)
    except Exception:
        return scan_tokens(source)
    result = _scan(tree, 0)
    if not result.parsed:
        return scan_tokens(source)
    return result


def scan_tokens(source: str) -> CellNames:
    """Fallback scan: every identifier-like token (Python keywords excepted) is a read.

    Over-approximates on purpose (names in strings and comments count), reports
    no writes or deletes, and sets ``parsed=False``. Never raises.
    """
    try:
        if isinstance(source, bytes):
            source = source.decode("utf-8", "replace")
        elif not isinstance(source, str):
            source = str(source)
        return CellNames(frozenset(_identifiers(source)), _NOTHING, _NOTHING, parsed=False)
    except Exception:
        return _FAILED


def merge(a: CellNames, b: CellNames) -> CellNames:
    """Union of two scans; ``parsed`` only if both were parsed."""
    return CellNames(
        a.reads | b.reads,
        a.writes | b.writes,
        a.deletes | b.deletes,
        a.parsed and b.parsed,
    )
