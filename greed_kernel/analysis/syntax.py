"""IPython's syntax in a cell's names, and the token fallback for cells without a tree.

IPython's transformations turn magics into ``get_ipython()`` calls with string
arguments, which a plain tree walk cannot see into. The tree scan
(:mod:`greed_kernel.analysis.scope`) hands each such call to :func:`ipython_call`, which
reads the strings as IPython would: the argument of a code-running line magic
(``%time x = f(y)``, ``%timeit``, ``%prun``, ``x?``; see ``CODE_LINE_MAGICS``) is
parsed and scanned as module code (``%timeit`` contributes reads only: its
statement runs inside a function); ``$name`` and ``{expr}`` in shell commands and
magic lines are reads (IPython's variable expansion); ``%%capture name`` writes
``name`` and ``%xdel name`` deletes it. ``Out[12]`` and ``_oh[12]`` also read the
global ``_12`` (:func:`output_subscript`). Cell-magic bodies are NOT scanned: the
caller must transform them with IPython first (they may contain magics) and scan
them itself. ``%run``, ``%reset`` and ``from m import *`` can bind or delete names
that no scan can know.

When a cell has no usable tree (it does not parse, or is too deep for the tree
scan), :func:`scan_tokens` counts every identifier-like token as a read.

Everything here is stdlib only and never raises.
"""

from __future__ import annotations

import ast
import keyword
import re
import unicodedata
import warnings
from ast import AST, Call, Constant, Name, Subscript
from typing import TYPE_CHECKING

from .cellnames import FAILED, NOTHING, CellNames

if TYPE_CHECKING:
    from .scope import Scanner, Scope

__all__ = [
    "CODE_LINE_MAGICS",
    "IPY_METHODS",
    "OUT_NAMES",
    "identifiers",
    "ipython_call",
    "normalize",
    "output_subscript",
    "parse",
    "scan_tokens",
]

# Line magics whose argument is Python code run in the user namespace: IPython
# hands it over as a string, so the tree alone would miss `%time x = f(y)`.
CODE_LINE_MAGICS = frozenset(
    {"time", "timeit", "prun", "debug", "pinfo", "pinfo2", "pdef", "pdoc", "psource", "pfile"}
)
# The get_ipython() methods whose string arguments IPython expands ($x, {expr})
# or runs; anything else called on get_ipython() is an ordinary call.
IPY_METHODS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})
# Output-cache containers: Out[12] is the same object as the global _12.
OUT_NAMES = frozenset({"Out", "_oh"})

_KEYWORDS = frozenset(keyword.kwlist)
# An identifier not glued to a preceding word character (so no `e5` out of `1e5`)
# and not preceded by a dot (an attribute is never a global read).
_IDENT_RE = re.compile(r"(?<![\w.])[^\W\d]\w*")
_DOLLAR_RE = re.compile(r"(?<!\$)\$([^\W\d]\w*)")
_BRACES_RE = re.compile(r"\{([^{}]*)\}")
_OPTION_WORD_RE = re.compile(r"\S+")
_PARSE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
# How deep magic arguments scanned as code may nest (bounded, just in case).
_MAX_MAGIC_DEPTH = 20


# -- the get_ipython() calls and the output cache in a tree ------------------------------


def output_subscript(s: Scanner, scope: Scope, node: Subscript) -> None:
    """``Out[12]`` / ``_oh[12]`` read the object also bound to the global ``_12``."""
    index = node.slice
    if type(index) is Constant and type(node.ctx) is ast.Load:
        number = index.value
        if type(number) is int and number >= 0:
            s.load(scope, f"_{number}")


def ipython_call(s: Scanner, node: Call) -> None:
    """Record what a ``get_ipython().<method>(...)`` call (a transformed magic) touches.

    ``node.func`` is an attribute named in ``IPY_METHODS``; calls on anything but a
    bare ``get_ipython()``, or without string-literal arguments, are ignored.
    """
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
    scope = s.scope
    if method in ("system", "getoutput"):
        _expansions(s, scope, args[0])
    elif method == "run_line_magic" and len(args) >= 2:
        magic, line = args[0], args[1]
        if magic in CODE_LINE_MAGICS:
            found = _scan_magic_code(s, line)
            if magic == "timeit":
                # %timeit runs the statement inside a function: its bindings are local.
                found = CellNames(found.reads, NOTHING, NOTHING, found.parsed)
            s.add(found)
        elif magic == "xdel":
            # %xdel removes the name from the user namespace, wherever it is called.
            for word in line.split():
                if word.isidentifier() and not keyword.iskeyword(word):
                    s.delete(s.module, word)
        else:
            _expansions(s, scope, line)
    elif method == "run_cell_magic" and len(args) >= 2:
        # The cell body (args[2]) is left to the caller, which must run
        # IPython's transforms on it first.
        magic, line = args[0], args[1]
        _expansions(s, scope, line)
        if magic == "capture":
            # `%%capture name [--no-stdout ...]` binds the CapturedIO object.
            for word in line.split():
                if not word.startswith("-") and word.isidentifier():
                    s.store(s.module, word)
                    break


def _expansions(s: Scanner, scope: Scope, text: str) -> None:
    # IPython's var_expand: `$name` and `{expression}` read the namespace.
    if "$" in text:
        for name in _DOLLAR_RE.findall(text):
            s.load(scope, normalize(name))
    if "{" in text:
        for inner in _BRACES_RE.findall(text):
            for name in identifiers(inner):
                s.load(scope, name)


def _scan_magic_code(s: Scanner, line: str) -> CellNames:
    """Scan the argument of a code-running line magic such as ``%time``."""
    if s.depth + 1 > _MAX_MAGIC_DEPTH:
        return CellNames(frozenset(identifiers(line)), NOTHING, NOTHING)
    candidates = [line]
    if line.lstrip().startswith("-"):
        # Leading options (`-n 10 -r 3`): try the code starting at each of the next words.
        starts = [m.start() for m in _OPTION_WORD_RE.finditer(line, 0)][1:8]
        candidates.extend(line[start:] for start in starts)
    for candidate in candidates:
        try:
            tree = parse(candidate.strip())
        except Exception:
            continue
        result = s.scan_nested(tree)
        if result.parsed:
            return result
    words = [w for w in line.split() if not w.startswith("-")]
    return CellNames(frozenset(identifiers(" ".join(words))), NOTHING, NOTHING)


# -- source text ---------------------------------------------------------------------------


def parse(source: str) -> AST:
    """Compile ``source`` to a tree as IPython's cells allow it; raises as ``compile`` does.

    Top-level await / async for / async with are legal in IPython cells. The
    parser's Syntax/DeprecationWarnings (``"\\d"``, ``1if x``) are silenced: IPython
    reports them when it compiles the cell, and a second copy would confuse users.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(source, "<cell>", "exec", _PARSE_FLAGS)


def normalize(name: str) -> str:
    """The identifier as the parser sees it (NFKC-normalized); the token scan must agree."""
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


def identifiers(text: str) -> set[str]:
    """Every identifier-like token in ``text`` that is not a keyword or an attribute."""
    names = set(_IDENT_RE.findall(text))
    if not text.isascii():
        odd = [n for n in names if not n.isascii()]
        names.difference_update(odd)
        names.update(normalize(n) for n in odd)
    names -= _KEYWORDS
    return names


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
        return CellNames(frozenset(identifiers(source)), NOTHING, NOTHING, parsed=False)
    except Exception:
        return FAILED
