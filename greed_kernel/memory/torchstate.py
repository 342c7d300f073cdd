"""The torch process state greed_kernel acts on: CUDA's caching allocator, stale
gradients, and out-of-memory errors. With `torchlib`, the only modules that touch
torch, and only once the user imported it (`sys.modules`); CUDA only once the user's
code initialised it.
"""

from __future__ import annotations

import itertools
import logging
import typing as t
from collections.abc import Iterable
from dataclasses import dataclass

from .torchlib import MAX_ITEMS_PER_CONTAINER, MAX_VISITS, _torch

log = logging.getLogger(__name__)

__all__ = [
    "CudaDevice",
    "clear_stale_grads",
    "cuda_devices",
    "cuda_ready",
    "cuda_reserved",
    "empty_cuda_cache",
    "is_out_of_memory",
]


# -- CUDA --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CudaDevice:
    """Memory of one CUDA device as PyTorch's caching allocator sees it."""

    device: int
    #: Bytes in live tensors.
    allocated: int
    #: Bytes held by the caching allocator (allocated + cached free blocks).
    reserved: int
    #: The device's total memory.
    total: int


def cuda_ready() -> bool:
    """True when torch is imported and CUDA already initialised (never initialises it)."""
    torch = _torch()
    try:
        return torch is not None and bool(torch.cuda.is_initialized())
    except Exception:
        return False


def cuda_devices(totals: dict[int, int]) -> list[CudaDevice]:
    """Allocator state of each CUDA device in use; [] if CUDA was never initialised.

    `totals` caches each device's total memory (it never changes) across calls.
    Never imports torch and never initialises CUDA; never raises.
    """
    torch = _torch()
    if torch is None:
        return []
    try:
        tcuda = torch.cuda
        if not tcuda.is_initialized():
            return []
        # Only devices with a CUDA context: asking about another one could
        # create a context there (cudaMallocAsync's stats switch device).
        has_context = getattr(torch._C, "_cuda_hasPrimaryContext", None)
        devices = []
        for i in range(tcuda.device_count()):
            if has_context is not None and not has_context(i):
                continue
            allocated, reserved = _allocator_bytes(tcuda, i)
            if has_context is None and not (allocated or reserved):
                continue  # never used, as far as we can tell without a context check
            total = totals.get(i)
            if total is None:
                total = int(tcuda.get_device_properties(i).total_memory)
                totals[i] = total
            devices.append(CudaDevice(i, allocated, reserved, total))
        return devices
    except Exception:
        log.debug("querying CUDA memory failed", exc_info=True)
        return []


def _allocator_bytes(tcuda: t.Any, device: int) -> tuple[int, int]:
    """(allocated, reserved) bytes of PyTorch's caching allocator on `device`."""
    try:
        # One nested dict: memory_allocated() and memory_reserved() would each
        # build, flatten and sort the whole statistics dict.
        stats = tcuda.memory_stats_as_nested_dict(device)
        return (
            int(stats["allocated_bytes"]["all"]["current"]),
            int(stats["reserved_bytes"]["all"]["current"]),
        )
    except Exception:
        return int(tcuda.memory_allocated(device)), int(tcuda.memory_reserved(device))


def cuda_reserved() -> list[dict[str, int]]:
    """``[{device, reserved}]`` for each initialised CUDA device ([] without CUDA)."""
    if not cuda_ready():
        return []
    torch = _torch()
    out = []
    try:
        for i in range(torch.cuda.device_count()):
            out.append({"device": i, "reserved": int(torch.cuda.memory_reserved(i))})
    except Exception:
        pass
    return out


def empty_cuda_cache(devices: Iterable[int] | None = None) -> list[int]:
    """``empty_cache`` and ``ipc_collect`` on each initialised device; returns those done."""
    if not cuda_ready():
        return []
    torch = _torch()
    done = []
    ids = range(torch.cuda.device_count()) if devices is None else devices
    for i in ids:
        # memory_reserved is 0 on devices this process never touched; skip them
        # so we never create a context on a device the user did not use.
        if torch.cuda.memory_reserved(i) == 0:
            continue
        with torch.cuda.device(i):
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()
        done.append(i)
    return done


# -- gradients ---------------------------------------------------------------------


def clear_stale_grads(values: Iterable[t.Any]) -> int:
    """Set ``.grad = None`` on leaf tensors that no longer require grad (frozen params).

    Tensors are found through the given namespace values: modules' parameters,
    optimizers' parameter groups, tensors, and lists/tuples/dicts of them
    (bounded), never by scanning the heap. ``.grad`` is read on leaves only, so
    no "non-leaf .grad" warning is emitted.
    """
    torch = _torch()
    if torch is None:
        return 0
    tensor_t, module_t, optim_t = torch.Tensor, torch.nn.Module, torch.optim.Optimizer
    cleared = 0
    seen: set[int] = set()
    stack = list(values)
    visits = 0
    while stack and visits < MAX_VISITS:
        obj = stack.pop()
        visits += 1
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        kind = type(obj)  # type(): hostile objects may lie about __class__
        try:
            if issubclass(kind, tensor_t):
                if obj.is_leaf and not obj.requires_grad and obj.grad is not None:
                    obj.grad = None
                    cleared += 1
            elif issubclass(kind, module_t):
                stack.extend(obj.parameters())
            elif issubclass(kind, optim_t):
                for group in obj.param_groups:
                    stack.extend(group.get("params", ()))
            elif kind in (list, tuple, set):
                stack.extend(itertools.islice(obj, MAX_ITEMS_PER_CONTAINER))
            elif kind is dict:
                stack.extend(itertools.islice(obj.values(), MAX_ITEMS_PER_CONTAINER))
        except Exception:  # a broken module or tensor subclass: skip it
            continue
    return cleared


# -- errors ------------------------------------------------------------------------


def is_out_of_memory(error: BaseException | None) -> bool:
    """torch.OutOfMemoryError (CUDA's too), MemoryError, or a RuntimeError saying so."""
    if error is None:
        return False
    if isinstance(error, MemoryError):
        return True
    torch = _torch()
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(error, oom):
        return True
    if isinstance(error, RuntimeError):
        try:
            return "out of memory" in str(error).lower()
        except Exception:  # a hostile __str__
            return False
    return False
