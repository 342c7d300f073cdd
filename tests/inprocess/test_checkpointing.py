"""When checkpoints run (engine/checkpointing.py), on a real shell with a manual clock:
after a quiet moment, dropped when a cell starts, retried after a failure, and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from greed_kernel.engine import checkpointing
from tests.inprocess import InProcess


@pytest.fixture
def session(tmp_path: Path) -> InProcess:
    with InProcess(
        tmp_path / "paging", identity="nb.ipynb", checkpoint_dir=str(tmp_path / "ck")
    ) as s:
        yield s


def cells_held(s: InProcess) -> list[int]:
    return [m["cell"] for m in s.service.checkpoints()]


def test_a_checkpoint_runs_once_the_cells_are_quiet(session: InProcess) -> None:
    session.run("x = [1, 2, 3]")
    session.run("y = x")
    assert cells_held(session) == []  # not while cells come
    session.clock.advance(checkpointing.QUIET_SECONDS)
    assert cells_held(session) == [2]
    session.run("1 + 1")  # nothing changed: nothing new
    session.clock.advance(checkpointing.QUIET_SECONDS)
    assert cells_held(session) == [2]
    session.run("x.append(4)")
    session.clock.advance(checkpointing.QUIET_SECONDS)
    assert cells_held(session) == [2, 4]
    assert not session.errors.records


def test_a_cell_that_starts_drops_the_checkpoint(session: InProcess) -> None:
    slices = session.greed.checkpointing.slices
    slices.seconds, slices.pause = 0.0, 1.0  # one step per slice, a second apart
    session.run("a = list(range(10))\nb = {'k': 1}\nc = 3")
    session.clock.advance(checkpointing.QUIET_SECONDS)  # the first slice only
    assert slices.running
    session.run("c = 4")
    session.clock.advance(1.0)
    assert cells_held(session) == []
    session.clock.advance(checkpointing.QUIET_SECONDS + 100.0)
    assert cells_held(session) == [2]
    got = session.service.resume(None)
    assert got["bound"] == ["a", "b", "c"] and session.ns["c"] == 4


def test_a_value_a_cell_deletes_during_a_checkpoint_dies_in_that_cell(
    session: InProcess,
) -> None:
    """The checkpoint in slices holds the values it writes: it is dropped before the
    cell's code runs, so a finalizer runs at the ``del``, as on python3."""
    slices = session.greed.checkpointing.slices
    slices.seconds, slices.pause = 0.0, 1.0
    session.run(
        "import weakref\nclass Box: pass\nbox = Box()\nfreed = []\n"
        "fin = weakref.finalize(box, freed.append, 1)\nother = [1]"
    )
    session.clock.advance(checkpointing.QUIET_SECONDS)
    assert slices.running
    session.run("del box\nseen = (list(freed), fin.alive)")
    assert session.ns["seen"] == ([1], False)


