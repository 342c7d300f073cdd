"""What greed_kernel reads of torch values: with `torchstate`, the only modules that touch torch.

torch is used only when the user already imported it: it is looked up in
`sys.modules`, never imported. CUDA is used only once the user's code has
initialised it: importing torch or starting CUDA ourselves would cost seconds
and hundreds of MiB of GPU memory per device, and would break fork-based
DataLoader workers. Here: the torch classes values are recognised by, the torch
part of the walk in `sizes`, and the storage handles paging follows a storage's data
with. CUDA, stale gradients and out-of-memory errors are in `torchstate`; no other
module touches torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import typing as t
from dataclasses import dataclass

from . import adopted
from .introspect import in_mro, safe_getattr, type_attr, type_name

log = logging.getLogger(__name__)

__all__ = [
    "MAX_ITEMS_PER_CONTAINER",
    "MAX_VISITS",
    "TorchTypes",
    "Walk",
    "module_bytes",
    "optimizer_bytes",
    "tensor_bytes",
    "torch_types",
]

#: Most objects visited when looking for parameters in the user namespace.
MAX_VISITS = 20_000
#: Most items taken from one plain container (a 2M-item list is data, not models).
MAX_ITEMS_PER_CONTAINER = 256


def _torch() -> t.Any:
    return sys.modules.get("torch")


# -- types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TorchTypes:
    """The torch classes values are recognised by; all None when torch is not imported."""

    #: The torch module these were read from (None: torch is not imported).
    source: object = None
    tensor: type | None = None
    module: type | None = None
    optimizer: type | None = None
    #: torch.strided, the layout of dense tensors.
    strided: object = None

    @property
    def complete(self) -> bool:
        """False for a torch caught half-imported (some classes missing): look again later."""
        return self.source is None or all(
            c is not None for c in (self.tensor, self.module, self.optimizer)
        )


_NO_TORCH = TorchTypes()
_types_cache = _NO_TORCH


def torch_types() -> TorchTypes:
    """The torch classes of the torch in `sys.modules` now.

    The same object as long as that torch stays (so callers may cache by
    identity); a new one when torch appears, is replaced, or was incomplete.
    """
    global _types_cache
    torch = sys.modules.get("torch")  # not _torch(): measure() calls this for every value
    if torch is None:
        return _NO_TORCH
    cached = _types_cache
    if cached.source is torch:  # only complete ones are kept
        return cached
    found = TorchTypes(
        source=torch,
        tensor=type_attr(torch, "Tensor"),
        module=type_attr(safe_getattr(torch, "nn"), "Module"),
        optimizer=type_attr(safe_getattr(torch, "optim"), "Optimizer"),
        strided=safe_getattr(torch, "strided"),
    )
    if found.complete:
        _types_cache = found
    return found


# -- sizes: the torch part of the walk ---------------------------------------------


class Walk(t.Protocol):
    """What the walk in `sizes` offers the handlers here (one top-level measure call)."""

    #: The types of the torch that classified the values.
    torch: TorchTypes
    #: Devices of the tensors met, and that of the top-level value.
    devices: set[str]
    top_device: str | None
    #: When a list, the (address, length, owner or None) of CPU buffers found.
    buffers: list[tuple[int, int, object]] | None

    def first(self, key: int) -> bool:
        """True the first time `key` is seen in this walk's `seen` set."""
        ...


_SPARSE_PARTS = {
    "torch.sparse_coo": ("_indices", "_values"),
    "torch.sparse_csr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_bsr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_csc": ("ccol_indices", "row_indices", "values"),
    "torch.sparse_bsc": ("ccol_indices", "row_indices", "values"),
}


def tensor_bytes(walk: Walk, tensor: object, *, top: bool = False, record: bool = True) -> int:
    """A tensor's storage, once per (device, data pointer); sparse tensors by their
    index and value tensors; meta tensors are 0. Never raises.

    `record`: count the tensor's device in `walk.devices` (and as the top-level
    device when `top`). CPU storages go to `walk.buffers` unless pinned.
    """
    try:
        device: str | None = str(tensor.device)  # type: ignore[attr-defined]
    except Exception:
        device = None
    if device is not None and record:
        walk.devices.add(device)
        if top:
            walk.top_device = device
    if device == "meta":
        return 0  # no memory behind it
    try:
        layout = tensor.layout  # type: ignore[attr-defined]
        if layout is not walk.torch.strided:
            return _sparse(walk, tensor, str(layout))
    except Exception:
        pass  # try the storage anyway
    try:
        storage = tensor.untyped_storage()  # type: ignore[attr-defined]
        ptr = int(storage.data_ptr())
        nbytes = int(storage.nbytes())
    except Exception:
        # Tensor subclasses without a storage (wrappers, functorch, nested...).
        return _tensor_fallback(walk, tensor)
    if ptr == 0:  # empty storage: nothing held, nothing to dedup
        return 0
    if not walk.first(hash((device, ptr))):
        return 0
    if walk.buffers is not None and device == "cpu" and not _pinned(tensor):
        walk.buffers.append((ptr, nbytes, _owner(storage)))
    return nbytes


