"""How much memory a user value holds, cheaply and honestly.

`measure` is called on every namespace value at cleanup time, so it must be
cheap (no heap walks, no `gc.get_referents`), bounded (containers are walked to
a fixed depth and item budget) and must never raise, whatever the user put in
their namespace.

It never imports torch, numpy or pandas: a value can only be one of their types
if the user already imported the library, so we look the library up in
`sys.modules` and otherwise treat the value as a plain Python object. What kind
a value is comes from `kinds`; tensors, modules and optimizers are walked by
`torchlib`, the only module that touches torch.

Dedup: shared buffers are counted once per `seen` set. Tensor storages and
numpy buffers are keyed by (device, data pointer), so a tensor, its views and a
numpy array sharing its memory (`torch.from_numpy`, `Tensor.numpy`) count once.
Every other object, containers included, is keyed by `id()`, which also stops
cycles. A `seen` set is only meaningful while the values measured with it are
alive (ids and pointers are reused after they are freed).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from . import adopted
from .introspect import getsizeof, in_mro, type_name
from .kinds import (
    ATOMIC,
    CONTAINER,
    FRAME,
    INDEX,
    MEMORYVIEW,
    MODULE,
    NDARRAY,
    OPTIMIZER,
    PLAIN,
    TENSOR,
    Libs,
    current_libs,
)
from .torchlib import module_bytes, optimizer_bytes, tensor_bytes

log = logging.getLogger(__name__)

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "Size",
    "cpu_buffers",
    "human_bytes",
    "measure",
    "owned_buffers",
]

#: Containers nested deeper than this are counted shallowly (`sys.getsizeof`).
MAX_DEPTH = 3
#: Container elements (a dict entry counts once for key and value) visited per
#: top-level `measure` call; the rest of a bigger container is not counted.
MAX_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class Size:
    """The measured size of a value."""

    #: Bytes held (shared storage counted once per `seen` set).
    nbytes: int
    #: "cpu", "cuda:0", ... for tensors and modules, "mixed" for containers of
    #: tensors on several devices; None for everything else.
    device: str | None


def human_bytes(n: int) -> str:
    """Format a byte count with binary units: "512 B", "1.2 GiB", "812 MiB".

    One decimal below 10 units, whole numbers above; never raises.
    """
    try:
        n = int(n)
    except Exception:
        return "? B"
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1024:
        return f"{sign}{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024.0
        # Round first so that 1023.7 KiB becomes "1.0 MiB", not "1024 KiB".
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        if float(text) < 1024 or unit == "EiB":
            return f"{sign}{text} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def measure(value: object, *, seen: set[int] | None = None, enough: int | None = None) -> Size:
    """Return the memory held by `value` and the device it lives on.

    - torch tensors: their storage, counted once per storage; sparse tensors
      by their index and value tensors; meta tensors are 0.
    - torch.nn.Module: parameters, their gradients and buffers; device of the
      first parameter or buffer ("cpu" when it has none).
    - torch.optim.Optimizer: the tensors in its state (exp_avg, ...).
    - numpy arrays: the buffer of the array that owns the memory (views count
      their base, once).
    - pandas DataFrame / Series / Index: `memory_usage(deep=False)`, index included.
    - list, tuple, dict (keys and values), set, frozenset: walked to depth
      `MAX_DEPTH` and at most `MAX_ITEMS` elements in all.
    - anything else: `sys.getsizeof`, or 0 if that fails.

    Pass the same `seen` set to several calls to count shared objects and
    storages once across them. *enough*: a container's walk stops once its own
    bytes reach this (the size is then at least *enough*: what a threshold test
    needs, at the cost of one step for a big list). Never raises (except BaseExceptions such as
    KeyboardInterrupt, which are not ours to swallow).
    """
    if seen is None:
        seen = set()
    cls = type(value)
    try:
        atomic = cls in ATOMIC
    except Exception:  # hashing a class can run its metaclass's hostile __hash__
        atomic = False
    libs = None if atomic else current_libs()
    kind, base = (PLAIN, None) if libs is None else libs.classify(cls)
    if kind == PLAIN:  # most namespace values: skip setting up a walk
        key = id(value)
        if key in seen:
            return Size(0, None)
        seen.add(key)
        return Size(getsizeof(value), None)
    walk = _Walk(seen, libs)  # type: ignore[arg-type]
    if enough is not None:
        walk.enough = enough
    try:
        nbytes = walk.dispatch(value, kind, base, 0)
    except Exception:  # defensive: every handler already guards itself
        log.debug("measure failed on a %s", type_name(value), exc_info=True)
        nbytes = 0
    device = walk.top_device
    if device is None and walk.devices:
        device = next(iter(walk.devices)) if len(walk.devices) == 1 else "mixed"
    return Size(max(int(nbytes), 0), device)


def cpu_buffers(value: object, *, seen: set[int] | None = None) -> list[tuple[int, int]]:
    """The (address, length) of the CPU memory buffers `value` holds, walked as
    `measure` walks it: tensors' storages (modules' parameters, gradients and
    buffers, optimizer state), numpy arrays' owning buffers, pandas blocks, in
    containers.

    Only memory that torch or numpy allocated and owns is reported: no CUDA,
    meta, sparse or pinned tensors, no array whose memory belongs to a bytes
    object, an mmap or another library. Never raises.
    """
    return [(ptr, nbytes) for ptr, nbytes, _ in _buffers(value, seen)]


def owned_buffers(value: object, *, seen: set[int] | None = None) -> list[tuple[int, int, object]]:
    """The buffers of `cpu_buffers` whose owner is known, with that owner: the
    object whose death frees the memory. That is a tensor's storage when torch
    allocated it (``resizable()``: not shared with numpy, a file or a buffer), or
    the numpy array that owns its data. Paging needs the owner to follow the
    memory's lifetime (see paging.py). Never raises.
    """
    return [b for b in _buffers(value, seen) if b[2] is not None]


def _buffers(value: object, seen: set[int] | None) -> list[tuple[int, int, object]]:
    if seen is None:
        seen = set()
    libs = current_libs()
    try:
        kind, base = libs.classify(type(value))
    except Exception:
        return []
    if kind == PLAIN:
        return []
    walk = _Walk(seen, libs)
    walk.buffers = []
    try:
        walk.dispatch(value, kind, base, 0)
    except Exception:
        log.debug("cpu_buffers failed on a %s", type_name(value), exc_info=True)
    return walk.buffers


class _Walk:
    """State of one top-level measure() call."""

    __slots__ = ("budget", "buffers", "devices", "enough", "libs", "seen", "top_device", "torch")

    def __init__(self, seen: set[int], libs: Libs) -> None:
        self.seen = seen
        #: When a list, CPU buffers found are recorded in it as (address, length,
        #: owner or None) (see owned_buffers).
        self.buffers: list[tuple[int, int, object]] | None = None
        self.budget = MAX_ITEMS
        self.enough = math.inf  # a container's walk stops once its bytes reach this
        self.devices: set[str] = set()
        self.top_device: str | None = None
        self.libs = libs
        #: For torchlib's handlers (the torchlib.Walk protocol).
        self.torch = libs.torch

    # -- dispatch ----------------------------------------------------------------

    def measure(self, value: object, depth: int) -> int:
        cls = type(value)
        try:
            if cls in ATOMIC:  # fast path for the bulk of container elements
                return self._once(value)
        except Exception:  # hashing a class can run its metaclass's hostile __hash__
            return self._once(value)
        kind, base = self.libs.classify(cls)
        return self.dispatch(value, kind, base, depth)

    def dispatch(self, value: object, kind: int, base: type | None, depth: int) -> int:
        if kind == CONTAINER:
            return self._container(value, base, depth)  # type: ignore[arg-type]
        if kind == TENSOR:
            return tensor_bytes(self, value, top=depth == 0)
        if kind == MODULE:
            return module_bytes(self, value, top=depth == 0)
        if kind == OPTIMIZER:
            return optimizer_bytes(self, value)
        if kind == NDARRAY:
            return self._ndarray(value)
        if kind == FRAME:
            return self._pandas(value, index=True)
        if kind == INDEX:
            return self._pandas(value, index=False)
        if kind == MEMORYVIEW:
            return self._memoryview(value)  # type: ignore[arg-type]
        return self._once(value)

    def first(self, key: int) -> bool:
        """True the first time `key` is seen in this `seen` set."""
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _once(self, value: object) -> int:
        return getsizeof(value) if self.first(id(value)) else 0

    # -- containers --------------------------------------------------------------

    def _container(self, value: object, base: type, depth: int) -> int:
        if not self.first(id(value)):
            return 0
        total = getsizeof(value)
        if total == 0:
            # A subclass with a broken __sizeof__: the base type's still works.
            try:
                total = int(base.__sizeof__(value))
            except Exception:
                total = 0
        enough = self.enough
        if depth >= MAX_DEPTH or self.budget <= 0 or total >= enough:
            return total
        depth += 1
        measure = self.measure
        try:
            # The base type's C methods, not value's: a subclass cannot intercept them.
            if base is dict:
                for k, v in dict.items(value):  # type: ignore[arg-type]
                    if self.budget <= 0:
                        break
                    self.budget -= 1  # one entry, key and value, is one item
                    total += measure(k, depth) + measure(v, depth)
                    if total >= enough:
                        break
            else:
                for item in base.__iter__(value):  # type: ignore[attr-defined]
                    if self.budget <= 0:
                        break
                    self.budget -= 1
                    total += measure(item, depth)
                    if total >= enough:
                        break
        except Exception:  # e.g. mutated during iteration by another thread
            log.debug("stopped walking a %s", type_name(value), exc_info=True)
        return total

    # -- numpy, pandas, buffers --------------------------------------------------

    def _ndarray(self, arr: object) -> int:
        """The buffer of the array owning the memory, once per data pointer."""
        ndarray = self.libs.ndarray
        owner = arr
        owned = True  # the memory is numpy's own (not a bytes object's, an mmap's...)
        mapping = None  # or a resumed array's mmap, which owns it
        try:
            base = arr.base  # type: ignore[attr-defined]
            for _ in range(64):  # numpy collapses view chains; the bound is for safety
                if base is None:
                    break
                if not in_mro(type(base), ndarray):
                    if in_mro(type(base), self.torch.tensor):
                        # Tensor.numpy(): the tensor's storage owns the memory.
                        return tensor_bytes(self, base, record=False)
                    # bytes, mmap, ...: the last ndarray spans what we use of it;
                    # a resumed array's mmap is ours, and owns the memory
                    mapping = adopted.mapping_of(base)
                    owned = mapping is not None
                    break
                owner, base = base, base.base
            nbytes = int(owner.nbytes)  # type: ignore[attr-defined]
            ptr = int(owner.__array_interface__["data"][0])  # type: ignore[attr-defined]
            if self.buffers is not None and mapping is None:
                owned = owned and bool(owner.flags.owndata)  # type: ignore[attr-defined]
        except Exception:
            return self._once(arr)
        # Keyed like a CPU tensor storage so that torch.from_numpy(a) and a count once.
        if not self.first(hash(("cpu", ptr))):
            return 0
        if self.buffers is not None and owned:
            keeper = owner if owner.base is None else mapping  # type: ignore[attr-defined]
            self.buffers.append((ptr, nbytes, keeper))
        return nbytes

    def _pandas(self, obj: object, *, index: bool) -> int:
        if not self.first(id(obj)):
            return 0
        if self.buffers is not None:
            self._pandas_blocks(obj)
        try:
            if index:  # DataFrame (a Series per column) or Series (an int)
                usage = obj.memory_usage(index=True, deep=False)  # type: ignore[attr-defined]
            else:  # Index.memory_usage has no index argument
                usage = obj.memory_usage(deep=False)  # type: ignore[attr-defined]
            if not isinstance(usage, int):
                usage = usage.sum()
            return int(usage)
        except Exception:
            log.debug("memory_usage failed on a %s", type_name(obj), exc_info=True)
            return getsizeof(obj)

    def _pandas_blocks(self, obj: object) -> None:
        """Record the numpy arrays of a frame's or series' blocks (pandas' block manager)."""
        ndarray = self.libs.ndarray
        try:
            arrays = obj._mgr.arrays  # type: ignore[attr-defined]
            for a in list(arrays)[:MAX_ITEMS]:
                if ndarray is not None and in_mro(type(a), ndarray):
                    self._ndarray(a)
        except Exception:
            log.debug("no blocks for a %s", type_name(obj), exc_info=True)

    def _memoryview(self, mv: memoryview) -> int:
        if not self.first(id(mv)):
            return 0
        try:
            return int(mv.nbytes)
        except Exception:  # a released memoryview
            return getsizeof(mv)
