"""Last access of every name in the user namespace, direct or through the user's own code.

The tracker is fed the names each user cell reads, writes and deletes (from
:mod:`greed_kernel.analysis.scope`) and stamps them with a monotonic time and the
execution number. When a cell reads a function, class, method, lambda or
``functools.partial`` defined in the session, the globals its code refers to
count as touched too (followed transitively, with a bound), so ``train()``
keeps the global ``optimizer`` it uses fresh.
"""

from __future__ import annotations

import functools
import time
import types
import typing as t
from collections.abc import Iterable, Mapping

#: Most session callables followed from one cell (transitively).
MAX_CALLABLES = 64
#: Most code objects whose names are cached (code objects are hashable).
MAX_CODE_CACHE = 4096


class Access(t.NamedTuple):
    """When a name was last touched: monotonic seconds and execution number."""

    time: float
    execution: int


_CODE_NAMES: dict[types.CodeType, frozenset[str]] = {}


def code_names(code: types.CodeType) -> frozenset[str]:
    """Every global or attribute name a code object (and its nested code) mentions.

    ``co_names`` over-approximates globals (it also holds attribute names), which
    errs on the side of keeping things. Cached, since cells call the same
    functions over and over.
    """
    found = _CODE_NAMES.get(code)
    if found is not None:
        return found
    names: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if type(k) is types.CodeType)
    found = frozenset(names)
    if len(_CODE_NAMES) >= MAX_CODE_CACHE:
        _CODE_NAMES.clear()
    _CODE_NAMES[code] = found
    return found


class Tracker:
    """Records when each name was last touched by a user cell."""

    def __init__(self, user_ns: Mapping[str, t.Any]) -> None:
        self.user_ns = user_ns
        self.last: dict[str, Access] = {}

    def touch(self, names: Iterable[str], execution: int, now: float | None = None) -> set[str]:
        """Stamp *names*, and the globals used by session code among them.

        Returns the names reached only through session code.
        """
        stamp = Access(time.monotonic() if now is None else now, execution)
        last = self.last
        for name in names:
            last[name] = stamp
        reached = self.indirect(names)
        for name in reached:
            last[name] = stamp
        return reached

    def indirect(self, names: Iterable[str]) -> set[str]:
        """Globals reached through session-defined callables among *names*."""
        ns = self.user_ns
        found: set[str] = set()
        todo: list[t.Any] = []
        for name in names:
            value = ns.get(name)
            if _is_code(value):
                todo.append(value)
        if not todo:
            return found
        seen: set[int] = set()
        budget = MAX_CALLABLES
        while todo and budget > 0:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            budget -= 1
            for code in self._codes(obj):
                for gname in code_names(code):
                    if gname in found:
                        continue
                    if gname not in ns:
                        continue
                    found.add(gname)
                    value = ns[gname]
                    if _is_code(value):
                        todo.append(value)
        return found

    def _codes(self, obj: t.Any) -> list[types.CodeType]:
        """Code objects of a session-defined callable (empty for anything else)."""
        kind = type(obj)
        try:
            if kind is types.FunctionType:
                if obj.__globals__ is self.user_ns:
                    return [obj.__code__]
                return []
            if kind is types.MethodType:
                return self._codes(obj.__func__)
            if kind is functools.partial:
                codes = self._codes(obj.func)
                for arg in (*obj.args, *obj.keywords.values()):
                    if _is_callable_kind(type(arg)):
                        codes.extend(self._codes(arg))
                return codes
            if issubclass(kind, type):
                if type.__getattribute__(obj, "__module__") != "__main__":
                    return []
                codes = []
                for member in type.__getattribute__(obj, "__dict__").values():
                    if type(member) in (staticmethod, classmethod):
                        member = member.__func__
                    elif type(member) is property:
                        member = member.fget
                    if type(member) is types.FunctionType and member.__globals__ is self.user_ns:
                        codes.append(member.__code__)
                return codes
        except Exception:  # hostile objects: a lying __class__, a raising descriptor
            return []
        return []

    def forget_missing(self) -> None:
        """Drop records of names that no longer exist (bounds the table)."""
        ns = self.user_ns
        for name in [n for n in self.last if n not in ns and not _is_output_name(n)]:
            del self.last[name]


def _is_output_name(name: str) -> bool:
    return len(name) > 1 and name[0] == "_" and name[1:].isdigit()


def _is_callable_kind(kind: type) -> bool:
    # identity, not a set lookup: a class whose metaclass is unhashable cannot be hashed
    return kind is types.FunctionType or kind is types.MethodType or kind is functools.partial


def _is_code(value: t.Any) -> bool:
    """A callable whose code we can follow; ``type()`` so a lying ``__class__`` is ignored."""
    kind = type(value)
    return _is_callable_kind(kind) or issubclass(kind, type)
