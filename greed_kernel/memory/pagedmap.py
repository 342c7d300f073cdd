"""The table of paged regions: which address ranges are paged, to which extent of
which paging file (or to swap), and which object owns each.

Each region belongs to the object whose death frees its memory (a torch storage or
a numpy array, ``sizes.owned_buffers``), watched through a weak reference. Its
callback runs before the memory is freed: the region's extent is then punched out
of the file (``pageio.punch_hole``), so the range reads zeros wherever nobody wrote
since, as anonymous memory does after an allocator's purge, and its disk space is
back. Extents are never handed out twice, so a punched range can never show
another value's bytes. Lookups are by bisection over the sorted starts: O(log n)
per buffer, whatever the number of regions.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import typing as t
import weakref
from dataclasses import dataclass

from . import pageio, swap, torchlib
from .procmaps import Area

__all__ = ["REGION_BYTES", "PagedMap", "PagingFile", "Region", "pieces"]

log = logging.getLogger(__name__)

#: Most bytes of one region, and of one uninterruptible section (it holds the GIL).
REGION_BYTES = 16 << 20


@dataclass(slots=True)
class PagingFile:
    """An open paging file: its descriptor, identity in /proc/self/maps, next offset."""

    fd: int
    ident: tuple[str, int]
    end: int = 0
    live: int = 0  # bytes of extents whose owner is alive


@dataclass(slots=True)
class Region:
    """A paged range: to *file* at *offset*, or to swap when *file* is None."""

    start: int
    end: int
    file: PagingFile | None
    offset: int
    owner: int  # id() of the owner


class PagedMap:
    """Paged regions by address, and the owners that keep them alive."""

    def __init__(self) -> None:
        self.regions: dict[int, Region] = {}  # by start address
        self._starts: list[int] | None = []  # sorted keys of regions, None when stale
        self._owners: dict[int, _Owner] = {}
        self.live_bytes = 0  # bytes of file regions whose owner is alive
        self._unwatched: list[Region] = []  # regions of owners no weak reference watches
        #: The current paging file, never closed while it may get more extents.
        self.current: PagingFile | None = None

    def record(self, region: Region, owner: object) -> None:
        """Add *region*, owned by *owner*, replacing the region of the same range (paged
        again whole, in one section, after writes: its old extent is mapped no more).

        A numpy array is not watched: a weak reference would make ``ndarray.resize``
        refuse to run. Its region is released by :meth:`sweep` once its range no
        longer maps the file (glibc unmaps a large buffer when it is freed)."""
        old = self.regions.pop(region.start, None)
        if old is not None:
            self._release(old)
        self.regions[region.start] = region
        self._starts = None
        if region.file is not None:
            region.file.live += region.end - region.start
            self.live_bytes += region.end - region.start
        if hasattr(owner, "__array_interface__"):
            self._unwatched.append(region)
            return
        entry = self._owners.get(id(owner))
        if entry is None:
            ref = weakref.ref(owner, _on_death(weakref.ref(self), id(owner)))
            self._owners[id(owner)] = _Owner(ref, [region], *_data_of(owner))
        else:
            entry.regions.append(region)

    def owner_died(self, key: int) -> None:
        """The owner whose id was *key* is being freed: punch its extents now, and where
        the owner still holds the memory it held when paged (a storage moves its data
        on ``resize_``), make its ranges anonymous again, which gives their mappings
        back. The memory is the dying owner's alone, so nothing else can be changed."""
        entry = self._owners.pop(key, None)
        if entry is None:
            return
        held = entry.handle is not None and torchlib.handle_data(entry.handle) == entry.data
        if entry.handle is not None:
            torchlib.release_handle(entry.handle)
        for region in entry.regions:
            if self.regions.get(region.start) is region:
                del self.regions[region.start]
                self._starts = None
                self._release(region)
                if held and region.file is not None:
                    pageio.map_anonymous(region.start, region.end - region.start)

    def sweep(self, mapped: t.Callable[[Region], bool]) -> None:
        """Release the unwatched regions whose range no longer maps their extent."""
        kept = []
        for region in self._unwatched:
            if self.regions.get(region.start) is not region:
                continue  # replaced since
            if mapped(region):
                kept.append(region)
            else:
                del self.regions[region.start]
                self._starts = None
                self._release(region)
        self._unwatched = kept

    def _release(self, region: Region) -> None:
        file = region.file
        if file is None:
            return
        length = region.end - region.start
        file.live -= length
        self.live_bytes -= length
        pageio.punch_hole(file.fd, region.offset, length)
        if file.live == 0 and file is not self.current:
            os.close(file.fd)  # its mappings keep what they use of it

    def within(self, lo: int, hi: int) -> t.Iterator[Region]:
        """The regions overlapping [lo, hi)."""
        if not self.regions:
            return
        if self._starts is None:
            self._starts = sorted(self.regions)
        starts = self._starts
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(starts) and starts[i] < hi:
            region = self.regions[starts[i]]
            if region.end > lo:
                yield region
            i += 1

    def paged_bytes(self, buffers: t.Iterable[tuple[int, ...]] | None = None) -> int:
        """Bytes paged out now: of these (address, length, ...) buffers, or of all. A
        file region counts whole; a swap region by its pages in swap now."""
        if buffers is None:
            spans = [(r.start, r.end, r) for r in self.regions.values()]
        else:
            spans = [
                (max(r.start, b[0]), min(r.end, b[0] + b[1]), r)
                for b in buffers
                for r in self.within(b[0], b[0] + b[1])
            ]
        total = sum(hi - lo for lo, hi, r in spans if r.file is not None)
        swapped = [(lo, hi) for lo, hi, r in spans if r.file is None]
        return total + (swap.swapped_bytes(swapped) if swapped else 0)

    def parts(self, buffers: t.Iterable[tuple[int, ...]]) -> t.Iterator[tuple[int, int]]:
        """The paged parts of these (address, length, ...) buffers."""
        for ptr, nbytes, *_ in buffers:
            for region in self.within(ptr, ptr + nbytes):
                yield max(region.start, ptr), min(region.end, ptr + nbytes)

    def close(self) -> None:
        """Close the paging files (their mappings keep what they use of them)."""
        files = {r.file.fd for r in self.regions.values() if r.file is not None}
        if self.current is not None:
            files.add(self.current.fd)
        for fd in files:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.current = None


