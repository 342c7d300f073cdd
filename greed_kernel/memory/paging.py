"""Page stale tensor and array memory out to disk, in place.

Paging changes no Python, torch or numpy object: the same buffer, at the same
address, is simply backed by a file instead of anonymous memory. A buffer's whole
pages are copied into the paging file and the file is mapped privately
(copy-on-write) over the very same addresses, in one section that no Python code
can interrupt (``pageio``). Every use reads the same bytes; a write makes a private
anonymous copy of the page, as for any private mapping.

The paging file has no name (``O_TMPFILE``), so a killed kernel leaves nothing. Its
space is handed out in extents that are never reused; each extent belongs to the
object that owns the buffer (a torch storage or a numpy array, ``sizes.owned_buffers``),
and when that owner dies its extent's blocks are punched out of the file
(``FALLOC_FL_PUNCH_HOLE``) before the memory is freed. From then on the range reads
zeros wherever nobody wrote, as anonymous memory does after an allocator's purge,
and the disk space is back.

Not paged (see the README, "Limits"): memory that ``/proc/self/maps`` does not
show as private anonymous read-write (a resumed blob's mapping is, once written:
``adopted``); the partial first and last pages of a buffer;
buffers of unknown owner (memory shared between numpy and torch, a file, a bytes
object); anything while a thread may write, on an interpreter without a GIL, or
under a malloc that trusts a purge to read zeros (``allocators``).
"""

from __future__ import annotations

import errno
import logging
import os
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from . import adopted, pagedmap, pageio, pagingdir, procmaps, swap, threads
from .pagedmap import PagedMap, PagingFile, Region
from .procmaps import PAGE, Area

#: Buffers with fewer whole pages than this are not worth a mapping of their own.
MIN_REGION_BYTES = 64 << 10
#: Share of the mappings free under vm.max_map_count at start that paging may use.
MAP_SHARE = 4
#: Upper bound of the automatic disk budget.
AUTO_BUDGET_CAP = 50 << 30
#: Free disk left to everyone else.
DISK_RESERVE = 256 << 20
#: A paging file is left for a new one past this offset (extents are never reused).
FILE_SPAN = 1 << 40


#: (device, inode) of the paging files of every Pager of this process, as
#: /proc/self/maps shows them: memory they back that the allocator reuses is pageable.
_IDENTS: set[tuple[str, int]] = set()


class PagingError(OSError):
    """Paging could not be done (the reason is in the message); memory is unchanged."""


