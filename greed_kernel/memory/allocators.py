"""Which malloc serves this process, for `paging`: file paging is safe only under glibc's.

Allocators purge freed memory with ``madvise(MADV_DONTNEED)``; on the private
file mapping that paging leaves over a buffer, that brings the file's old bytes
back instead of zeros. jemalloc's calloc trusts a purged range to read zeros, so
a later ``np.zeros`` holds a freed paged array's values (issue 30); glibc's
clears recycled memory. Replacements are judged as a class, as what each one trusts is
a detail of its version, and greed does not file-page under any of them.

The rule, applied by :func:`detect` to ``/proc/self/maps``:

1. ``malloc`` as the dynamic linker resolves it for everyone (``dlsym`` in the
   global scope) lies in an object other than glibc's libc: that object is the
   allocator, preloaded, linked by the executable or statically inside it.
2. Else a known malloc replacement is mapped at all (by ``dlopen``, serving a
   library through ``RTLD_DEEPBIND`` or its own API). Only replacements count,
   never what ships beside torch or numpy (libgomp, OpenBLAS); of TBB only
   ``libtbbmalloc_proxy``, the part that replaces malloc.
3. Where the maps cannot be read, an ``LD_PRELOAD`` entry naming one counts.

The answer is computed once. Later ``dlopen`` cannot change who serves
``malloc`` for code already loaded (new objects go to the end of the global
scope); it can map a library with its own malloc that does not interpose, which
rule 2 would only see had it been loaded before the first call. An allocator
linked privately into one library (pyarrow's jemalloc) is never seen.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os

__all__ = ["detect", "foreign_allocator", "known_name", "object_at", "reason"]

log = logging.getLogger(__name__)

#: How the files of malloc replacements are named, and the name each is reported by.
KNOWN = {
    "libjemalloc": "jemalloc",
    "libtcmalloc": "tcmalloc",  # _minimal, _and_profiler, _debug
    "libmimalloc": "mimalloc",
    "libhoard": "hoard",
    "libtbbmalloc_proxy": "tbbmalloc",
    "libsnmalloc": "snmalloc",
    "librpmalloc": "rpmalloc",
    "libscudo": "scudo",
    "libclang_rt.scudo": "scudo",
    "libhardened_malloc": "hardened_malloc",
    "ld-musl": "musl",
    "libc.musl": "musl",
}
#: glibc's libc, by its file's name, where its own symbol did not place it.
GLIBC = ("libc.so", "libc-2.")
#: Symbols that name the allocator linked into an object of no telling name.
SIGNATURES = {
    "mallctl": "jemalloc",
    "tc_malloc": "tcmalloc",
    "mi_malloc": "mimalloc",
    "scalable_malloc": "tbbmalloc",
    "rpmalloc": "rpmalloc",
}


def _basename(path: str) -> str:
    return os.path.basename(path.removesuffix(" (deleted)"))


def known_name(path: str) -> str | None:
    """The replacement that ``path`` (a library's file) is, if it is one."""
    base = _basename(path)
    return next((name for prefix, name in KNOWN.items() if base.startswith(prefix)), None)


def object_at(maps: str, address: int) -> str | None:
    """The path of the mapping in ``maps`` (/proc/PID/maps's text) holding ``address``."""
    for line in maps.splitlines():
        fields = line.split(None, 5)
        lo, _, hi = fields[0].partition("-") if fields else ("", "", "")
        if hi and int(lo, 16) <= address < int(hi, 16):
            return fields[5].strip() if len(fields) > 5 else ""
    return None


def detect(
    maps: str | None,
    preload: str = "",
    malloc_object: str | None = None,
    libc_object: str | None = None,
    signature: str | None = None,
) -> str | None:
    """The rule of the module docstring: the foreign allocator's name, or None for glibc's.

    ``maps``: /proc/self/maps's text (None: unreadable); ``preload``: LD_PRELOAD;
    ``malloc_object``, ``libc_object``: the paths of the objects where ``malloc`` and
    glibc's ``gnu_get_libc_version`` resolve (None: not found); ``signature``: the
    allocator a symbol such as ``mallctl`` names, for an object of no telling name.
    """
    if malloc_object is not None and malloc_object != libc_object:
        base = _basename(malloc_object)
        if libc_object is not None or not base.startswith(GLIBC):
            return known_name(base) or signature or base or "unknown"
    if maps is not None:
        paths = (fields[5] for line in maps.splitlines() if len(fields := line.split(None, 5)) > 5)
        return next((name for path in paths if (name := known_name(path.strip()))), None)
    entries = preload.replace(":", " ").split()
    return next((name for entry in entries if (name := known_name(entry))), None)


def _address(lib: ctypes.CDLL, symbol: str) -> int | None:
    try:
        return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
    except AttributeError:
        return None


@functools.cache
def foreign_allocator() -> str | None:
    """The malloc replacement in this process ("jemalloc", "tcmalloc", ...), or None
    where glibc's malloc serves it (or nothing can be told). Cached; never raises."""
    preload = os.environ.get("LD_PRELOAD", "")
    try:
        with open("/proc/self/maps", errors="replace") as f:
            maps: str | None = f.read()
    except OSError:
        maps = None
    if maps is None:
        return detect(None, preload)
    try:
        lib = ctypes.CDLL(None)
        malloc, libc = _address(lib, "malloc"), _address(lib, "gnu_get_libc_version")
        signature = next((name for sym, name in SIGNATURES.items() if _address(lib, sym)), None)
        malloc_object = object_at(maps, malloc) if malloc else None
        libc_object = object_at(maps, libc) if libc else None
        return detect(maps, preload, malloc_object, libc_object, signature)
    except Exception:  # ctypes unusable, an odd maps line: judge by the names alone
        log.debug("could not place malloc; judging by the libraries' names", exc_info=True)
        return detect(maps, preload)


def reason(name: str) -> str:
    """A sentence for the log and ``%greed status``: why file paging is off under ``name``."""
    return (
        f"file paging is off: this process allocates with {name}, which would read a "
        "freed paged buffer's old bytes back instead of zeros"
    )
