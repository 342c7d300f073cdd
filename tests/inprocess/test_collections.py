"""Which collection housekeeping runs (Housekeeping.collect): the young generations in
periodic work, the whole heap at a quiet moment, at once where a pause is worth it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import InProcess

from greed_kernel.engine.triggers import QUIET_SECONDS


@pytest.fixture
def p(tmp_path: Path) -> Iterator[InProcess]:
    with InProcess(tmp_path, cleanup_interval=2, optimize_interval=0, memory_threshold=0) as h:
        yield h


def reports(p: InProcess, method: str = "execution:cleanup") -> list[tuple[str, int | None]]:
    return [(e["report"]["trigger"], e["report"]["gcGeneration"]) for e in p.methods(method)]


def test_periodic_work_collects_the_young_and_owes_the_heap_to_a_quiet_moment(
    p: InProcess,
) -> None:
    hk = p.greed.housekeeping
    p.run("a = 1")
    p.run("b = 2")  # the periodic cleanup: no full collection measured yet
    assert reports(p) == [("periodic", 1)] and hk.full_owed
    for _ in range(3):  # cells keep coming: the full collection waits
        p.clock.advance(QUIET_SECONDS / 2)
        p.run("c = 3")
    assert hk.full_collections == 0
    p.clock.advance(QUIET_SECONDS)
    assert hk.full_collections == 1 and not hk.full_owed


def test_a_short_full_collection_is_done_in_the_periodic_work(p: InProcess) -> None:
    hk = p.greed.housekeeping
    hk.full_collection_s = 0.001  # the heap is small: the whole of it costs no pause
    p.run("a = 1")
    p.run("b = 2")
    assert reports(p) == [("periodic", 2)] and not hk.full_owed


@pytest.mark.parametrize("trigger", ["manual", "idle", "memory", "oom"])
def test_where_a_pause_is_worth_it_the_whole_heap_at_once(p: InProcess, trigger: str) -> None:
    hk = p.greed.housekeeping
    report = hk.cleanup(trigger)
    assert report is not None and report["gcGeneration"] == 2
    assert hk.full_collections == 1


def test_a_cell_running_at_the_quiet_moment_puts_it_off(p: InProcess) -> None:
    hk = p.greed.housekeeping
    p.run("a = 1")
    p.run("b = 2")
    p.greed.executing = True  # an execute request is in progress
    p.clock.advance(QUIET_SECONDS)
    assert hk.full_collections == 0 and hk.full_owed
    p.greed.executing = False
    p.clock.advance(QUIET_SECONDS)
    assert hk.full_collections == 1
