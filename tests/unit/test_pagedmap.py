"""The table of paged regions (greed_kernel/pagedmap.py): its lookups grow as
n log n with the number of regions, counted in operations, not timed."""

from __future__ import annotations

import typing as t

from greed_kernel.memory import pagedmap
from greed_kernel.memory.pagedmap import PagedMap, PagingFile, Region

PAGE = 4096
N = 30_000


class CountingDict(dict):
    """A dict that counts its item lookups."""

    lookups = 0

    def __getitem__(self, key: t.Any) -> t.Any:
        CountingDict.lookups += 1
        return super().__getitem__(key)


def filled(n: int) -> tuple[PagedMap, list[tuple[int, int]]]:
    """A table of *n* regions of 32 pages with gaps between them (no owners: the
    regions are put in place as record() leaves them), and the buffers they page."""
    table = PagedMap()
    table.regions = CountingDict()
    file = PagingFile(fd=-1, ident=("00:00", 0))
    buffers = []
    for i in range(n):
        lo = (1 << 32) + i * 40 * PAGE
        table.regions[lo] = Region(lo, lo + 32 * PAGE, file, i * 32 * PAGE, owner=i)
        buffers.append((lo - 100, 32 * PAGE + 200))  # a buffer's partial pages around
    table._starts = None
    return table, buffers


def test_paged_bytes_of_every_buffer_costs_a_lookup_or_two_each() -> None:
    table, buffers = filled(N)
    sorts = []
    real = sorted
    pagedmap.sorted = lambda keys: sorts.append(1) or real(keys)  # type: ignore[attr-defined]
    try:
        CountingDict.lookups = 0
        assert table.paged_bytes(buffers) == N * 32 * PAGE
        assert table.paged_bytes(buffers[:1]) == 32 * PAGE
    finally:
        del pagedmap.sorted  # type: ignore[attr-defined]
    assert len(sorts) == 1  # the starts are sorted once, not per buffer
    # each buffer meets its own region and at most its neighbour: O(n) lookups after
    # one sort, where comparing every buffer with every region would take n * n
    assert CountingDict.lookups <= 2 * (N + 1)


def test_lookups_do_not_grow_faster_than_the_regions() -> None:
    counts = []
    for n in (1_000, 10_000):
        table, buffers = filled(n)
        CountingDict.lookups = 0
        table.paged_bytes(buffers)
        counts.append(CountingDict.lookups)
    assert counts[1] <= 11 * counts[0]  # linear in n (a quadratic scan would be 100x)
