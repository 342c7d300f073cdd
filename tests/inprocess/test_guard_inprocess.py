"""The memory guard on a real InteractiveShell: a cell that grows is stopped with a
MemoryError in the user's code, the earlier variables stay, the next cell runs, and the
line under the cell says what happened. The memory reading is the test's (a counter the
cell raises), so no real memory is at stake; real limits are tested in
tests/kernel/test_kernel_guard.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import InProcess

MiB = 1 << 20
LIMIT = 1024 * MiB


@pytest.fixture
def p(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    with InProcess(tmp_path, memory_limit=LIMIT, memory_threshold=0) as harness:
        level = [100 * MiB]
        monkeypatch.setattr(harness.greed.probe, "unreclaimable", lambda: level[0])
        harness.greed.guarding.guard.read = lambda: level[0]

        def grow(nbytes: int) -> None:
            level[0] += nbytes

        harness.ns["grow"] = grow  # the test's stand-in for an allocation
        harness.shell.user_ns_hidden["grow"] = grow
        yield harness


LOOP = """
acc = []
while True:
    acc.append(len(acc))
    grow(1 << 12)
"""


def test_a_growing_cell_is_stopped_and_the_session_goes_on(
    p: InProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    p.run("before = list(range(10))")
    p.run(LOOP)  # (its error is released by the recovery: it pins frames)
    out, err = capsys.readouterr()
    assert "MemoryLimitError" in out and "acc.append" in out  # raised in the user's loop
    assert "Greed: stopped this cell at " in err
    assert "GiB limit, before the kernel would have been killed; your variables are intact." in err
    assert p.ns["before"] == list(range(10))
    assert len(p.ns["acc"]) > 0  # the cell's partial effects stay, as after Ctrl-C
    assert p.run("after = len(acc)").success
    stops = p.service.memory()["guardStops"]
    assert stops == 1
    kinds = [m["kind"] for m in p.service.memory()["markers"]]
    assert "guard" in kinds


def test_the_status_and_the_timeline_show_the_guard(p: InProcess) -> None:
    p.run(LOOP)
    status = p.service.status()
    assert status["guardStops"] == 1
    assert status["guardThresholdBytes"] == int(LIMIT * 0.95)
    memory = p.service.memory()
    assert memory["limitBytes"] == LIMIT and memory["guardThreshold"] == 0.95
    assert memory["samples"] and max(s["unreclaimableBytes"] for s in memory["samples"]) >= (
        0.95 * LIMIT
    )


def test_with_the_guard_off_nothing_is_stopped(p: InProcess) -> None:
    p.settings.guard_threshold = 0.0
    result = p.run("for i in range(20000):\n    grow(1 << 16)\nx = 1")
    assert result.success and p.ns["x"] == 1
    assert p.service.status()["guardStops"] == 0


def test_without_oom_recovery_the_line_is_still_said(
    p: InProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    p.settings.oom_recovery = False
    p.run(LOOP)
    err = capsys.readouterr().err
    assert "Greed: stopped this cell at " in err and "your variables are intact." in err


def test_a_cell_that_ends_over_the_threshold_is_not_stopped_in_the_kernel(
    p: InProcess,
) -> None:
    """Memory rises in the cell's last statement; the guard's error never lands in
    greed's or IPython's code after the cell (it raises only below run_code)."""
    for _ in range(20):
        result = p.run("grow(2 << 20)")
        assert result.success or "MemoryLimitError" in "".join(p.service.shown_traceback())
    assert p.run("y = 2").success


def test_the_guard_thread_stops_with_the_engine(tmp_path: Path) -> None:
    harness = InProcess(tmp_path, memory_limit=LIMIT)
    harness.run("x = 1")
    thread = harness.greed.guarding.guard._thread
    harness.close()
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive()
