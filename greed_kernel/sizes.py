"""How much memory a user value holds, cheaply and honestly.

`measure` is called on every namespace value at cleanup time, so it must be
cheap (no heap walks, no `gc.get_referents`), bounded (containers are walked to
a fixed depth and item budget) and must never raise, whatever the user put in
their namespace.

It never imports torch, numpy or pandas: a value can only be one of their types
if the user already imported the library, so we look the library up in
`sys.modules` and otherwise treat the value as a plain Python object.

Dedup: shared buffers are counted once per `seen` set. Tensor storages and
numpy buffers are keyed by (device, data pointer), so a tensor, its views and a
numpy array sharing its memory (`torch.from_numpy`, `Tensor.numpy`) count once.
Every other object, containers included, is keyed by `id()`, which also stops
cycles. A `seen` set is only meaningful while the values measured with it are
alive (ids and pointers are reused after they are freed).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "Size", "cpu_buffers", "human_bytes", "measure"]

#: Containers nested deeper than this are counted shallowly (`sys.getsizeof`).
MAX_DEPTH = 3
#: Container elements (a dict entry counts once for key and value) visited per
#: top-level `measure` call; the rest of a bigger container is not counted.
MAX_ITEMS = 10_000

# Exact types that hold no references worth following: measured by getsizeof.
_ATOMIC = frozenset({int, float, complex, bool, type(None), str, bytes, bytearray, range})
# Walked containers, with the base type whose (C) methods we call, so that a
# subclass overriding __iter__/__len__ cannot run code or lie to us.
_CONTAINER_BASES = (list, tuple, dict, set, frozenset)

# What a value is, decided once per type (see _Libs.classify).
_PLAIN, _CONTAINER, _TENSOR, _MODULE, _OPTIMIZER, _NDARRAY, _FRAME, _INDEX, _MEMORYVIEW = range(9)
#: Types remembered by classify() before the cache starts over.
_MAX_KINDS = 4096


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


def measure(value: object, *, seen: set[int] | None = None) -> Size:
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
    storages once across them. Never raises (except BaseExceptions such as
    KeyboardInterrupt, which are not ours to swallow).
    """
    if seen is None:
        seen = set()
    cls = type(value)
    try:
        atomic = cls in _ATOMIC
    except Exception:  # hashing a class can run its metaclass's hostile __hash__
        atomic = False
    libs = None if atomic else _libs()
    kind, base = (_PLAIN, None) if libs is None else libs.classify(cls)
    if kind == _PLAIN:  # most namespace values: skip setting up a walk
        key = id(value)
        if key in seen:
            return Size(0, None)
        seen.add(key)
        return Size(_getsizeof(value), None)
    walk = _Walk(seen, libs)  # type: ignore[arg-type]
    try:
        nbytes = walk.dispatch(value, kind, base, 0)
    except Exception:  # defensive: every handler already guards itself
        log.debug("measure failed on a %s", _type_name(value), exc_info=True)
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
    if seen is None:
        seen = set()
    libs = _libs()
    try:
        kind, base = libs.classify(type(value))
    except Exception:
        return []
    if kind == _PLAIN:
        return []
    walk = _Walk(seen, libs)
    walk.buffers = []
    try:
        walk.dispatch(value, kind, base, 0)
    except Exception:
        log.debug("cpu_buffers failed on a %s", _type_name(value), exc_info=True)
    return walk.buffers


