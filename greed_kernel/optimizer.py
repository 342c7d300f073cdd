"""Tensor and CUDA housekeeping: stale gradients, a full collection, the CUDA cache.

torch is used only when the user already imported it, and CUDA only when it is
already initialised: this module never imports torch and never starts CUDA.
"""

from __future__ import annotations

import itertools
import sys
import typing as t
from collections.abc import Iterable

#: Most objects visited when looking for parameters in the user namespace.
MAX_VISITS = 20_000
#: Most items taken from one plain container (a 2M-item list is data, not models).
MAX_ITEMS_PER_CONTAINER = 256


def _torch() -> t.Any:
    return sys.modules.get("torch")


def cuda_ready() -> bool:
    """True when torch is imported and CUDA already initialised (never initialises it)."""
    torch = _torch()
    try:
        return torch is not None and bool(torch.cuda.is_initialized())
    except Exception:
        return False


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
