"""engine/slices.py: work run a slice at a time, with a hand-driven scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from greed_kernel.engine.slices import Slices

pytestmark = pytest.mark.pure


class Loop:
    """A scheduler that runs callbacks only when told; a cell can run in between."""

    def __init__(self) -> None:
        self.queue: list[Callable[[], None]] = []
        self.busy = False
        self.executions = 0

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        self.queue.append(fn)

    def turn(self) -> None:
        queue, self.queue = self.queue, []
        for fn in queue:
            fn()

    def slices(self, on_cell: str) -> Slices:
        return Slices(
            self.schedule,
            lambda: self.busy,
            lambda: self.executions,
            logging.getLogger("test"),
            on_cell=on_cell,  # type: ignore[arg-type]
            seconds=0.0,  # one step per slice
        )


def work(done: list[int], n: int = 3) -> Iterator[None]:
    for i in range(n):
        done.append(i)
        yield


def test_a_step_per_slice_then_done() -> None:
    loop, done, ended = Loop(), [], []
    s = loop.slices("wait")
    s.start(work(done), done=lambda: ended.append(True))
    assert done == [0] and s.running
    loop.turn()
    loop.turn()
    assert done == [0, 1, 2] and not ended
    loop.turn()
    assert ended == [True] and not s.running and loop.queue == []


def test_wait_goes_on_after_a_cell_and_not_during_it() -> None:
    loop, done = Loop(), []
    s = loop.slices("wait")
    s.start(work(done))
    loop.busy = True
    loop.turn()
    assert done == [0]  # nothing while the cell runs (or awaits)
    loop.busy, loop.executions = False, 1
    loop.turn()
    assert done == [0]  # the cell's reply first
    loop.turn()
    assert done == [0, 1]


def test_drop_abandons_the_work_when_a_cell_came() -> None:
    loop, done, dropped = Loop(), [], []
    s = loop.slices("drop")
    s.start(work(done), dropped=lambda: dropped.append(True))
    loop.executions = 1
    loop.turn()
    assert done == [0] and dropped == [True] and not s.running


def test_finish_runs_the_rest_now_and_failures_are_handed_on() -> None:
    loop, done, failures = Loop(), [], []
    s = loop.slices("wait")
    s.start(work(done, 5))
    s.finish()
    assert done == [0, 1, 2, 3, 4] and not s.running

    def broken() -> Iterator[None]:
        yield
        raise OSError("disk full")

    s.start(broken(), failed=failures.append)
    loop.turn()
    assert [str(e) for e in failures] == ["disk full"] and not s.running


def test_cells_back_to_back_do_not_starve_the_work() -> None:
    loop, done = Loop(), []
    s = loop.slices("wait")
    s.start(work(done))
    for _ in range(6):  # a cell ends before every turn: a step every other cell
        loop.executions += 1
        loop.turn()
    assert done == [0, 1, 2] and not s.running
