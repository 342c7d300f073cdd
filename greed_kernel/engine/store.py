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
from collections.abc import Callable, Iterable, Mapping

from ..analysis.tracker import Access
from ..memory.paging import Pager
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

    def page_stale(self, stale: list[str]) -> tuple[list[str], int]:
        """Page out the CPU memory of the stale values, in place: names and bytes."""
        judgement = self.may_page() if stale else None
        if judgement is None:
            return [], 0
        ns, seen = self.ns, set()
        found = {name: owned_buffers(ns[name], seen=seen) for name in stale if name in ns}
        result = self.pager.page_out([b for bufs in found.values() for b in bufs], judgement)
        if result.skipped:
            self.log.debug("greed: left in RAM: %s", result.skipped)
        if not result.regions:
            return [], 0
        starts = [lo for lo, _ in result.regions]
        paged: list[str] = []
        for name, bufs in found.items():
            nbytes = sum(_overlap(result.regions, starts, ptr, n) for ptr, n, _ in bufs)
            if nbytes:
                paged.append(name)
                self._paged[name] = (id(ns[name]), nbytes)
        self.log.info(
            "greed: paged out %s of %s in %.0f ms",
            human_bytes(result.bytes),
            ", ".join(paged),
            result.seconds * 1000,
        )
        return paged, result.bytes

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
