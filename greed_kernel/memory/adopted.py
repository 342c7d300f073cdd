"""Resumed memory the pager may take: private mappings of our own checkpoint files.

A tensor resumed from a checkpoint (session/pickling.py) starts as a private,
copy-on-write mapping of its blob (``UntypedStorage.from_file``): its pages come in
from the file on first use, as ``RssFile`` the OS can drop, and a write makes a
private anonymous copy of the page (``RssAnon``). Such a storage is not
``resizable()``, which tells the pager nothing of who owns it; these are ours:

* :func:`adopt` says so for a storage mapped from a blob: torch unmaps the memory
  when the storage dies, as it frees a storage it allocated, so the storage is the
  owner that paging needs (``sizes.owned_buffers``);
* :func:`adopt_mapping` says so for the ``mmap`` a resumed numpy array's memory is
  (the array's ``base``): the mapping unmaps it when it dies, so it is the owner;
* :data:`FILES` holds the blobs' (device, inode), as ``/proc/self/maps`` writes them:
  a range of a private read-write mapping of one of them may be paged in place like
  anonymous memory (``paging``), once written since it was resumed (else it is file
  memory already, and paging it would free nothing).
"""

from __future__ import annotations

import mmap
import os
import typing as t
import weakref

from . import procmaps

__all__ = ["FILES", "adopt", "adopt_mapping", "mapping_of", "owns"]

#: (device, inode) of the blobs that resumed storages map.
FILES: set[tuple[str, int]] = set()
#: data_ptr() of the storages adopted, while they live.
_STORAGES: set[int] = set()
#: the mmap objects adopted, while they live.
_MAPPINGS: weakref.WeakSet[t.Any] = weakref.WeakSet()


def adopt(storage: t.Any, path: str) -> None:
    """*storage* is a private mapping of the blob at *path*, and its memory lives and
    dies with it. Never raises: a storage not adopted is only left unpaged."""
    try:
        st = os.stat(path)
        ptr = int(storage.data_ptr())
        if ptr == 0:
            return
        weakref.finalize(storage, _STORAGES.discard, ptr)
    except (OSError, TypeError, ValueError, RuntimeError):
        return
    FILES.add(procmaps.file_ident(st))
    _STORAGES.add(ptr)


def adopt_mapping(mapping: t.Any, fd: int) -> None:
    """*mapping* (an ``mmap.mmap``) is a private mapping of the blob open as *fd*.
    Never raises: a mapping not adopted is only left unpaged."""
    try:
        ident = procmaps.file_ident(os.fstat(fd))
        _MAPPINGS.add(mapping)
    except (OSError, TypeError):
        return
    FILES.add(ident)


def mapping_of(base: t.Any) -> mmap.mmap | None:
    """The adopted mmap that a numpy array's non-array *base* is (or a memoryview of:
    ``numpy.frombuffer`` makes one), or None."""
    if type(base) is memoryview:
        base = base.obj
    return base if type(base) is mmap.mmap and owns(base) else None


def owns(owner: t.Any) -> bool:
    """Whether *owner*, a storage or an mmap, was adopted (its memory is a mapping of
    one of our blobs)."""
    try:
        if type(owner) is mmap.mmap:
            return owner in _MAPPINGS
        return int(owner.data_ptr()) in _STORAGES
    except Exception:
        return False
