"""The one step of paging that must not be interrupted: copy a buffer to its file and
map the file over it, with no Python code of anyone running in between.

A write to the buffer after the copy and before the remap would be replaced by the
older file contents. Such a write can come from any Python code on the main thread
(a signal handler, a ``gc.callbacks`` entry, a ``__del__`` or weakref callback run by
an automatic collection, a tracer or profiler, an audit hook), or from another thread.

How the window is closed, without a compiled extension:

* The copy (``memmove`` into a shared mapping of the file) and the remap (``mmap`` with
  ``MAP_FIXED | MAP_PRIVATE``) are foreign calls through ``ctypes.PyDLL``, which keeps
  the GIL during the call.
* The calls are made by ``itertools.starmap`` driving ``operator.call`` from C, inside
  one ``list()``: no bytecode runs from the first step to the last, so the interpreter
  never reaches its eval breaker. Pending signal handlers, pending calls, asynchronous
  exceptions and requests to hand the GIL to another thread all wait until the list is
  built; tracers and profilers see C calls only when bytecode makes them.
* The cyclic collector, the one thing an allocation can start without bytecode, is
  switched off by the first step and on again by the last.
* The first steps check, from C, that no thread started since the threads were judged
  safe (``threads.judge``) and that each watched thread has not run since. A changed
  thread raises ``KeyError`` before anything is copied, and nothing changes.
* Nothing in the section raises an audit event, so no audit hook runs in it either.

The shared mapping used for the copy is populated before the section (``MAP_POPULATE``,
outside the GIL), so the section itself is a memory copy at memory speed.
"""

from __future__ import annotations

import _thread
import ctypes
import ctypes.util
import errno
import gc
import itertools
import mmap
import operator
import os
import sys
import tempfile
import threading
import typing as t

from . import allocators, threads
from .procmaps import PAGE, file_ident

__all__ = [
    "MAP_FAILED",
    "SectionAborted",
    "copy_out",
    "frame_unmoved",
    "libc",
    "map_anonymous",
    "map_shared",
    "open_nameless",
    "open_paging_file",
    "punch_hole",
    "refusal",
    "remap_from_file",
    "run_section",
    "thread_guards",
    "touch",
    "unmap",
]

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_FIXED = 0x10
_MAP_POPULATE = 0x8000
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
MAP_FAILED = ctypes.c_void_p(-1).value


class SectionAborted(Exception):
    """The threads changed between their judgement and the copy: nothing was done."""


