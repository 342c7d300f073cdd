"""Pickling a group of names for a checkpoint, and unpickling it on resume.

* **cloudpickle**, so that functions and classes defined in cells (which ``__main__``
  cannot import back) are stored by value. A class comes back as one class, even from
  several groups: cloudpickle tracks classes by an id within a process.
* **Big buffers out of the stream.** A tensor's storage and a numpy array's memory of
  at least :data:`OUT_OF_BAND_BYTES` go out of the pickle stream as raw bytes
  (:class:`Buffer`; the caller writes them as blobs); smaller ones stay in it. On resume
  a blob becomes a private copy-on-write mapping of its file, so its bytes are read on
  first use.
* **Aliases.** Within a stream, pickle's memo keeps shared objects shared; storages and
  array memory are indexed per stream, so a view comes back on its base's storage. What
  a stream shares is returned as :attr:`Writer.keys` (ids of the objects it memoised,
  storage addresses): two names whose keys meet must be pickled in one stream.
* **Tensors** (plain and ``Parameter``, strided, on the CPU or a GPU) are reduced here
  rather than by torch, so that ``.grad`` and ``requires_grad`` come back, and torch's
  warnings (hooks, typed storages) are not raised in the user's session. A GPU storage
  is stored from a host copy and resumed on its device when there is one. Backward
  hooks are not stored. A tensor computed with autograd (not a leaf: ``loss``) is
  stored with its value and ``requires_grad``, as ``torch.save`` stores it, and comes
  back a leaf: its graph cannot be stored (:attr:`Writer.graphless` says so). Other
  tensors (sparse, quantized, subclasses) pickle as torch does.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import io
import mmap
import os
import pickle
import sys
import types
import typing as t
from collections.abc import Callable

import cloudpickle

from ..memory import adopted

__all__ = ["OUT_OF_BAND_BYTES", "Buffer", "Reader", "Writer", "dumps"]

#: Buffers at least this big are stored as blobs outside the pickle stream.
OUT_OF_BAND_BYTES = 64 << 10
_ATOMS = (str, bytes, int, float, complex, bool, tuple, frozenset, range, slice, type(None))
#: Atoms that refer to nothing: the walk of shared_keys does not visit them (a list of
#: 30,000 words costs a pass over the list, not 30,000 steps, nor a copy of the memo).
_LEAVES = (str, bytes, int, float, complex, bool, type(None))
_NOT_ALIASES = (type, types.ModuleType, types.BuiltinFunctionType, enum.Enum)


class Buffer(t.NamedTuple):
    """A buffer of a stream, stored apart: its index in the stream, its bytes (a
    ``memoryview`` of the live memory, or of a host copy of a GPU storage), and the
    object that owns them (kept alive while the view is used)."""

    index: int
    data: memoryview
    owner: t.Any


class _Never:
    """No object is one: the storage class persistent_id looks for without torch."""


class Writer(cloudpickle.Pickler):
    """Pickles one stream; big buffers go to :attr:`buffers`, shared keys to :attr:`keys`."""

    def __init__(self, file: t.BinaryIO) -> None:
        super().__init__(file, protocol=5)
        self.buffers: list[Buffer] = []
        self.keys: set[t.Any] = set()
        self.shared: set[t.Any] = set()  # shared_keys of what was dumped (dumps)
        self.graphless = False  # a tensor computed with autograd was stored as a leaf
        self._indexes: dict[t.Any, int] = {}  # storage or array memory -> its index
        self._torch = torch = sys.modules.get("torch")
        #: what persistent_id looks for (it is called for every object of the stream)
        self._storage_class = _Never if torch is None else torch.storage.TypedStorage
        numpy = sys.modules.get("numpy")
        self._ndarray = None if numpy is None else numpy.ndarray
        self._np_dtype = None if numpy is None else numpy.dtype

    def shared_keys(self, root: t.Any) -> set[t.Any]:
        """What this stream of *root* holds that another stream may hold too: the
        storages and array memory it indexed, and the ids of the objects it memoised
        that *root* reaches through memoised objects (not those a reduction made for the
        stream alone) and that can be shared (not atoms, classes, modules, dtypes)."""
        keys = set(self.keys)
        self.globals_ref.clear()  # cloudpickle's globals of the functions: made here
        memo: dict[int, t.Any] | None = None  # id -> (index, object), copied when needed
        singletons = _NOT_ALIASES + tuple(
            k for k in (self._np_dtype, getattr(self._torch, "dtype", None)) if k is not None
        )
        seen: set[int] = set()
        stack = [root]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, singletons):
                continue
            if type(obj) is types.FunctionType and obj.__module__ != "__main__":
                continue  # pickled by reference
            if type(obj) not in _ATOMS:
                keys.add(id(obj))
            referents = [r for r in gc.get_referents(obj) if type(r) not in _LEAVES]
            if referents:
                if memo is None:  # (a copy of every object of the stream)
                    memo = self.memo.copy()
                stack.extend(r for r in referents if id(r) in memo)
        return keys

    # -- buffers -----------------------------------------------------------------------
    def _index(self, key: t.Any) -> tuple[int, bool]:
        """The stream index of the buffer *key*, and whether it is new here."""
        index = self._indexes.get(key)
        if index is not None:
            return index, False
        index = self._indexes[key] = len(self._indexes)
        self.keys.add(key)
        return index, True

    def persistent_id(self, obj: t.Any) -> t.Any:
        if not isinstance(obj, self._storage_class):
            return None
        storage = obj._untyped_storage
        device = storage.device
        nbytes = storage.nbytes()
        key = ("storage", str(device), storage.data_ptr(), nbytes)
        index, new = self._index(key)
        dtype = str(obj.dtype).removeprefix("torch.")
        if not new:
            return ("torch", index, dtype)
        host = storage if device.type == "cpu" else storage.cpu()
        data = _storage_bytes(host)
        if nbytes >= OUT_OF_BAND_BYTES:
            self.buffers.append(Buffer(index, data, host))
            return ("torch", index, dtype, str(device), nbytes, None)
        return ("torch", index, dtype, str(device), nbytes, data.tobytes())

    # -- reductions --------------------------------------------------------------------
    def reducer_override(self, obj: t.Any) -> t.Any:
        kind = type(obj)
        if issubclass(kind, io.IOBase):
            raise pickle.PicklingError("an open file")
        torch = self._torch
        if torch is not None and (kind is torch.Tensor or kind is torch.nn.Parameter):
            reduced = self._tensor(torch, obj)
            if reduced is not NotImplemented:
                return reduced
        elif kind is self._ndarray and not obj.dtype.hasobject:
            reduced = self._array(obj)
            if reduced is not NotImplemented:
                return reduced
        return super().reducer_override(obj)

    def _tensor(self, torch: t.Any, obj: t.Any) -> t.Any:
        if obj.layout is not torch.strided or obj.is_quantized or obj.device.type == "meta":
            return NotImplemented
        if not obj.is_leaf:  # its value is stored, its graph cannot be: a leaf on resume
            self.graphless = True
        grad = obj.grad if obj.is_leaf or obj.retains_grad else None  # (no warning)
        storage = torch.storage.TypedStorage(
            wrap_storage=obj.untyped_storage(), dtype=obj.dtype, _internal=True
        )
        state = obj.__dict__ or None
        self.keys.add(id(obj))  # torch's objects: gc.get_referents does not reach them
        if grad is not None:
            self.keys.add(id(grad))
        parameter = type(obj) is torch.nn.Parameter
        args = (
            storage,
            obj.storage_offset(),
            tuple(obj.size()),
            obj.stride(),
            obj.requires_grad,
            grad,
            parameter,
            state,
        )
        return _rebuild_tensor, args

    def _array(self, obj: t.Any) -> t.Any:
        owner = obj
        while isinstance(owner.base, self._ndarray):
            owner = owner.base
        if owner.base is not None or not (owner.flags.c_contiguous or owner.flags.f_contiguous):
            return NotImplemented  # memory of another object: numpy's own pickling
        start = owner.__array_interface__["data"][0]
        offset = obj.__array_interface__["data"][0] - start
        key = ("array", start, owner.nbytes)
        index, new = self._index(key)
        memory: t.Any = ("array", index)
        if new:
            data = _array_bytes(owner)
            if owner.nbytes >= OUT_OF_BAND_BYTES:
                self.buffers.append(Buffer(index, data, owner))
                memory = ("array", index, owner.nbytes, None)
            else:
                memory = ("array", index, owner.nbytes, data.tobytes())
        writeable = bool(obj.flags.writeable)
        return _rebuild_array, (
            _Memory(memory),
            obj.dtype,
            obj.shape,
            obj.strides,
            offset,
            writeable,
        )


class _Memory:
    """The memory an array lives in, by its persistent id (see Reader.persistent_load)."""

    __slots__ = ("pid",)

    def __init__(self, pid: t.Any) -> None:
        self.pid = pid

    def __reduce__(self) -> t.Any:
        return _memory, (self.pid,)


def _memory(pid: t.Any) -> t.Any:
    raise pickle.UnpicklingError("array memory outside a checkpoint")


def _storage_bytes(storage: t.Any) -> memoryview:
    """The bytes of a CPU storage, read in place (through ctypes: a numpy view would
    mark the user's storage as not resizable)."""
    nbytes = storage.nbytes()
    if nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(storage.data_ptr())).cast("B")