def _pinned(tensor: object) -> bool:
    """Pinned (page-locked) memory exists only once CUDA is initialised; we never
    initialise it to ask."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_initialized():
            return False
        return bool(tensor.is_pinned())  # type: ignore[attr-defined]
    except Exception:
        return True  # unknown: leave it alone


def _type_name(value: object) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "?"


def _getsizeof(value: object) -> int:
    try:
        return int(sys.getsizeof(value))
    except Exception:  # hostile or broken __sizeof__
        return 0


class _Libs:
    """The library types available at the time of a measure() call."""

    __slots__ = (
        "complete",
        "frames",
        "index",
        "key",
        "kinds",
        "module",
        "ndarray",
        "optimizer",
        "strided",
        "tensor",
    )

    def __init__(self, key: tuple[object, object, object]) -> None:
        torch, numpy, pandas = key
        self.key = key
        # type -> (kind, container base). Bounded: classes made on the fly
        # (namedtuple in a loop...) must not pile up in it.
        self.kinds: dict[type, tuple[int, type | None]] = {}
        self.tensor = self.module = self.optimizer = self.ndarray = self.index = None
        self.strided: object = None
        self.frames: tuple[type, ...] = ()
        if torch is not None:
            self.tensor = _type_attr(torch, "Tensor")
            self.strided = _safe_getattr(torch, "strided")
            self.module = _type_attr(_safe_getattr(torch, "nn"), "Module")
            self.optimizer = _type_attr(_safe_getattr(torch, "optim"), "Optimizer")
        if numpy is not None:
            self.ndarray = _type_attr(numpy, "ndarray")
        if pandas is not None:
            found = (_type_attr(pandas, n) for n in ("DataFrame", "Series"))
            self.frames = tuple(t for t in found if t is not None)
            self.index = _type_attr(pandas, "Index")
        # A library caught half-imported lacks some types: look again next time.
        self.complete = (
            (
                torch is None
                or all(t is not None for t in (self.tensor, self.module, self.optimizer))
            )
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
        if len(self.kinds) >= _MAX_KINDS:
            self.kinds.clear()
        with contextlib.suppress(Exception):
            self.kinds[cls] = found
        return found

    def _classify(self, cls: type) -> tuple[int, type | None]:
        try:
            mro = cls.__mro__
            if type(mro) is not tuple:
                return _PLAIN, None
        except Exception:
            return _PLAIN, None
        ids = {id(c) for c in mro}  # identity: no __eq__ of a hostile metaclass runs
        if id(memoryview) in ids:
            return _MEMORYVIEW, None
        for kind, target in (
            (_TENSOR, self.tensor),
            (_MODULE, self.module),
            (_OPTIMIZER, self.optimizer),
            (_NDARRAY, self.ndarray),
            (_INDEX, self.index),
        ):
            if target is not None and id(target) in ids:
                return kind, None
        for frame in self.frames:
            if id(frame) in ids:
                return _FRAME, None
        for base in _CONTAINER_BASES:  # subclasses too: namedtuple, defaultdict, ...
            if id(base) in ids:
                return _CONTAINER, base
        return _PLAIN, None


_libs_cache: _Libs | None = None


def _libs() -> _Libs:
    """The current _Libs, rebuilt only when torch/numpy/pandas appear (or are replaced)."""
    global _libs_cache
    mods = sys.modules
    key = (mods.get("torch"), mods.get("numpy"), mods.get("pandas"))
    cached = _libs_cache
    if (
        cached is not None
        and cached.complete
        and cached.key[0] is key[0]
        and cached.key[1] is key[1]
        and cached.key[2] is key[2]
    ):
        return cached
    _libs_cache = libs = _Libs(key)
    return libs


def _safe_getattr(obj: object, name: str) -> object:
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # a half-initialised module during import, say
        return None


def _type_attr(obj: object, name: str) -> type | None:
    found = _safe_getattr(obj, name)
    return found if isinstance(found, type) else None


def _in_mro(cls: type, target: type | None) -> bool:
    """issubclass without running code: identity over the MRO (no __eq__, no __subclasscheck__)."""
    if target is None:
        return False
    try:
        mro = cls.__mro__
    except Exception:
        return False
    return any(c is target for c in mro)


class _Walk:
    """State of one top-level measure() call."""

    __slots__ = ("budget", "buffers", "devices", "libs", "seen", "top_device")

    def __init__(self, seen: set[int], libs: _Libs) -> None:
        self.seen = seen
        #: When a list, CPU buffers found are recorded in it (see cpu_buffers).
        self.buffers: list[tuple[int, int]] | None = None
        self.budget = MAX_ITEMS
        self.devices: set[str] = set()
        self.top_device: str | None = None
        self.libs = libs

    # -- dispatch ----------------------------------------------------------------

    def measure(self, value: object, depth: int) -> int:
        cls = type(value)
        try:
            if cls in _ATOMIC:  # fast path for the bulk of container elements
                return self._once(value)
        except Exception:  # hashing a class can run its metaclass's hostile __hash__
            return self._once(value)
        kind, base = self.libs.classify(cls)
        return self.dispatch(value, kind, base, depth)

    def dispatch(self, value: object, kind: int, base: type | None, depth: int) -> int:
        if kind == _CONTAINER:
            return self._container(value, base, depth)  # type: ignore[arg-type]
        if kind == _TENSOR:
            return self._tensor(value, top=depth == 0)
        if kind == _MODULE:
            return self._module(value, top=depth == 0)
        if kind == _OPTIMIZER:
            return self._optimizer(value)
        if kind == _NDARRAY:
            return self._ndarray(value)
        if kind == _FRAME:
            return self._pandas(value, index=True)
        if kind == _INDEX:
            return self._pandas(value, index=False)
        if kind == _MEMORYVIEW:
            return self._memoryview(value)  # type: ignore[arg-type]
        return self._once(value)

    def _first(self, key: int) -> bool:
        """True the first time `key` is seen in this `seen` set."""
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _once(self, value: object) -> int:
        return _getsizeof(value) if self._first(id(value)) else 0

    # -- containers --------------------------------------------------------------

    def _container(self, value: object, base: type, depth: int) -> int:
        if not self._first(id(value)):
            return 0
        total = _getsizeof(value)
        if total == 0:
            # A subclass with a broken __sizeof__: the base type's still works.
            try:
                total = int(base.__sizeof__(value))
            except Exception:
                total = 0
        if depth >= MAX_DEPTH or self.budget <= 0:
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
            else:
                for item in base.__iter__(value):  # type: ignore[attr-defined]
                    if self.budget <= 0:
                        break
                    self.budget -= 1
                    total += measure(item, depth)
        except Exception:  # e.g. mutated during iteration by another thread
            log.debug("stopped walking a %s", _type_name(value), exc_info=True)
        return total

    # -- torch -------------------------------------------------------------------

    def _tensor(self, t: object, *, top: bool = False, record: bool = True) -> int:
        """A tensor's storage, once per (device, data pointer)."""
        try:
            device: str | None = str(t.device)  # type: ignore[attr-defined]
        except Exception:
            device = None
        if device is not None and record:
            self.devices.add(device)
            if top:
                self.top_device = device
        if device == "meta":
            return 0  # no memory behind it
        try:
            layout = t.layout  # type: ignore[attr-defined]
            if layout is not self.libs.strided:
                return self._sparse(t, str(layout))
        except Exception:
            pass  # try the storage anyway
        try:
            storage = t.untyped_storage()  # type: ignore[attr-defined]
            ptr = int(storage.data_ptr())
            nbytes = int(storage.nbytes())
        except Exception:
            # Tensor subclasses without a storage (wrappers, functorch, nested...).
            return self._tensor_fallback(t)
        if ptr == 0:  # empty storage: nothing held, nothing to dedup
            return 0
        if not self._first(hash((device, ptr))):
            return 0
        if self.buffers is not None and device == "cpu" and not _pinned(t):
            self.buffers.append((ptr, nbytes))
        return nbytes

    def _tensor_fallback(self, t: object) -> int:
        if not self._first(id(t)):
            return 0
        try:
            return int(t.element_size()) * int(t.nelement())  # type: ignore[attr-defined]
        except Exception:
            return 0

    def _sparse(self, t: object, layout: str) -> int:
        """Sparse tensors hold their index and value tensors, not nelement() elements."""
        parts = _SPARSE_PARTS.get(layout)
        if parts is None:
            return self._tensor_fallback(t)
        if not self._first(id(t)):
            return 0
        total = 0
        try:
            for name in parts:
                total += self._tensor(getattr(t, name)(), record=False)
        except Exception:
            log.debug("could not measure a %s tensor", layout, exc_info=True)
        return total

    def _module(self, module: object, *, top: bool) -> int:
        """Parameters, their gradients and buffers, each storage once.

        Not bounded by MAX_ITEMS: the count is proportional to the model, and
        undercounting a big model is the worst possible answer.
        """
        first_device: str | None = None
        total = 0
        if self._first(id(module)):
            try:
                tensors = []
                for p in module.parameters():  # type: ignore[attr-defined]
                    tensors.append(p)
                    grad = p.grad
                    if grad is not None:
                        tensors.append(grad)
                tensors.extend(module.buffers())  # type: ignore[attr-defined]
                for t in tensors:
                    if first_device is None:
                        with contextlib.suppress(Exception):
                            first_device = str(t.device)
                    total += self._tensor(t)
            except Exception:
                log.debug("could not walk a %s", _type_name(module), exc_info=True)
        if top:
            self.top_device = first_device or "cpu"
        return total

    def _optimizer(self, opt: object) -> int:
        """The tensors in the optimizer's state (exp_avg, momentum_buffer, ...).

        The parameters belong to the model and are not counted here.
        """
        if not self._first(id(opt)):
            return 0
        total = 0
        try:
            state = opt.state  # type: ignore[attr-defined]
            if not _in_mro(type(state), dict):
                return 0
            for entry in dict.values(state):
                if _in_mro(type(entry), dict):
                    for v in dict.values(entry):
                        total += self._state_value(v)
        except Exception:
            log.debug("could not walk a %s", _type_name(opt), exc_info=True)
        return total

    def _state_value(self, v: object) -> int:
        tensor = self.libs.tensor
        cls = type(v)
        if _in_mro(cls, tensor):
            return self._tensor(v)
        if cls is list or cls is tuple:  # LBFGS keeps lists of tensors
            return sum(self._tensor(x) for x in v if _in_mro(type(x), tensor))  # type: ignore[attr-defined]
        return 0

    # -- numpy, pandas, buffers --------------------------------------------------

    def _ndarray(self, arr: object) -> int:
        """The buffer of the array owning the memory, once per data pointer."""
        ndarray = self.libs.ndarray
        owner = arr
        owned = True  # the memory is numpy's own (not a bytes object's, an mmap's...)
        try:
            base = arr.base  # type: ignore[attr-defined]
            for _ in range(64):  # numpy collapses view chains; the bound is for safety
                if base is None:
                    break
                if not _in_mro(type(base), ndarray):
                    if _in_mro(type(base), self.libs.tensor):
                        # Tensor.numpy(): the tensor's storage owns the memory.
                        return self._tensor(base, record=False)
                    owned = False
                    break  # bytes, mmap, ...: the last ndarray spans what we use of it
                owner, base = base, base.base
            nbytes = int(owner.nbytes)  # type: ignore[attr-defined]
            ptr = int(owner.__array_interface__["data"][0])  # type: ignore[attr-defined]
            if self.buffers is not None:
                owned = owned and bool(owner.flags.owndata)  # type: ignore[attr-defined]
        except Exception:
            return self._once(arr)
        # Keyed like a CPU tensor storage so that torch.from_numpy(a) and a count once.
        if not self._first(hash(("cpu", ptr))):
            return 0
        if self.buffers is not None and owned:
            self.buffers.append((ptr, nbytes))
        return nbytes

    def _pandas(self, obj: object, *, index: bool) -> int:
        if not self._first(id(obj)):
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
            log.debug("memory_usage failed on a %s", _type_name(obj), exc_info=True)
            return _getsizeof(obj)

    def _pandas_blocks(self, obj: object) -> None:
        """Record the numpy arrays of a frame's or series' blocks (pandas' block manager)."""
        ndarray = self.libs.ndarray
        try:
            arrays = obj._mgr.arrays  # type: ignore[attr-defined]
            for a in list(arrays)[:MAX_ITEMS]:
                if ndarray is not None and _in_mro(type(a), ndarray):
                    self._ndarray(a)
        except Exception:
            log.debug("no blocks for a %s", _type_name(obj), exc_info=True)

    def _memoryview(self, mv: memoryview) -> int:
        if not self._first(id(mv)):
            return 0
        try:
            return int(mv.nbytes)
        except Exception:  # a released memoryview
            return _getsizeof(mv)


_SPARSE_PARTS = {
    "torch.sparse_coo": ("_indices", "_values"),
    "torch.sparse_csr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_bsr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_csc": ("ccol_indices", "row_indices", "values"),
    "torch.sparse_bsc": ("ccol_indices", "row_indices", "values"),
}
