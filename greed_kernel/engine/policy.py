"""Preservation rules: given a name, its value and its last access, keep or clean, and why.

A pure component: it reads no namespace and changes nothing. Rules apply in
this order, the first that matches decides:

1. marked with ``%greed preserve``, or matching ``GreedKernel.preserve``: keep
2. recent: touched within ``recent_window`` seconds and within the last
   ``recent_cells`` executions (with ``evict="delete"`` the seconds alone): keep
3. dunder names, modules (and names in ``sys.modules``), IPython/Jupyter internals: keep
4. functions, classes and other code: keep
5. matching ``temporary_patterns``: clean
6. anything else is stale: evictable when at least ``evict_min_bytes`` large, else kept
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import re
import sys
import types
import typing as t
from collections.abc import Callable, Container, Iterable

from ..analysis.tracker import Access
from ..memory.sizes import human_bytes

#: Names IPython and Jupyter put in the user namespace.
IPYTHON_NAMES = frozenset(
    {"In", "Out", "_ih", "_oh", "_dh", "_", "__", "___", "_i", "_ii", "_iii", "get_ipython"}
    | {"exit", "quit"}
)
#: Names tools inject into the namespace (variable inspectors and the like).
INJECTED_PATTERNS = ("_jupyterlab_variableinspector_*", "_Jupyter*", "_VSCODE_*", "__DW_*")

_CACHE_NAME = re.compile(r"_i{1,3}\d*|_\d+")


def is_history_name(name: str) -> bool:
    """IPython's input and output history variables (``_i12``, ``_12``, ``_ii``): one
    more per cell, and never the user's. Every rule keeps them and none lists them as
    preserved, so the walks over the namespace skip them first, at the price of a
    string test (a long session holds thousands)."""
    if name[:1] != "_":
        return False
    tail = name[1:]
    if tail.isdecimal():  # _12 (str.isdecimal is the regular expressions' \d)
        return True
    digits = tail.lstrip("i")  # _i12, _ii, _iii
    return 0 < len(tail) - len(digits) <= 3 and (not digits or digits.isdecimal())


_CODE_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.CodeType,
    staticmethod,
    classmethod,
    property,
)


_INTERNAL_REASONS = {
    "dunder": "kept: a dunder name",
    "module": "kept: a module",
    "internal": "kept: an IPython or Jupyter internal name",
}


class Verdict(str, enum.Enum):
    """What a cleanup may do with a name."""

    KEEP = "keep"
    CLEAN = "clean"  # a temporary: deleted at every cleanup
    STALE = "stale"  # evictable, per GreedKernel.evict


class Decision(t.NamedTuple):
    verdict: Verdict
    rule: str  # short, stable id: preserved, marked, recent, dunder, module, internal, code, ...
    reason: str  # a sentence a person can read


def compile_globs(patterns: Iterable[str]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """Split *patterns* into exact names and one compiled regex for the glob patterns."""
    exact, globs = set(), []
    for p in patterns:
        if any(c in p for c in "*?["):
            globs.append(fnmatch.translate(p))
        else:
            exact.add(p)
    return frozenset(exact), (re.compile("|".join(globs)) if globs else None)


def _first_match(name: str, patterns: Iterable[str]) -> str:
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), name)


class Policy:
    """The preservation rules, configured once and then asked about each name."""

    def __init__(
        self,
        *,
        preserve: Iterable[str] = (),
        temporary_patterns: Iterable[str] = ("_temp_*", "_out_*"),
        recent_window: float = 300.0,
        recent_cells: int = 0,
        execution: int = 0,
        evict_min_bytes: int = 1 << 20,
        marked: Container[str] = frozenset(),
        unmarked: Container[str] = frozenset(),
        hidden: Container[str] = frozenset(),
    ) -> None:
        self.preserve = tuple(preserve)
        self.temporary_patterns = tuple(temporary_patterns)
        self._preserve_exact, self._preserve_re = compile_globs(self.preserve)
        self._temp_exact, self._temp_re = compile_globs(self.temporary_patterns)
        self._injected_re = compile_globs(INJECTED_PATTERNS)[1]
        self.recent_window = recent_window
        #: 0: the seconds alone decide; else a name touched more executions ago than
        #: this, counted from *execution* (the cell running, or the last one), is not
        #: recent however few seconds ago that was
        self.recent_cells = recent_cells
        self.execution = execution
        self.evict_min_bytes = evict_min_bytes
        self.marked = marked  # live views: %greed preserve / unpreserve change them
        self.unmarked = unmarked
        self.hidden = hidden

    def is_listed(self, name: str) -> bool:
        """True when *name* is kept by rule 1 (marked or in the preserve list)."""
        return name in self.marked or self._configured(name)

    def _configured(self, name: str) -> bool:
        if name in self.unmarked:  # %greed unpreserve overrides the configured list
            return False
        return name in self._preserve_exact or bool(
            self._preserve_re is not None and self._preserve_re.fullmatch(name)
        )

    def internal_rule(self, name: str, value: t.Any) -> str | None:
        """Rule 3: 'dunder', 'module' or 'internal' when *name* is not the user's own data."""
        if name.startswith("__") and name.endswith("__"):
            return "dunder"
        if issubclass(type(value), types.ModuleType) or name in sys.modules:
            return "module"
        if (
            name in IPYTHON_NAMES
            or name in self.hidden
            or _CACHE_NAME.fullmatch(name)
            or (self._injected_re is not None and self._injected_re.fullmatch(name))
        ):
            return "internal"
        return None

    def is_recent(self, access: Access | None, now: float) -> bool:
        """Rule 2: touched within recent_window seconds and recent_cells executions."""
        return (
            access is not None
            and now - access.time <= self.recent_window
            and (not self.recent_cells or self.execution - access.execution < self.recent_cells)
        )

    def classify(
        self,
        name: str,
        value: t.Any,
        access: Access | None,
        now: float,
        size: Callable[[], int] | int | None = None,
    ) -> tuple[Verdict, str, int | None]:
        """The rules in order: (verdict, rule, size in bytes when it was needed).

        The cleanup's fast path: no reason text. *size* (bytes, or a callable giving
        them) is only evaluated when the name reaches the last rule.
        """
        # 1. marked or listed
        if name in self.marked:
            return Verdict.KEEP, "marked", None
        if self._configured(name):
            return Verdict.KEEP, "preserved", None
        # 2. recently touched
        if self.is_recent(access, now):
            return Verdict.KEEP, "recent", None
        # 3. dunders, modules, IPython and Jupyter internals
        rule = self.internal_rule(name, value)
        if rule is not None:
            return Verdict.KEEP, rule, None
        kind = type(value)  # type(), not __class__: user objects may lie
        # 4. code defined in the session (functions, classes, methods, partials)
        if issubclass(kind, _CODE_TYPES) or issubclass(kind, type) or _is_partial(kind):
            return Verdict.KEEP, "code", None
        # 5. temporaries
        temp_re = self._temp_re
        if name in self._temp_exact or (temp_re is not None and temp_re.fullmatch(name)):
            return Verdict.CLEAN, "temporary", None
        # 6. stale: evictable only when large
        nbytes = size() if callable(size) else size
        if nbytes is None or nbytes < self.evict_min_bytes:
            return Verdict.KEEP, "small", nbytes
        return Verdict.STALE, "stale", nbytes

    def decide(
        self,
        name: str,
        value: t.Any,
        access: Access | None,
        now: float,
        size: Callable[[], int] | int | None = None,
    ) -> Decision:
        """:meth:`classify`, with the reason a person reads (``%greed why``)."""
        verdict, rule, nbytes = self.classify(name, value, access, now, size)
        return Decision(verdict, rule, self._reason(name, value, rule, access, now, nbytes))

    def _reason(
        self,
        name: str,
        value: t.Any,
        rule: str,
        access: Access | None,
        now: float,
        nbytes: int | None,
    ) -> str:
        if rule == "marked":
            return "kept: marked with %greed preserve"
        if rule == "preserved":
            return f"kept: matches {_first_match(name, self.preserve)!r} in GreedKernel.preserve"
        if rule == "recent" and access is not None:
            cells = f" and the last {self.recent_cells} cells" if self.recent_cells else ""
            return (
                f"kept: touched {_ago(now - access.time)} ago (cell {access.execution}), "
                f"within the {self.recent_window:g} s recent window{cells}"
            )
        if rule in _INTERNAL_REASONS:
            return _INTERNAL_REASONS[rule]
        if rule == "code":
            return f"kept: code ({'class' if issubclass(type(value), type) else 'function'})"
        if rule == "temporary":
            return f"clean: temporary (matches {_first_match(name, self.temporary_patterns)!r})"
        when = (
            "never touched by a cell"
            if access is None
            else f"last touched {_ago(now - access.time)} ago (cell {access.execution})"
        )
        if access is not None and now - access.time <= self.recent_window:
            when += (
                f", {self.execution - access.execution} cells ago (recent: within the "
                f"last {self.recent_cells} cells)"
            )
        limit = human_bytes(self.evict_min_bytes)
        if rule == "small":
            shown = "size unknown" if nbytes is None else human_bytes(nbytes)
            return f"kept: stale ({when}) but small ({shown} < {limit})"
        return f"stale: {when}; {human_bytes(nbytes or 0)} >= evict_min_bytes ({limit})"


