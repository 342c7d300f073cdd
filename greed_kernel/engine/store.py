"""Paged values: which names' memory is paged out, paging the stale ones, and
holding the budget by paging least recently used ones (see paging.py and budget.py).

Nothing here ever removes or rebinds a name: paging replaces a value's pages in
place, so every object stays exactly as it was and is read back from disk on use.
This component only decides *whose* buffers go, asks the :class:`Pager`, and
remembers which names it paged (by the identity of their value at the time).
"""

from __future__ import annotations

import bisect
import typing as t
from collections.abc import Callable, Iterable, Iterator, Mapping

from ..analysis.tracker import Access
from ..memory.paging import Pager, whole_pages
from ..memory.sizes import cpu_buffers, human_bytes, owned_buffers
from ..memory.threads import Judgement
from . import budget
from .component import Component, low_watermark
from .policy import Policy


class PagedValues(Component):
    """The user's values whose memory is paged out, and the paging that puts it there."""

    def __init__(self, namespace: Mapping[str, t.Any], **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.ns = namespace
        s = self.options
        self.pager = Pager(s.paging_dir, s.paging_max_bytes, log=self.log)
        #: name -> (id of its value, bytes paged) as of the cleanup that paged it
        self._paged: dict[str, tuple[int, int]] = {}
        #: stale names whose value held no buffer to page, with (id, length, last access)
        #: then: the walk of a big container of plain objects (up to MAX_ITEMS, some ms)
        #: is not repeated at every cleanup while none of these changed
        self._bufferless: dict[str, tuple[int, int, Access | None]] = {}
        self.paused = ""  # why the last cleanup did not page, when it could not

    # -- paging ----------------------------------------------------------------------
    def may_page(self) -> Judgement | None:
        """The threads' judgement when paging can be exact now (see Pager.refusal),
        handed on to the page-outs so that they need not judge again; else None: then
        everything stays in RAM, and ``paused`` says why."""
        reason, judgement = self.pager.refusal()
        if reason:
            paused = f"paging waits: {reason}"
            if paused != self.paused:
                self.log.info("greed: %s", paused)
            self.paused = paused
            return None
        self.paused = ""
        self.pager.max_bytes = self.options.paging_max_bytes
        return judgement

    def page_stale(
        self,
        stale: list[str],
        last: Mapping[str, Access],
        untouched: Callable[[str], bool] | None = None,
    ) -> Iterator[tuple[list[str], int]]:
        """Page out the CPU memory of the stale values, in place, a step at a time:
        each step pages at most the pager's region of bytes, and yields the names it
        paged memory of and the bytes.

        Between two steps nothing here holds a value (cells run there, and a value a
        cell deletes dies in that cell, as on python3): each step looks its names up
        again. *untouched*: asked at each step, whether a name is still as it was
        judged; where not (a cell touched it between two steps), what is left of it
        stays in RAM. *last*: the tracker's stamps."""
        ns, bufferless = self.ns, self._bufferless
        for name in [n for n in bufferless if n not in ns]:
            del bufferless[name]
        cursor = _Cursor(stale)
        while (step := self._page_step(cursor, last, untouched)) is not None:
            yield step

    def _page_step(
        self, cursor: _Cursor, last: Mapping[str, Access], untouched: Callable[[str], bool] | None
    ) -> tuple[list[str], int] | None:
        """One step of :meth:`page_stale`; None when there is nothing left to page."""
        limit = self.pager.region_bytes
        step = cursor.take(self.ns, last, self._bufferless, untouched, limit)
        judgement = self.may_page() if step else None
        if judgement is None:
            return None  # done, or paging is paused: everything left stays in RAM
        result = self.pager.page_out([chunk for _, chunk in step], judgement)
        if result.skipped:
            self.log.debug("greed: left in RAM: %s", result.skipped)
        regions = sorted(result.regions)
        starts = [lo for lo, _ in regions]
        names: list[str] = []
        for name, (ptr, n, _) in step:
            nbytes = _overlap(regions, starts, ptr, n)
            if nbytes:
                total = cursor.paged[name] = cursor.paged.get(name, 0) + nbytes
                self._paged[name] = (cursor.ids[name], total)
                if name not in names:
                    names.append(name)
        if names:
            self.log.info(
                "greed: paged out %s of %s in %.0f ms",
                human_bytes(result.bytes),
                ", ".join(names),
                result.seconds * 1000,
            )
        return names, result.bytes

    def hold_budget(
        self,
        paged: list[str],
        policy: Policy,
        last: Mapping[str, Access],
        just_ran: int,
        pressure: Callable[[], float],
    ) -> dict[str, t.Any]:
        """Page out least recently used values (recent ones too) until pressure is
        below the low watermark. Adds to *paged*; returns the report's budget fields."""
        before = pressure()
        target = low_watermark(self.options)
        names: list[str] = []
        nbytes = 0
        judgement = self.may_page() if before > target else None
        if judgement is not None:
            order = budget.lru_order(self.ns, last, policy, just_ran)

            def page_out(buffers: list[tuple[int, int, object]]) -> int:
                return self.pager.page_out(buffers, judgement).bytes

            names, nbytes = budget.page_until(self.ns, order, page_out, pressure, target)
            for name in names:
                value = self.ns[name]
                self._paged[name] = (id(value), self.pager.paged_in(cpu_buffers(value)))
                if name not in paged:
                    paged.append(name)
        after = pressure()
        self.log.info(
            "greed: memory budget: pressure %.2f -> %.2f, paged %s (%s)",
            before,
            after,
            ", ".join(names) or "nothing more",
            human_bytes(nbytes),
        )
        return {"pressureBefore": before, "pressureAfter": after, "pagedBytes": nbytes}

    def page_in(self, names: Iterable[str]) -> int:
        """Read the paged memory of these names back into RAM now (``%greed restore``)."""
        ns, seen, nbytes = self.ns, set(), 0
        for name in names:
            if name in ns:
                nbytes += self.pager.page_in(cpu_buffers(ns[name], seen=seen))
        return nbytes

    # -- what is paged -----------------------------------------------------------------
    def names(self) -> dict[str, int]:
        """Names whose value had memory paged out, still bound to that value."""
        ns = self.ns
        for name, (oid, _) in list(self._paged.items()):
            if name not in ns or id(ns[name]) != oid:
                del self._paged[name]
        return {name: nbytes for name, (_, nbytes) in self._paged.items()}

    def bytes_of(self, value: t.Any) -> int:
        """Bytes of *value* that lie in paged-out memory now."""
        return self.pager.paged_in(cpu_buffers(value))

    def total_bytes(self) -> int:
        return self.pager.paged_bytes()

    def directory(self) -> str:
        return self.pager.where

    def notice(self) -> str:
        """Why paging is not as asked (directory refused, paused, failed), or ''."""
        return self.pager.notice or self.paused or self.pager.failure

    def failure(self) -> str:
        return self.pager.failure

    def directory_notice(self) -> str:
        return self.pager.notice

    def close(self) -> None:
        """Remove the paging directory we made, if any (kernel shutdown or restart)."""
        self.pager.close()


def _length(value: t.Any) -> int:
    """len() of a built-in container (no user code runs), else -1."""
    return len(value) if type(value) in (list, dict, tuple, set) else -1


def _pages(buffers: list[tuple[int, int, object]], limit: int) -> Iterator[tuple[int, int, object]]:
    """The buffers' whole pages, cut every *limit* bytes from each one's first whole
    page, as the pager cuts them: a region paged before is paged again whole."""
    for ptr, nbytes, owner in buffers:
        pages = whole_pages(ptr, nbytes)
        if pages is not None:
            for lo in range(pages[0], pages[1], limit):
                yield lo, min(limit, pages[1] - lo), owner


class _Cursor:
    """Where :meth:`PagedValues.page_stale` is: plain numbers and names, never a value.

    ``done`` holds the first addresses of the page runs already taken, so that a
    name whose buffers span several steps is walked again for the rest; ``seen``, the
    objects the walks of the names before the current one went through (a buffer two
    names share is paged once)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.at = 0  # index of the current name
        self.walked = -1  # index of the last name walked with ``seen``
        self.seen: set[int] = set()
        self.done: set[int] = set()
        self.ids: dict[str, int] = {}  # name -> id of its value when first walked
        self.paged: dict[str, int] = {}  # name -> bytes paged so far

    def take(
        self,
        ns: Mapping[str, t.Any],
        last: Mapping[str, Access],
        bufferless: dict[str, tuple[int, int, Access | None]],
        untouched: Callable[[str], bool] | None,
        limit: int,
    ) -> list[tuple[str, tuple[int, int, object]]]:
        """The next step's chunks: at most *limit* bytes (one chunk at least)."""
        step: list[tuple[str, tuple[int, int, object]]] = []
        size = 0
        while self.at < len(self.names):
            name = self.names[self.at]
            chunks = self._chunks(name, ns, last, bufferless, untouched, limit)
            for chunk in chunks:
                if step and size + chunk[1] > limit:
                    return step
                step.append((name, chunk))
                size += chunk[1]
                self.done.add(chunk[0])
            self.at += 1
        return step

    def _chunks(
        self,
        name: str,
        ns: Mapping[str, t.Any],
        last: Mapping[str, Access],
        bufferless: dict[str, tuple[int, int, Access | None]],
        untouched: Callable[[str], bool] | None,
        limit: int,
    ) -> list[tuple[int, int, object]]:
        if name not in ns or (untouched is not None and not untouched(name)):
            return []
        value = ns[name]
        if self.walked != self.at:  # the first walk of this name
            self.walked = self.at
            self.ids[name] = id(value)
            shape = (id(value), _length(value), last.get(name))
            if bufferless.get(name) == shape:
                return []
            buffers = owned_buffers(value, seen=self.seen)
            if not buffers:
                bufferless[name] = shape
        elif id(value) != self.ids[name]:
            return []  # bound to another value since
        else:
            buffers = owned_buffers(value)
        return [c for c in _pages(buffers, limit) if c[0] not in self.done]


def _overlap(regions: list[tuple[int, int]], starts: list[int], ptr: int, nbytes: int) -> int:
    """Bytes of [ptr, ptr + nbytes) inside the sorted, disjoint *regions*."""
    total = 0
    i = max(bisect.bisect_right(starts, ptr) - 1, 0)
    end = ptr + nbytes
    while i < len(regions) and regions[i][0] < end:
        lo, hi = regions[i]
        total += max(0, min(hi, end) - max(lo, ptr))
        i += 1
    return total