def _owner(storage: t.Any) -> object | None:
    """The storage when torch allocated its memory and frees it when the storage dies
    (``resizable()``), or when it maps one of our checkpoint blobs (``adopted``); None
    when the memory is numpy's, a file's or a buffer's."""
    try:
        return storage if storage.resizable() or adopted.owns(storage) else None
    except Exception:
        return None


def storage_handle(storage: t.Any) -> int | None:
    """A weak handle on a storage's C++ object, from which :func:`handle_data` reads
    the data pointer it has *now*, even inside a weak-reference callback of its Python
    object (which runs before the memory is freed). None when this torch does not lay
    the pointer out where it is read (checked against ``data_ptr()`` now)."""
    try:
        handle = int(storage._weak_ref())
    except Exception:
        return None
    if _read_pointer(handle + _DATA_OFFSET) == int(storage.data_ptr()):
        return handle
    release_handle(handle)
    return None


def handle_data(handle: int) -> int:
    """The data pointer of the storage behind *handle* (see storage_handle)."""
    return _read_pointer(handle + _DATA_OFFSET)


def release_handle(handle: int) -> None:
    with contextlib.suppress(Exception):
        _torch().UntypedStorage._free_weak_ref(handle)


#: Where c10::StorageImpl keeps its DataPtr's pointer: after the vtable and the two
#: reference counts of intrusive_ptr_target.
_DATA_OFFSET = 16


def _read_pointer(address: int) -> int:
    return ctypes.c_void_p.from_address(address).value or 0


def _tensor_fallback(walk: Walk, tensor: object) -> int:
    if not walk.first(id(tensor)):
        return 0
    try:
        return int(tensor.element_size()) * int(tensor.nelement())  # type: ignore[attr-defined]
    except Exception:
        return 0


def _sparse(walk: Walk, tensor: object, layout: str) -> int:
    """Sparse tensors hold their index and value tensors, not nelement() elements."""
    parts = _SPARSE_PARTS.get(layout)
    if parts is None:
        return _tensor_fallback(walk, tensor)
    if not walk.first(id(tensor)):
        return 0
    total = 0
    try:
        for name in parts:
            total += tensor_bytes(walk, getattr(tensor, name)(), record=False)
    except Exception:
        log.debug("could not measure a %s tensor", layout, exc_info=True)
    return total


def _pinned(tensor: object) -> bool:
    """Pinned (page-locked) memory exists only once CUDA is initialised; we never
    initialise it to ask."""
    cuda = getattr(_torch(), "cuda", None)
    try:
        if cuda is None or not cuda.is_initialized():
            return False
        return bool(tensor.is_pinned())  # type: ignore[attr-defined]
    except Exception:
        return True  # unknown: leave it alone


def module_bytes(walk: Walk, module: object, *, top: bool) -> int:
    """A torch.nn.Module's parameters, their gradients and buffers, each storage once;
    its device is that of the first of them ("cpu" when it has none).

    Not bounded by an item budget: the count is proportional to the model, and
    undercounting a big model is the worst possible answer.
    """
    first_device: str | None = None
    total = 0
    if walk.first(id(module)):
        try:
            tensors = []
            for p in module.parameters():  # type: ignore[attr-defined]
                tensors.append(p)
                grad = p.grad
                if grad is not None:
                    tensors.append(grad)
            tensors.extend(module.buffers())  # type: ignore[attr-defined]
            for tensor in tensors:
                if first_device is None:
                    with contextlib.suppress(Exception):
                        first_device = str(tensor.device)
                total += tensor_bytes(walk, tensor)
        except Exception:
            log.debug("could not walk a %s", type_name(module), exc_info=True)
    if top:
        walk.top_device = first_device or "cpu"
    return total


def optimizer_bytes(walk: Walk, opt: object) -> int:
    """The tensors in a torch.optim.Optimizer's state (exp_avg, momentum_buffer, ...).

    The parameters belong to the model and are not counted here.
    """
    if not walk.first(id(opt)):
        return 0
    total = 0
    try:
        state = opt.state  # type: ignore[attr-defined]
        if not in_mro(type(state), dict):
            return 0
        for entry in dict.values(state):
            if in_mro(type(entry), dict):
                for v in dict.values(entry):
                    total += _state_value(walk, v)
    except Exception:
        log.debug("could not walk a %s", type_name(opt), exc_info=True)
    return total


def _state_value(walk: Walk, v: object) -> int:
    tensor = walk.torch.tensor
    cls = type(v)
    if in_mro(cls, tensor):
        return tensor_bytes(walk, v)
    if cls is list or cls is tuple:  # LBFGS keeps lists of tensors
        return sum(tensor_bytes(walk, x) for x in v if in_mro(type(x), tensor))  # type: ignore[attr-defined]
    return 0