def _is_partial(kind: type) -> bool:
    return issubclass(kind, functools.partial)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Marks:
    """The user's marks: names kept always (``%greed preserve``) and names exempted
    from ``GreedKernel.preserve`` (``%greed unpreserve``)."""

    def __init__(self) -> None:
        self.marked: set[str] = set()
        self.unmarked: set[str] = set()

    def preserve(self, names: Iterable[str]) -> None:
        for name in names:
            self.marked.add(name)
            self.unmarked.discard(name)

    def unpreserve(self, names: Iterable[str]) -> None:
        for name in names:
            self.marked.discard(name)
            self.unmarked.add(name)

    def policy(self, settings: t.Any, hidden: Container[str], execution: int = 0) -> Policy:
        """The rules as *settings* (GreedKernel's traits) and the marks say now;
        *execution*: the number of the cell running, or of the last one. With
        ``evict="delete"`` (a wrong guess loses the value) only the seconds count."""
        return Policy(
            preserve=settings.preserve,
            temporary_patterns=settings.temporary_patterns,
            recent_window=settings.recent_window,
            recent_cells=0 if settings.evict == "delete" else settings.recent_cells,
            execution=execution,
            evict_min_bytes=settings.evict_min_bytes,
            marked=self.marked,
            unmarked=self.unmarked,
            hidden=hidden,
        )
