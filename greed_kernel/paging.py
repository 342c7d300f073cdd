"""Page stale tensor and array memory out to disk, in place.

Paging changes no Python, torch or numpy object: the same buffer, at the same
address, is simply backed by a file instead of anonymous memory. For each
buffer we take its whole pages, write them to an unnamed file, and map that
file privately (copy-on-write) over the very same addresses with
``mmap(MAP_FIXED | MAP_PRIVATE)``. Every use reads the same bytes (the kernel
faults them in from the page cache or the disk); a write makes a private
anonymous copy of the page again, exactly as for any private mapping. Nothing
is ever restored, because nothing was removed.

What is never touched (see README, "What is paged"):

* a range that ``/proc/self/maps`` does not show as private, anonymous,
  read-write memory: file mappings (numpy memmaps, our own earlier pages),
  shared memory (``share_memory_``, DataLoader workers' tensors), read-only
  data, device mappings;
* the partial first and last pages of a buffer (they may hold other objects);
* anything when another thread may be writing (the caller checks);
* CUDA and pinned memory (the walk in ``sizes`` only reports CPU buffers).

What /proc says about our memory (maps, pagemap, mountinfo) is read in ``procmaps``.

The file has no name (``O_TMPFILE``), or is unlinked as soon as it is open,
so its disk space lives exactly as long as the mappings, a killed kernel
leaves nothing behind, and no directory is ever scanned or cleared.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import mmap
import os
import shutil
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from . import procmaps
from .procmaps import PAGE, Area

#: Buffers with fewer whole pages than this are not worth a mapping of their own.
MIN_REGION_BYTES = 64 << 10
#: Most bytes one write() is asked for (Linux writes at most ~2 GiB at once).
WRITE_CHUNK = 256 << 20
#: Mappings left free below vm.max_map_count for everyone else.
MAP_COUNT_MARGIN = 4096
#: Upper bound of the automatic disk budget.
AUTO_BUDGET_CAP = 50 << 30

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_FIXED = 0x10  # Linux
_MAP_FAILED = ctypes.c_void_p(-1).value


class PagingError(OSError):
    """Paging could not be done (the reason is in the message); memory is unchanged."""


def whole_pages(ptr: int, nbytes: int) -> tuple[int, int] | None:
    """The page-aligned range inside [ptr, ptr + nbytes), or None when too small."""
    start = -(-ptr // PAGE) * PAGE
    end = (ptr + nbytes) // PAGE * PAGE
    if end - start < MIN_REGION_BYTES:
        return None
    return start, end


class _Libc:
    """mmap and munmap through ctypes (Python's mmap module cannot map at an address)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.mmap = libc.mmap
        self.mmap.restype = ctypes.c_void_p
        self.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self.munmap = libc.munmap
        self.munmap.restype = ctypes.c_int
        self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.madvise = libc.madvise
        self.madvise.restype = ctypes.c_int
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


_libc: _Libc | None = None


def libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


@dataclass
class PageOut:
    """What one page_out() call did."""

    regions: list[tuple[int, int]] = field(default_factory=list)  # mapped now
    bytes: int = 0
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> bytes left alone

    def skip(self, reason: str, nbytes: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + nbytes


_FILES: set[tuple[str, int]] = set()


class Pager:
    """This kernel's paged-out memory: where its files go, and what is mapped from them."""

    def __init__(
        self,
        directory: str = "",
        max_bytes: int = 0,
        log: logging.Logger | None = None,
    ) -> None:
        self.requested = directory  # the user's spill_dir, or "" for the default
        self.max_bytes = max_bytes  # 0: half the free disk there, capped at AUTO_BUDGET_CAP
        self.log = log or logging.getLogger(__name__)
        self._directory: Path | None = None
        self._private: Path | None = None  # our own subdirectory, when O_TMPFILE is unsupported
        self.notice = ""  # why the directory is not the one asked for
        # (maps dev, inode) of the files paged out to, by any Pager of this process:
        # memory they back that the allocator reuses is ours to page out again
        self._files = _FILES
        self.failure = ""  # the last failed write, shown by %greed status
        self._backoff = 0  # cleanups to skip after a failure
        self._failures = 0
        self.paged_total = 0  # bytes ever paged out

    # -- where ---------------------------------------------------------------------
    def directory(self) -> Path:
        """The directory paged files go to: the user's, unless it is in RAM."""
        if self._directory is None:
            self._directory = self._choose_directory()
        return self._directory

    def _choose_directory(self) -> Path:
        candidates = [self.requested] if self.requested else []
        candidates += [tempfile.gettempdir(), "/var/tmp", str(Path.home() / ".cache")]
        for i, candidate in enumerate(candidates):
            path = Path(candidate)
            if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
                continue
            fstype = procmaps.filesystem_type(path)
            if fstype in procmaps.RAM_FILESYSTEMS:
                if i == 0 and self.requested:
                    self.notice = f"{path} is on {fstype} (RAM): paging there frees nothing"
                continue
            if self.notice:
                self.notice += f"; using {path} instead"
                self.log.warning("greed: %s", self.notice)
            return path
        raise PagingError(errno.ENOENT, "no writable disk directory for paging")

    @property
    def where(self) -> str:
        """The directory in use ("" until the first page-out chose it)."""
        return "" if self._directory is None else str(self._directory)

    def budget(self) -> int:
        if self.max_bytes > 0:
            return self.max_bytes
        free = shutil.disk_usage(self.directory()).free
        return min(free // 2, AUTO_BUDGET_CAP)

    def _open(self) -> int:
        """A new file with no name in the directory (or a name unlinked at once)."""
        directory = self.directory()
        tmpfile = getattr(os, "O_TMPFILE", 0)
        try:
            if tmpfile:
                return os.open(directory, tmpfile | os.O_RDWR, 0o600)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
        if self._private is None:  # a directory of our own inside the one named
            self._private = Path(tempfile.mkdtemp(prefix="greed-paging-", dir=directory))
        fd, name = tempfile.mkstemp(dir=self._private)
        os.unlink(name)
        return fd

    # -- out -----------------------------------------------------------------------
    def page_out(self, buffers: t.Iterable[tuple[int, int]]) -> PageOut:
        """Page out the whole pages of these (address, length) buffers where allowed."""
        result = PageOut()
        start_time = time.perf_counter()
        if self._backoff > 0:
            self._backoff -= 1
            result.skip("after a failed write", sum(n for _, n in buffers))
            return result
        ranges = []
        for ptr, nbytes in buffers:
            r = whole_pages(ptr, nbytes)
            if r is not None:
                ranges.append(r)
        if not ranges:
            return result
        try:
            areas = procmaps.read_maps()
        except OSError:  # no /proc: not Linux
            result.skip("paging needs Linux", sum(hi - lo for lo, hi in ranges))
            return result
        self._forget_unmapped(areas)
        starts = [a.start for a in areas]
        todo = []
        for lo, hi in procmaps.merge_ranges(ranges):
            ours = procmaps.covered(areas, starts, lo, hi, self._ours)
            if ours and not procmaps.anonymous_pages(lo, hi):
                result.skip("already paged", hi - lo)  # every page still the file's
            elif procmaps.covered(areas, starts, lo, hi, self._replaceable):
                # anonymous memory, or memory of ours that the allocator reused since
                todo.append((lo, hi))
            else:
                result.skip("not private anonymous memory", hi - lo)
        if not todo:
            return result
        limit = procmaps.max_map_count() - MAP_COUNT_MARGIN
        while todo and len(areas) + 2 * len(todo) > limit:
            lo, hi = todo.pop()
            result.skip("too many mappings", hi - lo)
        total = sum(hi - lo for lo, hi in todo)
        # disk in use now; remapping memory of ours frees its old file's share of it
        budget = self.budget() - self.paged_bytes(areas)
        ours = [a for a in areas if self._ours(a)]
        while todo and total - _overlap(ours, todo) > budget:
            lo, hi = todo.pop()
            total -= hi - lo
            result.skip("disk budget (spill_max_bytes)", hi - lo)
        if not todo:
            return result
        try:
            self._write_and_map(todo)
        except OSError as e:
            self._failures += 1
            self._backoff = min(2**self._failures, 64)
            self.failure = f"{time.strftime('%H:%M:%S')} {e}"
            self.log.warning(
                "greed: paging out %d bytes failed (%s); the values stay in memory, "
                "and paging waits %d cleanups",
                total,
                e,
                self._backoff,
            )
            result.skip("write failed", total)
            return result
        self._failures = 0
        result.regions = todo
        result.bytes = total
        result.seconds = time.perf_counter() - start_time
        self.paged_total += total
        return result

    def _write_and_map(self, regions: list[tuple[int, int]]) -> None:
        lib = libc()
        fd = self._open()
        try:
            st = os.fstat(fd)
            ident = (f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino)
            total = sum(hi - lo for lo, hi in regions)
            with contextlib.suppress(OSError):  # reserve the space first: ENOSPC now, not midway
                os.posix_fallocate(fd, 0, total)
            offsets = []
            offset = 0
            for lo, hi in regions:
                _write_from(fd, lo, hi - lo, offset)
                offsets.append(offset)
                offset += hi - lo
            os.fdatasync(fd)  # clean pages: the OS may drop them and read them back
            # Check the file can be mapped before replacing anything with it.
            probe = lib.mmap(None, PAGE, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
            if probe in (None, _MAP_FAILED):
                raise PagingError(ctypes.get_errno(), "the paging file cannot be mapped")
            lib.munmap(probe, PAGE)
            self._files.add(ident)
            for (lo, hi), off in zip(regions, offsets, strict=True):
                addr = lib.mmap(lo, hi - lo, _PROT_RW, mmap.MAP_PRIVATE | _MAP_FIXED, fd, off)
                if addr != lo:  # cannot happen after the checks above; never silent
                    raise PagingError(ctypes.get_errno(), f"mmap at {lo:#x} failed")
        finally:
            os.close(fd)

    def _ours(self, area: Area) -> bool:
        # our files have no name; a named file may reuse a freed file's inode
        return area.path.endswith(" (deleted)") and (area.dev, area.inode) in self._files

    def _forget_unmapped(self, areas: list[Area]) -> None:
        """Drop files no longer mapped: their fd is closed, so they are gone for good,
        and the filesystem may give their inode to another file."""
        mapped = {(a.dev, a.inode) for a in areas if a.path.endswith(" (deleted)")}
        self._files.intersection_update(mapped)

    def _replaceable(self, area: Area) -> bool:
        return area.anonymous_private_rw or (area.perms == "rw-p" and self._ours(area))

    # -- what is paged -------------------------------------------------------------
    def paged_bytes(self, areas: list[Area] | None = None) -> int:
        """Bytes of our mappings that are still there (freed buffers unmap them)."""
        if not self._files:
            return 0
        try:
            areas = procmaps.read_maps() if areas is None else areas
        except OSError:
            return 0
        return sum(a.end - a.start for a in areas if self._ours(a))

    def paged_in(
        self, buffers: t.Iterable[tuple[int, int]], areas: list[Area] | None = None
    ) -> int:
        """How many bytes of these buffers lie in our mappings."""
        if not self._files:
            return 0
        areas = procmaps.read_maps() if areas is None else areas
        ours = [a for a in areas if self._ours(a)]
        total = 0
        for ptr, nbytes in buffers:
            for a in ours:
                total += max(0, min(a.end, ptr + nbytes) - max(a.start, ptr))
        return total

    def page_in(self, buffers: t.Iterable[tuple[int, int]]) -> int:
        """Read the paged parts of these buffers back into RAM now (``%greed restore``)."""
        if not self._files:
            return 0
        areas = [a for a in procmaps.read_maps() if self._ours(a)]
        total = 0
        for ptr, nbytes in buffers:
            for a in areas:
                lo, hi = max(a.start, ptr), min(a.end, ptr + nbytes)
                if hi > lo:
                    lo, hi = lo // PAGE * PAGE, -(-hi // PAGE) * PAGE
                    libc().madvise(lo, hi - lo, mmap.MADV_WILLNEED)
                    _touch(lo, hi)
                    total += hi - lo
        return total

    def close(self) -> None:
        """Remove our private subdirectory, if we made one (its files have no names)."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


def _overlap(areas: list[Area], ranges: list[tuple[int, int]]) -> int:
    return sum(max(0, min(a.end, hi) - max(a.start, lo)) for a in areas for lo, hi in ranges)


def _write_from(fd: int, address: int, length: int, offset: int) -> None:
    """Write *length* bytes of this process's memory at *address* to *fd* at *offset*."""
    done = 0
    while done < length:
        n = min(WRITE_CHUNK, length - done)
        view = memoryview((ctypes.c_char * n).from_address(address + done)).cast("B")
        written = os.pwrite(fd, view, offset + done)
        if written <= 0:
            raise PagingError(errno.EIO, "short write")
        done += written


def _touch(lo: int, hi: int) -> None:
    """Read one byte of every page in [lo, hi), faulting it in."""
    view = memoryview((ctypes.c_char * (hi - lo)).from_address(lo)).cast("B")
    sum(view[::PAGE])
