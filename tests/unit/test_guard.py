"""The memory guard on its own: a real thread, a fake reading, the main thread's loop."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest

from greed_kernel.memory.guard import MemoryGuard, MemoryLimitError, _in_user_code

MiB = 1 << 20
LIMIT = 1000 * MiB


class Level:
    """The memory a fake reading reports, raised by the loop under test."""

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.samples: list[tuple[int, int, int, bool]] = []
        self.read_at_all = threading.Event()

    def read(self) -> int:
        self.read_at_all.set()
        return self.value

    def sampled(self, used: int, limit: int, cell: int, stopping: bool) -> None:
        self.samples.append((used, limit, cell, stopping))


def make(level: Level, **kwargs: t.Any) -> MemoryGuard:
    return MemoryGuard(
        level.read, lambda: LIMIT, threshold=0.9, on_sample=level.sampled, cell=lambda: 7, **kwargs
    )


def grow(level: Level, step: int, until: int, deadline_s: float = 30.0) -> int:
    """Raise the level by *step* per iteration up to *until* (then stay there) and spin;
    return the level reached when it stops (a test that never stops fails at the
    deadline rather than hanging)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if level.value < until:
            level.value += step
        sum(range(50))  # bytecode for the error to land in
    raise AssertionError("the guard never stopped the loop")


def test_it_stops_a_growing_loop_in_the_main_thread_with_a_memory_error() -> None:
    level = Level()
    guard = make(level)
    guard.arm()
    try:
        with pytest.raises(MemoryLimitError) as stopped:
            grow(level, MiB // 64, LIMIT)
    finally:
        guard.disarm()
        guard.close()
    assert isinstance(stopped.value, MemoryError)
    assert "before the kernel would have been killed" in str(stopped.value)
    (stop,) = guard.stops
    assert stop.cell == 7 and stop.limit == LIMIT and stop.used >= 0.9 * LIMIT
    assert guard.stopped == 1
    assert any(stopping for *_, stopping in level.samples)


def test_below_the_threshold_it_never_fires() -> None:
    level = Level(500 * MiB)
    guard = make(level)
    guard.arm()
    try:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            sum(range(50))
    finally:
        guard.disarm()
        guard.close()
    assert guard.stops == [] and level.samples
    assert all(used == 500 * MiB and not stopping for used, _, _, stopping in level.samples)


def test_disarmed_it_reads_once_and_never_fires() -> None:
    level = Level(990 * MiB)  # over the threshold, but no cell runs
    guard = make(level)
    guard.arm()
    guard.disarm()
    assert level.read_at_all.wait(10)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        sum(range(50))
    guard.close()
    assert guard.stops == []


def test_a_cell_that_starts_above_the_threshold_is_stopped_only_if_it_grows() -> None:
    level = Level(950 * MiB)
    guard = make(level)
    guard.arm()
    try:
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:  # no growth: runs on
            sum(range(50))
        assert guard.stops == []
        with pytest.raises(MemoryLimitError):
            grow(level, MiB // 64, LIMIT)
    finally:
        guard.disarm()
        guard.close()
    assert guard.stops[0].used >= 950 * MiB + 8 * MiB


def test_a_cell_that_catches_the_error_and_keeps_growing_gets_it_again() -> None:
    level = Level()
    guard = make(level)
    guard.arm()
    caught = 0
    try:
        with pytest.raises(MemoryLimitError):
            while True:
                try:
                    grow(level, MiB // 64, 1 << 60)  # unbounded: each stop needs growth
                except MemoryLimitError:
                    caught += 1
                    if caught == 3:
                        raise
    finally:
        guard.disarm()
        guard.close()
    assert caught == 3 and guard.stopped == 3
    used = [stop.used for stop in guard.stops]
    assert used == sorted(used) and used[1] - used[0] >= 8 * MiB


def test_threshold_zero_is_off() -> None:
    level = Level(2 * LIMIT)
    guard = make(level)
    guard.threshold = 0.0
    guard.arm()
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        sum(range(50))
    guard.disarm()
    guard.close()
    assert guard.stops == [] and not level.read_at_all.is_set()


def test_after_a_quiet_spell_it_sleeps_until_the_next_cell_wakes_it(monkeypatch) -> None:
    """No cell for LINGER seconds: the thread stops reading and sleeps; the next arm()
    wakes it, and it reads (and would stop that cell) at once."""
    from greed_kernel.memory import guard as guard_module

    monkeypatch.setattr(guard_module, "LINGER", 0.0)
    level = Level(100 * MiB)
    guard = make(level)
    slept = threading.Event()
    sleep = guard._sleep

    def watched_sleep() -> None:
        slept.set()
        sleep()

    guard._sleep = watched_sleep  # type: ignore[method-assign]
    guard.arm()
    guard.disarm()
    try:
        assert slept.wait(10), "the thread never went to sleep"
        level.read_at_all.clear()
        level.value = 2 * LIMIT
        guard.arm()
        assert level.read_at_all.wait(10), "arm() did not wake the sleeping thread"
        with pytest.raises(MemoryLimitError):
            grow(level, MiB, 3 * LIMIT)
    finally:
        guard.disarm()
        guard.close()


def runner(body: t.Callable[[], None]) -> None:
    """Stands for IPython's run_code: the module code it runs is the user's cell."""
    exec(compile("body()", "<cell>", "exec"), {"body": body})


def not_the_cell(body: t.Callable[[], None]) -> None:
    """Stands for IPython's run_code showing a traceback: not the user's code."""
    body()


def test_only_code_called_below_the_marker_is_the_users() -> None:
    import sys

    seen: dict[str, bool] = {}

    def user_code() -> None:
        seen["below"] = _in_user_code(sys._getframe(), runner.__code__)

    runner(user_code)
    seen["outside"] = _in_user_code(sys._getframe(), runner.__code__)

    def showing_a_traceback() -> None:
        seen["traceback"] = _in_user_code(sys._getframe(), not_the_cell.__code__)

    not_the_cell(showing_a_traceback)
    assert seen == {"below": True, "outside": False, "traceback": False}


def test_the_marker_frame_itself_is_not_the_users() -> None:
    import sys

    def marker() -> bool:
        return _in_user_code(sys._getframe(), marker.__code__)

    assert marker() is False


def test_outside_the_users_code_it_waits_and_stops_the_cell_once_it_is_back() -> None:
    level = Level()
    guard = make(level, user_code=runner.__code__)
    guard.arm()
    try:
        grow_outside = time.monotonic() + 0.2
        level.value = LIMIT  # over the threshold while the main thread is not below runner
        while time.monotonic() < grow_outside:
            sum(range(50))
        assert guard.stops == []
        with pytest.raises(MemoryLimitError):
            runner(lambda: grow(level, MiB, 2 * LIMIT))
    finally:
        guard.disarm()
        guard.close()