def test_a_big_blob_goes_on_after_a_cell_instead_of_starting_over(
    session: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.session import blobs

    monkeypatch.setattr(blobs, "STEP_BYTES", 64 << 10)  # 1 MiB: 16 steps of writing
    slices = session.greed.checkpointing.slices
    slices.seconds, slices.pause = 0.0, 1.0
    session.run("import numpy as np\na = np.arange(1 << 17, dtype='f8')")
    session.clock.advance(checkpointing.QUIET_SECONDS)
    session.clock.advance(8.0)  # half the blob, one step a slice
    assert slices.running
    session.run("b = 1")  # dropped
    session.clock.advance(checkpointing.QUIET_SECONDS + 100.0)
    assert cells_held(session) == [2]
    written = session.greed.checkpointing.open().written
    assert written < (3 << 20) // 4  # the rest of the blob, not all of it again
    got = session.service.resume(None)
    assert "a" in got["bound"] and session.ns["a"][-1] == (1 << 17) - 1


def test_a_failing_directory_never_changes_a_cell(session: InProcess, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    session.settings.checkpoint_dir = str(tmp_path / "file")
    ran = session.run("x = 1")
    session.clock.advance(checkpointing.QUIET_SECONDS)
    assert ran.success and session.ns["x"] == 1
    status = session.service.status()
    assert "File exists" in status["checkpointProblem"]
    session.run("x = 2")
    session.clock.advance(checkpointing.QUIET_SECONDS)  # backing off: not tried again yet
    session.settings.checkpoint_dir = str(tmp_path / "ck")
    session.greed.checkpointing._checkpoints = None
    session.clock.advance(checkpointing.RETRY_SECONDS)
    assert cells_held(session) == [2]
    assert session.service.status()["checkpointProblem"] is None


def test_resume_binds_names_imports_and_stamps_them(session: InProcess) -> None:
    session.run(
        "import json as j\nvalue = {'a': [1, 2]}\ndef f():\n    return value['a']\ncode = 3"
    )
    session.service.checkpoint()
    session.shell.user_ns.pop("value")
    session.shell.user_ns.pop("j")
    session.shell.user_ns.pop("f")
    session.shell.user_ns.pop("code")
    got = session.service.resume(None)
    assert got["bound"] == ["code", "f", "j", "value"]
    assert session.ns["f"]() == [1, 2] and session.ns["j"].__name__ == "json"
    assert session.ns["f"].__globals__ is session.ns
    assert session.greed.tracker.last["value"].execution == session.greed.hooks.number


def test_off_writes_nothing(tmp_path: Path) -> None:
    with InProcess(
        tmp_path / "p", identity="nb", checkpoint="off", checkpoint_dir=str(tmp_path / "ck")
    ) as s:
        s.run("x = 1")
        s.clock.advance(10 * checkpointing.QUIET_SECONDS)
        assert not (tmp_path / "ck").exists()


def stretch(s: InProcess, cells: int, gap: float) -> None:
    """Cells back to back: *gap* seconds between one's end and the next's start."""
    for _ in range(cells):
        s.clock.advance(gap)
        s.run("step += 1")


def test_a_long_stretch_of_cells_waits_for_one_checkpoint(
    session: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No quiet moment for OVERDUE_SECONDS: the next cell waits for a checkpoint, which
    holds the state before it."""
    monkeypatch.setattr(checkpointing, "OVERDUE_SECONDS", 3.0)
    monkeypatch.setattr(checkpointing, "EXPECTED_BYTES_PER_S", 1 << 50)
    slices = session.greed.checkpointing.slices
    slices.seconds, slices.pause = 0.0, 1000.0  # one step, then only a cell finishes it
    session.run("data, step = [1, 2, 3], 0")
    stretch(session, 8, checkpointing.QUIET_SECONDS / 2)  # 2 s: not yet
    assert cells_held(session) == [] and not slices.running
    stretch(session, 8, checkpointing.QUIET_SECONDS / 2)
    assert cells_held(session) != [] and not slices.running
    [held] = session.service.checkpoints()
    got = session.service.resume(held["id"])
    assert session.ns["step"] == held["cell"] - 1 and session.ns["data"] == [1, 2, 3]
    assert got["bound"] == ["data", "step"] and not session.errors.records


def test_a_stretch_waits_longer_for_a_costly_checkpoint(
    session: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expected time of the checkpoint (the memory, as if all of it were new) is at
    most OVERDUE_SHARE of the time the cells wait between two."""
    monkeypatch.setattr(checkpointing, "OVERDUE_SECONDS", 3.0)
    rss = session.greed.checkpointing.probe.unreclaimable()
    monkeypatch.setattr(checkpointing, "EXPECTED_BYTES_PER_S", rss / 0.1)  # 0.1 s: 10 s
    session.run("data, step = [1], 0")
    stretch(session, 30, checkpointing.QUIET_SECONDS / 2)  # 7.5 s
    assert cells_held(session) == []
    stretch(session, 12, checkpointing.QUIET_SECONDS / 2)  # 10.5 s
    assert cells_held(session) != []
