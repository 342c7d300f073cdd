"""The periodic cleanup in slices (engine/slices.py) on a real in-process shell: its
page-outs run a region at a time after the reply, a cell that comes in between runs
first, and a stale name that cell touches stays in RAM."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import InProcess

np = pytest.importorskip("numpy")

SETUP = "import numpy as np\na = np.ones(1 << 19)\nb = np.ones(1 << 19)\nc = np.ones(1 << 19)"


@pytest.fixture
def p(tmp_path: Path) -> Iterator[InProcess]:
    with InProcess(
        tmp_path,
        cleanup_interval=3,
        optimize_interval=0,
        memory_threshold=0,
        recent_window=0.0,
        evict_min_bytes=1,
    ) as harness:
        harness.greed.store.pager.region_bytes = 1 << 20  # a step pages 1 MiB
        slices = harness.greed.housekeeping.slices
        slices.seconds, slices.pause = 0.0, 1.0  # one step per slice, a second apart
        yield harness


def cleanups(p: InProcess) -> list[dict[str, t.Any]]:
    return [params["report"] for params in p.methods("execution:cleanup")]


def test_page_outs_go_a_region_at_a_time_and_a_cell_in_between_comes_first(
    p: InProcess,
) -> None:
    p.run(SETUP)  # 1: 4 MiB each
    p.clock.advance(1.0)  # no longer recent
    p.run("_temp_x = 1")  # 2
    p.run("n = 3")  # 3: the periodic cleanup is due; its first slice runs after the reply
    slices = p.greed.housekeeping.slices
    assert slices.running and cleanups(p) == []
    assert "_temp_x" not in p.ns  # the first slice: temporaries, outputs, the error
    assert p.greed.store.total_bytes() == 0
    p.clock.advance(1.0)
    assert 0 < p.greed.store.total_bytes() <= 1 << 20  # the next one: a region of a
    p.run("b[0] = 5.0")  # 4: runs before the rest; b is touched, so it stays in RAM
    p.clock.advance(30.0)
    assert not slices.running
    (report,) = cleanups(p)
    assert report["trigger"] == "periodic" and report["executionCount"] == 3
    assert report["paged"] == ["a", "c"]
    assert (8 << 20) - 2 * 4096 <= report["pagedBytes"] <= 8 << 20  # whole pages
    assert set(p.service.paged()) == {"a", "c"}
    assert p.ns["b"][0] == 5.0 and p.ns["a"].sum() == p.ns["c"].sum() == 1 << 19
    assert not p.errors.records


def test_a_cleanup_that_cannot_wait_finishes_the_one_in_slices(p: InProcess) -> None:
    p.run(SETUP)
    p.clock.advance(1.0)
    p.run("x = 1")
    p.run("y = 2")  # 3: in slices, one region so far
    assert p.greed.housekeeping.slices.running
    report = p.service.cleanup("manual")  # %greed cleanup: the rest first, whole
    assert not p.greed.housekeeping.slices.running
    assert [r["trigger"] for r in cleanups(p)] == ["periodic", "manual"]
    assert cleanups(p)[0]["paged"] == ["a", "b", "c"]
    assert report is not None and report["paged"] == []  # nothing was left to page
    assert not p.errors.records


def test_a_stale_container_of_plain_objects_is_walked_once(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import store

    walked: list[int] = []
    real = store.owned_buffers

    def counting(value: t.Any, **kwargs: t.Any) -> t.Any:
        walked.append(id(value))
        return real(value, **kwargs)

    monkeypatch.setattr(store, "owned_buffers", counting)
    p.run("import numpy as np\nrows = [([i],) for i in range(20000)]")  # 1: no buffer in it
    p.clock.advance(1.0)
    for _ in range(6):  # two periodic cleanups
        p.run("x = 1")
        p.clock.advance(30.0)
    assert walked.count(id(p.ns["rows"])) == 1
    p.run("rows.insert(0, (np.ones(1 << 19),))")  # touched: walked again once stale
    p.clock.advance(1.0)
    for _ in range(3):
        p.run("x = 1")
        p.clock.advance(30.0)
    assert walked.count(id(p.ns["rows"])) > 1  # and at each page-out of its 4 MiB
    assert "rows" in p.service.paged()


def test_between_two_slices_the_cleanup_holds_no_value(p: InProcess) -> None:
    """A value whose last name a cell deletes between two page-outs dies in that cell,
    as on python3: its weak references and finalizers see it at once."""
    p.run(SETUP + "\nimport weakref\nfreed = []\nfin = weakref.finalize(a, freed.append, 1)")
    p.clock.advance(1.0)
    p.run("x = 1")
    p.run("y = 2")  # 3: the cleanup is in slices
    p.clock.advance(1.0)
    assert 0 < p.greed.store.total_bytes() <= 1 << 20  # in the middle of a's page-outs
    p.run("del a\nseen = (list(freed), fin.alive)")
    assert p.ns["seen"] == ([1], False)
    p.clock.advance(30.0)
    assert not p.greed.housekeeping.slices.running
    assert cleanups(p)[0]["paged"] == ["a", "b", "c"]
    assert not p.errors.records