class _Libc:
    """The libc calls of paging: ``held`` ones keep the GIL, ``free`` ones release it."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        held = ctypes.PyDLL(name, use_errno=True)
        free = ctypes.CDLL(name, use_errno=True)
        mmap_args = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        for lib in (held, free):
            lib.mmap.restype = ctypes.c_void_p
            lib.mmap.argtypes = [*mmap_args, ctypes.c_long]
        held.memmove.restype = ctypes.c_void_p
        held.memmove.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        free.munmap.restype = ctypes.c_int
        free.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        free.madvise.restype = ctypes.c_int
        free.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        free.fallocate.restype = ctypes.c_int
        free.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        self.held_mmap = held.mmap
        self.held_memmove = held.memmove
        self.mmap = free.mmap
        self.munmap = free.munmap
        self.madvise = free.madvise
        self.fallocate = free.fallocate


_libc: _Libc | None = None


def libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def map_shared(fd: int, offset: int, length: int) -> int:
    """A shared, populated mapping of [offset, offset + length) of *fd*: the copy's
    destination. Raises OSError."""
    lib = libc()
    flags = mmap.MAP_SHARED | _MAP_POPULATE
    addr = lib.mmap(None, length, _PROT_RW, flags, fd, offset)
    if addr in (None, MAP_FAILED):
        raise OSError(ctypes.get_errno(), "cannot map the paging file")
    return int(addr)


def unmap(addr: int, length: int) -> None:
    libc().munmap(addr, length)


def remap_from_file(
    pieces: list[tuple[int, int, int, int]],
    fd: int,
    guards: t.Sequence[tuple[t.Callable[..., t.Any], ...]] = (),
) -> list[bool]:
    """Copy and remap each (address, length, shared address, file offset) piece, in
    one uninterrupted section (see the module docstring). Returns, per piece, whether
    its remap took; a piece whose remap failed keeps its memory as it was.

    *guards* are steps run first, inside the section; one that raises aborts it with
    :class:`SectionAborted` before anything is copied.
    """
    lib = libc()
    flags = mmap.MAP_PRIVATE | _MAP_FIXED
    steps: list[tuple[t.Any, ...]] = list(guards)
    for addr, length, shared, offset in pieces:
        steps.append((lib.held_memmove, shared, addr, length))
        steps.append((lib.held_mmap, addr, length, _PROT_RW, flags, fd, offset))
    results = run_section(steps)
    first = len(guards)
    maps = results[first + 1 : first + 2 * len(pieces) : 2]
    return [result == piece[0] for result, piece in zip(maps, pieces, strict=True)]


def run_section(steps: t.Sequence[tuple[t.Any, ...]]) -> list[t.Any]:
    """Call each ``(fn, *args)`` of *steps* in order, from C, with the cyclic collector
    off: no bytecode of anyone runs from the first call to the last (see the module
    docstring), so *steps* must be C callables. Their results, in order. A guard step
    that raises KeyError aborts the section: :class:`SectionAborted`."""
    collecting = gc.isenabled()
    calls: list[tuple[t.Any, ...]] = [(gc.disable,), *steps]
    if collecting:
        calls.append((gc.enable,))
    try:
        results = list(itertools.starmap(operator.call, calls))
    except KeyError as e:
        if collecting:
            gc.enable()
        raise SectionAborted from e
    except BaseException:
        if collecting:
            gc.enable()
        raise
    return results[1 : 1 + len(steps)]


def frame_unmoved(frame: t.Any, lasti: int) -> tuple[t.Any, ...]:
    """A section step that raises KeyError unless *frame* still stands at instruction
    *lasti*: its thread has run no bytecode in it since (a thread that ran on has
    moved on, or returned from that frame)."""
    return (list, map({lasti: None}.__getitem__, map(_LASTI, [frame])))


_LASTI = operator.attrgetter("f_lasti")


def copy_out(
    fd: int, base: int, ranges: list[tuple[int, int]], guards: t.Sequence[t.Any] = ()
) -> list[bool]:
    """Page out these (address, length) ranges to the extent of *fd* that starts at
    *base*, laid end to end: reserve it (ENOSPC now, never a SIGBUS later), populate a
    shared mapping of it, then copy and remap in one section. Returns, per range,
    whether it is paged; what is not is punched out again. Raises OSError, or
    :class:`SectionAborted` when a guard found the threads changed."""
    length = sum(n for _, n in ranges)
    try:
        os.posix_fallocate(fd, base, length)
        shared = map_shared(fd, base, length)
    except OSError:
        punch_hole(fd, base, length)
        raise
    pieces, offset = [], base
    for addr, n in ranges:
        pieces.append((addr, n, shared + offset - base, offset))
        offset += n
    took = [False] * len(pieces)
    try:
        took = remap_from_file(pieces, fd, guards)
    finally:
        unmap(shared, length)
        for (_, n, _, off), ok in zip(pieces, took, strict=True):
            if not ok:
                punch_hole(fd, off, n)
    return took


def thread_guards(judgement: threads.Judgement) -> list[t.Any]:
    """Section steps that raise KeyError unless every thread ``threading`` knows was
    *judged* (none started since), and each *watched* thread still stands where it
    was judged: its judged frame's ``f_lasti`` is unchanged (a thread that ran on has
    moved on, or returned from that frame). Built of C callables only (see the module
    docstring), and raising no audit event: ``map`` feeds ``threading._active`` and
    the judged frames through ``attrgetter`` into dict lookups whose only key is the
    state judged."""
    judged = judgement.judged | {threading.get_ident()}
    watched, started = judgement.watched, judgement.started
    none_new = map({True: None}.__getitem__, map(judged.issuperset, [threading._active]))
    steps: list[t.Any] = [(list, none_new)]
    count = getattr(_thread, "_count", None)
    if started >= 0 and count is not None:  # a raw _thread thread started since
        steps.append((list, map({started: None}.__getitem__, map(operator.call, [count]))))
    for watch in watched.values():
        steps.append(frame_unmoved(watch.frame, watch.at if watch.lasti is None else watch.lasti))
    return steps


def map_anonymous(addr: int, length: int) -> bool:
    """Replace [addr, addr + length) by fresh anonymous zero pages."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
    return libc().mmap(addr, length, _PROT_RW, flags, -1, 0) == addr


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the disk blocks of [offset, offset + length) of *fd*: from then on they read
    as zeros through every mapping that has not copied them, and nothing is truncated
    (a mapping past the end of a file would raise SIGBUS)."""
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    return libc().fallocate(fd, mode, offset, length) == 0


def refusal() -> tuple[str, threads.Judgement | None]:
    """Why the section cannot be exact now ("" when it can), and the threads'
    judgement that its guards check (``thread_guards``)."""
    check = getattr(sys, "_is_gil_enabled", None)
    if check is not None and not check():
        return "this Python runs without a GIL", None
    foreign = allocators.foreign_allocator()
    if foreign:
        return allocators.reason(foreign), None
    judgement = threads.judge()
    if judgement.blockers:
        return f"{judgement.blockers[0]} may write to memory", judgement
    return "", judgement


def open_paging_file(directory: str | os.PathLike[str]) -> tuple[int, tuple[str, int]]:
    """A new nameless paging file in *directory*, checked to free its blocks on demand
    (punch-hole), and its (device, inode) as /proc/self/maps writes them."""
    fd = open_nameless(directory)
    try:
        os.posix_fallocate(fd, 0, PAGE)
        if not punch_hole(fd, 0, PAGE):
            raise OSError(errno.EOPNOTSUPP, "its filesystem cannot punch holes in files")
    except BaseException:
        os.close(fd)
        raise
    return fd, file_ident(os.fstat(fd))


def open_nameless(directory: str | os.PathLike[str]) -> int:
    """A new file with no name in the directory (or a name unlinked at once)."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    try:
        if tmpfile:
            return os.open(directory, tmpfile | os.O_RDWR, 0o600)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            raise
    fd, name = tempfile.mkstemp(dir=directory, prefix=".greed-paging-")
    os.unlink(name)
    return fd


def touch(lo: int, hi: int) -> None:
    """Read one byte of every page in [lo, hi), faulting it in."""
    view = memoryview((ctypes.c_char * (hi - lo)).from_address(lo)).cast("B")
    sum(view[::PAGE])
