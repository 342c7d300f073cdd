"""Which module-level names a notebook cell reads, writes and deletes, from its tree.

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

This module holds the scopes, the name events and the walk; the per-construct
rules live in :mod:`greed_kernel.analysis.bindings`, and what IPython's ``get_ipython()``
calls and ``Out[n]`` mean in :mod:`greed_kernel.analysis.syntax`.

Everything here is stdlib only and never raises: ``scan_source`` falls back to
``scan_tokens`` (every identifier-like token counted as a read) when the source
does not parse, and ``scan_tree`` returns ``parsed=False`` on any internal
failure so that the caller can fall back to ``scan_tokens`` on the source.
"""

from __future__ import annotations

import ast
from ast import AST, Attribute, Call, Constant, Load, Name, Store

from .bindings import CLASS, COMPREHENSION, FUNCTION, HANDLERS, MODULE
from .cellnames import FAILED, CellNames
from .syntax import IPY_METHODS, ipython_call, parse, scan_tokens

__all__ = ["Scanner", "Scope", "scan_source", "scan_tree"]

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
# type -> handler function (bindings.HANDLERS), or the fields to walk generically;
# filled lazily, on the first node of each type.
_TABLE: dict[type, object] = {}


def _table_entry(t: type) -> object:
    entry = HANDLERS.get(t)
    if entry is None:
        if isinstance(t, type) and issubclass(t, AST):
            entry = tuple(f for f in t._fields if f not in _SKIP_FIELDS)
        else:
            entry = ()
    _TABLE[t] = entry
    return entry


class Scope:
    """One scope of the walk: what it binds and declares, and the loads still unresolved."""

    __slots__ = ("bound", "glob", "kind", "nonloc", "parent", "pending")

    def __init__(self, kind: int, parent: Scope | None) -> None:
        self.kind = kind
        self.parent = parent
        self.bound: set[str] = set()
        self.glob: set[str] = set()
        self.nonloc: set[str] = set()
        # Loads (here or in nested scopes) not yet known to be local; resolved on close.
        self.pending: set[str] = set()


class Scanner:
    """One walk over a cell's tree: the scope stack and the module-level names found.

    The handlers of :mod:`greed_kernel.analysis.bindings` and the IPython calls of
    :mod:`greed_kernel.analysis.syntax` report through ``load``/``store``/``delete`` (a name
    event in a given scope) and ``open``/``close`` (entering and leaving a scope).
    """

    __slots__ = ("deletes", "depth", "eval_annotations", "module", "reads", "scope", "writes")

    def __init__(self, eval_annotations: bool = True, depth: int = 0) -> None:
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.deletes: set[str] = set()
        self.module = Scope(MODULE, None)
        self.scope = self.module
        self.eval_annotations = eval_annotations
        # Nesting of magic arguments scanned as code (bounded, just in case).
        self.depth = depth

    # -- name events -------------------------------------------------------

    def load(self, scope: Scope, name: str) -> None:
        kind = scope.kind
        if kind == MODULE:
            self.reads.add(name)
        elif kind == CLASS:
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

    def store(self, scope: Scope, name: str) -> None:
        kind = scope.kind
        if kind == MODULE:
            self.writes.add(name)
        elif kind == COMPREHENSION:
            scope.bound.add(name)
        elif name in scope.glob:
            self.writes.add(name)
        elif name not in scope.nonloc:
            scope.bound.add(name)

    def delete(self, scope: Scope, name: str) -> None:
        kind = scope.kind
        if kind == MODULE or name in scope.glob:
            self.deletes.add(name)
        elif name not in scope.nonloc:
            # `del x` makes x local to a function, like any binding.
            scope.bound.add(name)

    def _propagate(self, scope: Scope | None, name: str) -> None:
        # Free name leaving a scope: class scopes are invisible to nested code.
        while scope is not None and scope.kind == CLASS:
            scope = scope.parent
        if scope is None or scope.kind == MODULE:
            self.reads.add(name)
        else:
            scope.pending.add(name)

    def open(self, kind: int) -> Scope:
        scope = Scope(kind, self.scope)
        self.scope = scope
        return scope

    def close(self, scope: Scope) -> None:
        parent = scope.parent
        self.scope = parent  # type: ignore[assignment]
        if scope.kind == CLASS:
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
        at_module = kind == MODULE
        # In functions and comprehensions a load is resolved when the scope closes.
        deferred = kind in (FUNCTION, COMPREHENSION)
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
                        self.load(scope, node.id)
                elif ctx is Store:
                    if at_module:
                        writes_add(node.id)
                    else:
                        self.store(scope, node.id)
                else:
                    self.delete(scope, node.id)
            elif t is Attribute:
                push(node.value)
            elif t is Call:
                func = node.func
                if type(func) is Attribute and func.attr in IPY_METHODS:
                    ipython_call(self, node)
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

    def add(self, names: CellNames) -> None:
        """Add names found by a separate scan of code run in the user namespace."""
        self.reads |= names.reads
        self.writes |= names.writes
        self.deletes |= names.deletes

    def scan_nested(self, tree: AST) -> CellNames:
        """Scan a magic's argument as module code, one level deeper than this scan."""
        return _scan(tree, self.depth + 1)


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
        scanner = Scanner(not _future_annotations(tree), depth)
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
        return FAILED


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
        tree = parse(source)
    except Exception:
        return scan_tokens(source)
    result = _scan(tree, 0)
    if not result.parsed:
        return scan_tokens(source)
    return result
