"""The budget's choices (greed_kernel/budget.py), on plain dicts."""

from __future__ import annotations

import pytest

from greed_kernel.analysis.tracker import Access
from greed_kernel.engine import budget
from greed_kernel.engine.policy import Policy

np = pytest.importorskip("numpy")


def policy() -> Policy:
    return Policy(preserve=["kept"], temporary_patterns=[], recent_window=300, evict_min_bytes=1)


def test_lru_order_puts_old_values_first_and_the_last_cells_names_last() -> None:
    ns = {"old": 1, "never": 2, "recent": 3, "just_now": 4, "kept": 5, "np": np, "f": len}
    last = {
        "old": Access(10.0, 1),
        "recent": Access(50.0, 5),
        "just_now": Access(60.0, 7),
        "kept": Access(20.0, 2),
    }
    order = budget.lru_order(ns, last, policy(), just_ran=7)
    # never touched first; listed names are paged too (paging loses nothing); modules
    # and functions are not values
    assert order == ["never", "old", "kept", "recent", "just_now"]


def test_page_until_stops_at_the_target_chunk_by_chunk() -> None:
    blocks = [np.ones(1 << 20) for _ in range(6)]  # 8 MiB each
    ns = {"blocks": blocks}
    pressure = [0.95]
    paged: list[int] = []

    def page_out(buffers: list[tuple[int, int, object]]) -> int:
        paged.extend(ptr for ptr, *_ in buffers)
        pressure[0] -= 0.1 * len(buffers)
        return sum(n for _, n, *_ in buffers)

    names, nbytes = budget.page_until(
        ns, ["blocks"], page_out, lambda: pressure[0], target=0.7, chunk_bytes=16 << 20
    )
    assert names == ["blocks"]
    # two blocks a chunk, oldest first, and no further than needed
    assert paged == [b.ctypes.data for b in blocks[:4]]
    assert pressure[0] <= 0.7 and nbytes == 4 * (8 << 20)


def test_holders_name_what_stays_in_ram_and_why() -> None:
    ns = {"arr": np.ones(1 << 20), "raw": bytearray(16 << 20), "kept": [1]}
    rows = budget.holders(ns, policy(), paged_bytes=lambda v: 0)
    assert [r["name"] for r in rows][:2] == ["raw", "arr"]
    assert rows[0]["why"].startswith("plain Python objects")
    line = budget.refusal_line(0.93, 1 << 30, rows)
    assert "93% of the 1.0 GiB budget" in line and "raw (16 MiB, bytearray)" in line


def test_one_big_buffer_is_paged_a_piece_at_a_time() -> None:
    big = np.ones(8 << 20)  # 64 MiB
    pressure = [0.9]
    pieces: list[tuple[int, int, object]] = []

    def page_out(buffers: list[tuple[int, int, object]]) -> int:
        pieces.extend(buffers)
        pressure[0] -= 0.1
        return sum(n for _, n, *_ in buffers)

    budget.page_until({"big": big}, ["big"], page_out, lambda: pressure[0], 0.75, 16 << 20)
    assert len(pieces) == 2 and pieces[0][0] == big.ctypes.data
    assert pieces[1][0] == pieces[0][0] + pieces[0][1]  # contiguous, page-aligned cut
    assert (pieces[1][0] % 4096) == 0 and sum(n for _, n, *_ in pieces) < big.nbytes


def test_the_line_names_what_stops_paging_when_pageable_values_stay_in_ram() -> None:
    rows = [{"name": "arr", "bytes": 8 << 20, "type": "ndarray", "device": "cpu", "why": ""}]
    paused = "paging waits: thread 'w' (running in train.py:3 in loop) may write to memory"
    line = budget.refusal_line(0.95, 1 << 30, rows, paused)
    assert "thread 'w' (running in train.py:3 in loop)" in line and "Delete" not in line
    plain = [{"name": "raw", "bytes": 8 << 20, "type": "bytearray", "device": None, "why": ""}]
    assert "raw (8.0 MiB, bytearray)" in budget.refusal_line(0.95, 1 << 30, plain, paused)