def pieces(
    todo: list[tuple[int, int, object]], limit: int = REGION_BYTES
) -> list[list[tuple[int, int, object]]]:
    """Ranges cut into regions of at most *limit* bytes (from each range's start),
    grouped into pieces of at most *limit*. A region paged before by the same pager is
    at most that long, so it is never cut: paged again, it is replaced whole, in one
    section."""
    regions = [
        (start, min(start + limit, hi), owner)
        for lo, hi, owner in todo
        for start in range(lo, hi, limit)
    ]
    out: list[list[tuple[int, int, object]]] = []
    size = limit
    for lo, hi, owner in regions:
        if size + hi - lo > limit:
            out.append([])
            size = 0
        out[-1].append((lo, hi, owner))
        size += hi - lo
    return out


def maps_extent(areas: list[Area], starts: list[int], region: Region) -> bool:
    """True while the area at the region's start maps its file at its offset."""
    i = bisect.bisect_right(starts, region.start) - 1
    if i < 0 or region.file is None:
        return False
    area = areas[i]
    if not area.start <= region.start < area.end:
        return False
    return (area.dev, area.inode) == region.file.ident and area.offset + (
        region.start - area.start
    ) == region.offset


@dataclass(slots=True)
class _Owner:
    """A watched owner: its weak reference, its regions, and (for a torch storage) a
    handle to read where its data is when it dies, and where it was when paged."""

    ref: weakref.ref[t.Any]
    regions: list[Region]
    handle: int | None = None
    data: int = 0


def _data_of(owner: object) -> tuple[int | None, int]:
    """A torch storage's handle and data pointer now (see torchlib.storage_handle)."""
    if type(owner).__name__ != "UntypedStorage":
        return None, 0
    try:
        return torchlib.storage_handle(owner), int(owner.data_ptr())  # type: ignore[attr-defined]
    except Exception:
        return None, 0


def _on_death(table: weakref.ref[PagedMap], key: int) -> t.Callable[[t.Any], None]:
    def died(_: t.Any) -> None:
        try:
            paged = table()
            if paged is not None:
                paged.owner_died(key)
        except Exception:  # a finalizer must never raise into the user's code
            log.debug("greed: releasing a paged extent failed", exc_info=True)

    return died
