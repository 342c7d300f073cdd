"""What kind of value an object is, for `sizes`: decided once per type.

A value can only be a torch, numpy or pandas object if the user already
imported the library, so the libraries are looked up in `sys.modules` (torch
through `torchlib`) and never imported. Classes are compared by identity over
their MRO, so that no metaclass or `__subclasscheck__` of the user's runs.
"""

from __future__ import annotations

import contextlib
import sys

from . import torchlib
from .introspect import type_attr

__all__ = [
    "ATOMIC",
    "CONTAINER",
    "CONTAINER_BASES",
    "FRAME",
    "INDEX",
    "MEMORYVIEW",
    "MODULE",
    "NDARRAY",
    "OPTIMIZER",
    "PLAIN",
    "TENSOR",
    "Libs",
    "current_libs",
]

# Exact types that hold no references worth following: measured by getsizeof.
ATOMIC = frozenset({int, float, complex, bool, type(None), str, bytes, bytearray, range})
# Walked containers, with the base type whose (C) methods we call, so that a
# subclass overriding __iter__/__len__ cannot run code or lie to us.
CONTAINER_BASES = (list, tuple, dict, set, frozenset)

# What a value is (see Libs.classify).
PLAIN, CONTAINER, TENSOR, MODULE, OPTIMIZER, NDARRAY, FRAME, INDEX, MEMORYVIEW = range(9)
#: Types remembered by classify() before the cache starts over.
MAX_KINDS = 4096


class Libs:
    """The library types available at the time of a measure() call."""

    __slots__ = ("complete", "frames", "index", "key", "kinds", "ndarray", "torch")

    def __init__(self, key: tuple[torchlib.TorchTypes, object, object]) -> None:
        torch, numpy, pandas = key
        self.key = key
        # type -> (kind, container base). Bounded: classes made on the fly
        # (namedtuple in a loop...) must not pile up in it.
        self.kinds: dict[type, tuple[int, type | None]] = {}
        self.torch = torch
        self.ndarray = self.index = None
        self.frames: tuple[type, ...] = ()
        if numpy is not None:
            self.ndarray = type_attr(numpy, "ndarray")
        if pandas is not None:
            found = (type_attr(pandas, n) for n in ("DataFrame", "Series"))
            self.frames = tuple(t for t in found if t is not None)
            self.index = type_attr(pandas, "Index")
        # A library caught half-imported lacks some types: look again next time.
        self.complete = (
            torch.complete
            and (numpy is None or self.ndarray is not None)
            and (pandas is None or (len(self.frames) == 2 and self.index is not None))
        )

    def classify(self, cls: type) -> tuple[int, type | None]:
        """What kind of value an instance of `cls` is, and the container base type if any."""
        try:
            return self.kinds[cls]
        except KeyError:
            pass
        except Exception:  # a metaclass with a hostile __hash__ or __eq__: no caching
            return self._classify(cls)
        found = self._classify(cls)
        if len(self.kinds) >= MAX_KINDS:
            self.kinds.clear()
        with contextlib.suppress(Exception):
            self.kinds[cls] = found
        return found

    def _classify(self, cls: type) -> tuple[int, type | None]:
        try:
            mro = cls.__mro__
            if type(mro) is not tuple:
                return PLAIN, None
        except Exception:
            return PLAIN, None
        ids = {id(c) for c in mro}  # identity: no __eq__ of a hostile metaclass runs
        if id(memoryview) in ids:
            return MEMORYVIEW, None
        torch = self.torch
        for kind, target in (
            (TENSOR, torch.tensor),
            (MODULE, torch.module),
            (OPTIMIZER, torch.optimizer),
            (NDARRAY, self.ndarray),
            (INDEX, self.index),
        ):
            if target is not None and id(target) in ids:
                return kind, None
        for frame in self.frames:
            if id(frame) in ids:
                return FRAME, None
        for base in CONTAINER_BASES:  # subclasses too: namedtuple, defaultdict, ...
            if id(base) in ids:
                return CONTAINER, base
        return PLAIN, None


_libs_cache: Libs | None = None


def current_libs() -> Libs:
    """The current Libs, rebuilt only when torch/numpy/pandas appear (or are replaced)."""
    global _libs_cache
    mods = sys.modules
    key = (torchlib.torch_types(), mods.get("numpy"), mods.get("pandas"))
    cached = _libs_cache
    if (
        cached is not None
        and cached.complete
        and cached.key[0] is key[0]
        and cached.key[1] is key[1]
        and cached.key[2] is key[2]
    ):
        return cached
    _libs_cache = found = Libs(key)
    return found
