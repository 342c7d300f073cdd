"""Which Python threads besides the kernel's own are alive.

Paging copies a buffer to a file, then maps the file over it: a write by
another thread in between would be lost. The kernel's own threads (ipykernel's
IOPub, heartbeat, control and shell-channel threads, IPython's history saver,
pipe watchers, tqdm's monitor, ...) never touch user data; any other live
thread might, so while one runs nothing is paged.
"""

from __future__ import annotations

import threading
import typing as t

#: Packages whose threads never write to user buffers.
KERNEL_PACKAGES = (
    "ipykernel",
    "IPython",
    "jupyter_client",
    "zmq",
    "tornado",
    "debugpy",
    "comm",
    "tqdm",
    "greed_kernel",
)


def _module_of(thread: threading.Thread) -> str:
    """The module that defines what the thread runs: its class, else its target."""
    kind = type(thread)
    module = getattr(kind, "__module__", "") or ""
    if module != "threading":
        return module
    target: t.Any = getattr(thread, "_target", None)
    owner = getattr(target, "__self__", None)
    if owner is not None:
        return getattr(type(owner), "__module__", "") or ""
    return getattr(target, "__module__", "") or ""


def _is_kernel_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERNEL_PACKAGES)


def foreign_threads() -> list[str]:
    """Names of live threads that are not the main thread and not the kernel's own."""
    main = threading.main_thread()
    return [
        th.name
        for th in threading.enumerate()
        if th is not main and not _is_kernel_module(_module_of(th))
    ]
