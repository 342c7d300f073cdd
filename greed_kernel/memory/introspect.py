"""Looking at the user's objects without running their code.

Whatever the user put in their namespace may have a hostile `__getattr__`,
`__sizeof__`, metaclass `__eq__`/`__hash__` or `__subclasscheck__`, or be a
library module caught half-imported. These helpers never raise (except
BaseExceptions such as KeyboardInterrupt) and compare classes by identity, so
that no such code runs.
"""

from __future__ import annotations

import sys

__all__ = ["getsizeof", "in_mro", "safe_getattr", "type_attr", "type_name"]


def safe_getattr(obj: object, name: str) -> object:
    """`getattr(obj, name, None)`, and None when the lookup raises."""
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # a half-initialised module during import, say
        return None


def type_attr(obj: object, name: str) -> type | None:
    """The attribute `name` of `obj` if it is a class, else None."""
    found = safe_getattr(obj, name)
    return found if isinstance(found, type) else None


def in_mro(cls: type, target: type | None) -> bool:
    """issubclass without running code: identity over the MRO (no __eq__, no __subclasscheck__)."""
    if target is None:
        return False
    try:
        mro = cls.__mro__
    except Exception:
        return False
    return any(c is target for c in mro)


def type_name(value: object) -> str:
    """The qualified name of `value`'s type, for log messages ("?" if unknown)."""
    try:
        return type(value).__qualname__
    except Exception:
        return "?"


def getsizeof(value: object) -> int:
    """`sys.getsizeof(value)`, or 0 when it fails."""
    try:
        return int(sys.getsizeof(value))
    except Exception:  # hostile or broken __sizeof__
        return 0