def whole_pages(ptr: int, nbytes: int) -> tuple[int, int] | None:
    """The page-aligned range inside [ptr, ptr + nbytes), or None when too small."""
    start = -(-ptr // PAGE) * PAGE
    end = (ptr + nbytes) // PAGE * PAGE
    if end - start < MIN_REGION_BYTES:
        return None
    return start, end


@dataclass
class PageOut:
    """What one page_out() call did."""

    regions: list[tuple[int, int]] = field(default_factory=list)  # mapped now
    bytes: int = 0
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> bytes left alone

    def skip(self, reason: str, nbytes: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + nbytes


class Pager:
    """This kernel's paged-out memory: where its file is, and what is mapped from it."""

    def __init__(
        self,
        directory: str = "",
        max_bytes: int = 0,
        log: logging.Logger | None = None,
        region_bytes: int = pagedmap.REGION_BYTES,
    ) -> None:
        self.requested = directory  # the user's setting, or "" for the default
        self.max_bytes = max_bytes  # 0: half the free disk there, capped at AUTO_BUDGET_CAP
        self.log = log or logging.getLogger(__name__)
        self._directory: Path | None = None
        self.notice = ""  # why the directory is not the one asked for
        self.failure = ""  # the last failed write, shown by %greed status
        self._backoff = 0  # page-outs to skip after a failure
        self._failures = 0
        self._full_at = -1  # free disk bytes when nothing fitted; no retry until more
        self.paged_total = 0  # bytes ever paged out
        self.paged = PagedMap()
        self.region_bytes = region_bytes  # most bytes a section copies, holding the GIL
        self.swapping = False  # the last page-out went to swap
        self._map_count = 0  # mappings of the process at the last look
        try:
            count = procmaps.map_count()
            self.map_allowance = count + (procmaps.max_map_count() - count) // MAP_SHARE
        except OSError:
            self.map_allowance = 0

    # -- may it page at all --------------------------------------------------------
    def refusal(self) -> tuple[str, threads.Judgement | None]:
        """Why file paging cannot be exact now ("" when it can), and the threads'
        judgement to hand to :meth:`page_out` (see ``pageio.refusal``)."""
        return pageio.refusal()

    # -- where ---------------------------------------------------------------------
    def directory(self) -> Path:
        """The directory the paging file goes to (chosen and checked on first use)."""
        if self._directory is None:
            try:
                choice = pagingdir.choose(self.requested)
            except OSError as e:
                raise PagingError(e.errno, e.strerror) from e
            self.notice = choice.notice
            if choice.notice:
                self.log.warning("greed: %s", choice.notice)
            self._directory = choice.path
        return self._directory

    @property
    def where(self) -> str:
        """The directory in use ("" until the first page-out chose it)."""
        return "" if self._directory is None else str(self._directory)

    def budget(self) -> int:
        if self.max_bytes > 0:
            return self.max_bytes
        free = _free_disk(self.directory())
        return min((free + self.paged.live_bytes) // 2, AUTO_BUDGET_CAP)

    def _paging_file(self, length: int) -> PagingFile:
        """The file the next *length* bytes go to: the current one, or a new one."""
        current = self.paged.current
        if current is not None and current.end + length <= FILE_SPAN:
            return current
        fd, ident = pageio.open_paging_file(self.directory())
        new = PagingFile(fd, ident, end=PAGE)
        _IDENTS.add(ident)
        if current is not None and current.live == 0:
            os.close(current.fd)  # its mappings keep what they use of it
        self.paged.current = new
        return new

    # -- out -----------------------------------------------------------------------
    def page_out(
        self,
        buffers: t.Iterable[tuple[int, int, object]],
        judgement: threads.Judgement | None = None,
    ) -> PageOut:
        """Page out the whole pages of these (address, length, owner) buffers where
        allowed, in the order given as far as the disk and the mappings allow."""
        result = PageOut()
        start_time = time.perf_counter()
        todo = self._candidates(buffers, result)
        if not todo:
            return result
        room = swap.room()
        if room > 0:
            self._swap_out(todo, room, result)
            result.seconds = time.perf_counter() - start_time
            self.paged_total += result.bytes
            return result
        self.swapping = False
        todo = self._within_mappings(todo, result)
        if not todo:
            return result
        if judgement is None:
            reason, judgement = self.refusal()
            if reason:
                result.skip(reason, sum(hi - lo for lo, hi, _ in todo))
                return result
        try:
            todo = self._fit(todo, result)
            if todo:
                self._page_pieces(todo, result, judgement)
        except OSError as e:
            self._failed(e, sum(hi - lo for lo, hi, _ in todo), result)
            return result
        self._failures = 0
        result.seconds = time.perf_counter() - start_time
        self.paged_total += result.bytes
        return result

    def _candidates(
        self, buffers: t.Iterable[tuple[int, int, object]], result: PageOut
    ) -> list[tuple[int, int, object]]:
        """The buffers' whole-page ranges that are private anonymous memory (or ours,
        written to since), one per owner, in the order given."""
        ranges = []
        for ptr, nbytes, owner in buffers:
            r = whole_pages(ptr, nbytes)
            if r is not None:
                ranges.append((r[0], r[1], owner))
        if not ranges:
            return []
        if self._backoff > 0:
            self._backoff -= 1
            result.skip("after a failed write", sum(hi - lo for lo, hi, _ in ranges))
            return []
        try:
            areas = procmaps.read_maps()
        except OSError:  # no /proc: not Linux
            result.skip("paging needs Linux", sum(hi - lo for lo, hi, _ in ranges))
            return []
        starts = [a.start for a in areas]
        self.paged.sweep(lambda r: pagedmap.maps_extent(areas, starts, r))
        self._forget_unmapped(areas)
        todo = []
        for lo, hi, owner in ranges:
            mine = list(self.paged.within(lo, hi))
            if not mine:
                if not procmaps.covered(areas, starts, lo, hi, self._replaceable):
                    result.skip("not private anonymous memory", hi - lo)
                elif adopted.owns(owner) and not procmaps.anonymous_pages(lo, hi):
                    result.skip("resumed, not written since (file memory)", hi - lo)
                else:
                    todo.append((lo, hi, owner))
                continue
            if any(r.owner != id(owner) or r.start < lo or r.end > hi for r in mine):
                result.skip("already paged", hi - lo)
                continue
            for r in mine:  # paged before: again where written since, region by region
                if procmaps.anonymous_pages(r.start, r.end):
                    todo.append((r.start, r.end, owner))
                else:
                    result.skip("already paged", r.end - r.start)
        self._map_count = len(areas)
        return todo

    def _within_mappings(
        self, todo: list[tuple[int, int, object]], result: PageOut
    ) -> list[tuple[int, int, object]]:
        """Each range costs a mapping and may split one in two: keep the largest ranges
        that fit in paging's share of vm.max_map_count."""
        room = self.map_allowance - self._map_count
        if 2 * len(todo) <= room:
            return todo
        kept = {r[0] for r in sorted(todo, key=lambda r: r[0] - r[1])[: max(room // 2, 0)]}
        for lo, hi, _ in todo:
            if lo not in kept:
                result.skip("mapping budget (vm.max_map_count)", hi - lo)
        return [r for r in todo if r[0] in kept]

    def _swap_out(self, todo: list[tuple[int, int, object]], room: int, result: PageOut) -> None:
        """Page out through swap (``MADV_PAGEOUT``): exact by construction, as the memory
        stays anonymous, so no section, thread check or mapping is needed."""
        for lo, hi, owner in todo:
            if hi - lo > room:
                result.skip("swap full", hi - lo)
                continue
            asked = swap.page_out([(lo, hi)])
            if asked:
                room -= asked
                self.paged.record(Region(lo, hi, None, 0, id(owner)), owner)
                result.regions.append((lo, hi))
                result.bytes += asked
        self.swapping = True

    def _fit(
        self, todo: list[tuple[int, int, object]], result: PageOut
    ) -> list[tuple[int, int, object]]:
        """As many of *todo*, in order, as the disk budget and the free disk allow."""
        free = _free_disk(self.directory()) - DISK_RESERVE
        if self._full_at >= 0 and free <= self._full_at:
            result.skip("disk full", sum(hi - lo for lo, hi, _ in todo))
            return []
        self._full_at = -1
        budget_room, disk_room = self.budget() - self.paged.live_bytes, free
        fits = []
        for lo, hi, owner in todo:
            if hi - lo <= min(budget_room, disk_room):
                fits.append((lo, hi, owner))
                budget_room -= hi - lo
                disk_room -= hi - lo
            elif hi - lo > budget_room:
                result.skip("disk budget (paging_max_bytes)", hi - lo)
            else:
                result.skip("disk full", hi - lo)
        if not fits and "disk full" in result.skipped:
            self._full_at = free  # no retry until the disk has more room
        return fits

    def _page_pieces(
        self,
        todo: list[tuple[int, int, object]],
        result: PageOut,
        judgement: threads.Judgement | None,
    ) -> None:
        """Page *todo* a piece (at most REGION_BYTES) at a time: each piece is copied and
        remapped in one section, with the threads judged again just before it."""
        pieces = pagedmap.pieces(todo, self.region_bytes)
        for number, piece in enumerate(pieces):
            if number:
                reason, judgement = self.refusal()
                if reason:
                    result.skip(reason, sum(hi - lo for p in pieces[number:] for lo, hi, _ in p))
                    return
            self._page_piece(piece, result, judgement)
        if self.paged.current is not None:
            os.fdatasync(self.paged.current.fd)  # clean pages: the OS may drop and reread them

    def _page_piece(
        self,
        piece: list[tuple[int, int, object]],
        result: PageOut,
        judgement: threads.Judgement | None,
    ) -> None:
        length = sum(hi - lo for lo, hi, _ in piece)
        file = self._paging_file(length)
        base = file.end
        file.end += length  # extents are never reused, even after a failure
        guards = pageio.thread_guards(judgement) if judgement else ()
        try:
            took = pageio.copy_out(file.fd, base, [(lo, hi - lo) for lo, hi, _ in piece], guards)
        except pageio.SectionAborted:
            result.skip("a thread changed during paging", length)
            return
        offset = base
        for (lo, hi, owner), ok in zip(piece, took, strict=True):
            if ok:
                self.paged.record(Region(lo, hi, file, offset, id(owner)), owner)
                result.regions.append((lo, hi))
                result.bytes += hi - lo
            else:
                result.skip("mmap failed", hi - lo)
            offset += hi - lo

    def _failed(self, error: OSError, nbytes: int, result: PageOut) -> None:
        if error.errno == errno.ENOSPC:  # what fitted went out; retry once there is room
            self._full_at = _free_disk(self.directory()) - DISK_RESERVE
            result.skip("disk full", nbytes)
            return
        self._failures += 1
        self._backoff = min(2**self._failures, 64)
        self.failure = f"{time.strftime('%H:%M:%S')} {error}"
        self.log.warning(
            "greed: paging out %d bytes failed (%s); the values stay in memory, and "
            "paging waits %d page-outs",
            nbytes,
            error,
            self._backoff,
        )
        result.skip("write failed", nbytes)

    # -- what is paged -------------------------------------------------------------
    def paged_bytes(self) -> int:
        """Bytes paged out now, to the file or to swap."""
        return self.paged.paged_bytes()

    def paged_in(self, buffers: t.Iterable[tuple[int, ...]]) -> int:
        """How many bytes of these buffers are paged out now (O(log n) each)."""
        return self.paged.paged_bytes(buffers)

    def page_in(self, buffers: t.Iterable[tuple[int, ...]]) -> int:
        """Read the paged parts of these buffers back into RAM now (``%greed restore``)."""
        total = 0
        for lo, hi in self.paged.parts(buffers):
            lo, hi = lo // PAGE * PAGE, -(-hi // PAGE) * PAGE
            pageio.libc().madvise(lo, hi - lo, 3)  # MADV_WILLNEED
            pageio.touch(lo, hi)
            total += hi - lo
        return total

    def _replaceable(self, area: Area) -> bool:
        """Private anonymous memory, a range of a paging file of this process that the
        allocator has given to a new buffer since its owner died, or a private mapping
        of a resumed checkpoint blob."""
        ours = area.path.endswith(" (deleted)") and (area.dev, area.inode) in _IDENTS
        blob = (area.dev, area.inode) in adopted.FILES
        return area.anonymous_private_rw or (area.perms == "rw-p" and (ours or blob))

    def _forget_unmapped(self, areas: list[Area]) -> None:
        """Forget paging files that are neither open nor mapped: the filesystem may
        give their inode to another file."""
        mapped = {(a.dev, a.inode) for a in areas if a.path.endswith(" (deleted)")}
        if self.paged.current is not None:
            mapped.add(self.paged.current.ident)
        _IDENTS.intersection_update(mapped)

    def close(self) -> None:
        """Close the paging files (their mappings keep what they use of them)."""
        self.paged.close()


def _free_disk(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