def _array_bytes(owner: t.Any) -> memoryview:
    order = "C" if owner.flags.c_contiguous else "F"
    return memoryview(owner.reshape(-1, order=order).view("u1")).cast("B")


# -- rebuilding ---------------------------------------------------------------------------
def _rebuild_tensor(
    storage: t.Any,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool,
    grad: t.Any,
    parameter: bool,
    state: dict[str, t.Any] | None,
) -> t.Any:
    import torch

    untyped = storage._untyped_storage
    tensor = torch.empty(0, dtype=storage.dtype, device=untyped.device)
    tensor.set_(untyped, offset, size, stride)
    if parameter:
        tensor = torch.nn.Parameter(tensor, requires_grad=requires_grad)
    elif requires_grad:
        tensor.requires_grad_(True)
    if grad is not None:
        tensor.grad = grad
    if state:
        tensor.__dict__.update(state)
    return tensor


def _rebuild_array(
    memory: t.Any,
    dtype: t.Any,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    offset: int,
    writeable: bool,
) -> t.Any:
    import numpy

    array = numpy.ndarray(shape, dtype, buffer=memory, offset=offset, strides=strides)
    if not writeable:
        array.flags.writeable = False
    return array


class Reader(pickle.Unpickler):
    """Unpickles one stream of a checkpoint. *blob* gives a buffer's stored bytes by
    its index: a writable private mapping (or bytes) of its blob."""

    def __init__(
        self,
        data: bytes,
        blob: Callable[[int, int], t.Any],
        namespace: dict[str, t.Any],
        notes: list[str],
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._blob = blob
        self._namespace = namespace  # the globals of functions defined in cells
        self._loaded: dict[tuple[str, int], t.Any] = {}
        self.notes = notes  # what came back otherwise than it was (a GPU tensor on the CPU)

    def find_class(self, module: str, name: str) -> t.Any:
        if module == __name__ and name == "_memory":
            return self._array_memory
        if module == "cloudpickle.cloudpickle" and name == "_make_function":
            return self._function
        return super().find_class(module, name)

    def _function(self, code: t.Any, globals_: dict[str, t.Any], *args: t.Any) -> t.Any:
        """A function defined in a cell gets the user's namespace as its globals, as it
        had (cloudpickle would give it a dict of its own)."""
        if globals_.get("__name__") == "__main__":
            globals_ = self._namespace
        return types.FunctionType(code, globals_, *args)

    def _bytes(self, index: int, nbytes: int, inline: bytes | None) -> t.Any:
        if inline is not None:
            return bytearray(inline)
        return self._blob(index, nbytes)

    def _array_memory(self, pid: t.Any) -> t.Any:
        key = ("array", pid[1])
        memory = self._loaded.get(key)
        if memory is None:
            import numpy

            _, index, nbytes, inline = pid
            raw = self._bytes(index, nbytes, inline)
            memory = numpy.frombuffer(raw, dtype="u1") if nbytes else numpy.empty(0, "u1")
            self._loaded[key] = memory
        return memory

    def persistent_load(self, pid: t.Any) -> t.Any:
        import torch

        if pid[0] != "torch":
            raise pickle.UnpicklingError(f"unknown persistent id {pid[0]!r}")
        key = ("torch", pid[1])
        dtype = getattr(torch, pid[2])
        untyped = self._loaded.get(key)
        if untyped is None:
            _, index, _, device, nbytes, inline = pid
            untyped = self._storage(torch, index, nbytes, inline)
            untyped = self._on_device(torch, untyped, device)
            self._loaded[key] = untyped
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)

    def _storage(self, torch: t.Any, index: int, nbytes: int, inline: bytes | None) -> t.Any:
        if nbytes == 0:
            return torch.UntypedStorage(0)
        if inline is not None:
            return torch.UntypedStorage.from_buffer(inline, dtype=torch.uint8)
        path = self._blob(index, -1)
        storage = torch.UntypedStorage.from_file(path, shared=False, nbytes=nbytes)
        adopted.adopt(storage, path)  # the budget may page what is written to it
        return storage

    def _on_device(self, torch: t.Any, storage: t.Any, device: str) -> t.Any:
        if device == "cpu":
            return storage
        kind, _, number = device.partition(":")
        backend = getattr(torch, kind, None)
        try:
            available = backend is not None and backend.is_available()
            count = backend.device_count() if available else 0
        except Exception:
            available, count = False, 0
        if available and int(number or 0) < count:
            return storage.to(device=device)
        note = f"a tensor stored on {device} was resumed on the CPU (no {device} here)"
        if note not in self.notes:
            self.notes.append(note)
        return storage


def dumps(value: t.Any) -> tuple[bytes, Writer]:
    """Pickle *value* as one stream: (the bytes, the writer with its buffers and keys)."""
    out = io.BytesIO()
    writer = Writer(out)
    writer.dump(value)
    writer.shared = writer.shared_keys(value)
    return out.getvalue(), writer


def map_blob(fd: int, nbytes: int) -> mmap.mmap:
    """A private, writable, copy-on-write mapping of the first *nbytes* of *fd*."""
    try:
        mapping = mmap.mmap(
            fd, nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
        adopted.adopt_mapping(mapping, fd)  # the budget may page what is written to it
        return mapping
    finally:
        os.close(fd)
