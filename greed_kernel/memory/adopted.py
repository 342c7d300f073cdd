"""Resumed memory the pager may take: private mappings of our own checkpoint files.

A tensor resumed from a checkpoint (session/pickling.py) starts as a private,
copy-on-write mapping of its blob (``UntypedStorage.from_file``): its pages come in
from the file on first use, as ``RssFile`` the OS can drop, and a write makes a
private anonymous copy of the page (``RssAnon``). Such a storage is not
``resizable()``, which tells the pager nothing of who owns it; these are ours:

* :func:`adopt` says so for a storage mapped from a blob: torch unmaps the memory
  when the storage dies, as it frees a storage it allocated, so the storage is the
  owner that paging needs (``sizes.owned_buffers``);
* :data:`FILES` holds the blobs' (device, inode), as ``/proc/self/maps`` writes them:
  a range of a private read-write mapping of one of them may be paged in place like
  anonymous memory (``paging``), once written since it was resumed (else it is file
  memory already, and paging it would free nothing).
"""

from __future__ import annotations

import os
import typing as t
import weakref

from . import procmaps

__all__ = ["FILES", "adopt", "owns"]

#: (device, inode) of the blobs that resumed storages map.
FILES: set[tuple[str, int]] = set()
#: data_ptr() of the storages adopted, while they live.
_STORAGES: set[int] = set()


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


def owns(storage: t.Any) -> bool:
    """Whether *storage* was adopted (its memory is a mapping of one of our blobs)."""
    try:
        return int(storage.data_ptr()) in _STORAGES
    except Exception:
        return False
