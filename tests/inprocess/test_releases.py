"""Release as you go (engine/releases.py) on a real in-process shell: old large outputs
and the stored error go after the cell that made them old, not at the periodic cleanup."""

from __future__ import annotations

import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import InProcess

from greed_kernel.engine.triggers import QUIET_SECONDS

BIG = "memoryview(bytearray(2 << 20))"  # 2 MiB (over evict_min_bytes), a short repr


@pytest.fixture
def p(tmp_path: Path) -> Iterator[InProcess]:
    # no periodic cleanup: whatever goes, goes as it goes
    with InProcess(tmp_path, cleanup_interval=0, optimize_interval=0, memory_threshold=0) as h:
        yield h


def outputs(p: InProcess) -> list[int]:
    return sorted(p.ns["Out"])


def test_a_large_output_goes_once_output_cache_keep_cells_have_ended(p: InProcess) -> None:
    p.run(BIG)  # 1
    p.run("2")  # 2
    p.run("3")  # 3
    assert outputs(p) == [1, 2, 3] and "_1" in p.ns
    p.run("4")  # 4: Out[1] is now older than the last 3 executions
    assert outputs(p) == [2, 3, 4]
    assert "_1" not in p.ns and "_1" not in p.shell.user_ns_hidden
    assert (p.ns["_"], p.ns["__"], p.ns["___"]) == (4, 3, 2)  # python3's, unchanged
    assert p.greed.releases.outputs_released == 1
    assert not p.errors.records


def test_small_outputs_and_outputs_named_since_stay(p: InProcess) -> None:
    p.run(BIG)  # 1
    p.run("'small'")  # 2
    p.run("len(_1)")  # 3: names _1
    p.run("5")  # 4
    p.run("6")  # 5
    assert outputs(p) == [1, 2, 3, 4, 5]
    assert p.greed.releases.outputs_released == 0


def test_an_output_still_held_by_underscore_stays(p: InProcess) -> None:
    p.run(BIG)  # 1: no output after it, so _ is still Out[1]
    for _ in range(4):
        p.run("x = 1")
    assert 1 in p.ns["Out"] and p.ns["_"] is p.ns["Out"][1]


def test_an_output_held_by_underscore_goes_once_later_results_move_it_on(p: InProcess) -> None:
    p.run(BIG)  # 1
    p.run("x = 1")  # 2: _ is still Out[1] when it falls due after cell 4
    p.run("x = 2")  # 3
    p.run("'a'")  # 4: __ is Out[1]
    assert 1 in p.ns["Out"] and p.ns["__"] is p.ns["Out"][1]
    for n in range(5, 8):  # 6 moves ___ on; 7 is three cells after 4: it is due again
        p.run(f"'{n}'")
    assert outputs(p) == [4, 5, 6, 7]
    assert p.greed.releases.outputs_released == 1
    assert (p.ns["_"], p.ns["__"], p.ns["___"]) == ("7", "6", "5")


FAILING = """\
class Held:
    pass

def fail():
    held = Held()
    refs.append(weakref.ref(held))
    raise ValueError("boom")
"""


def failed_once(p: InProcess) -> t.Any:
    p.run("import weakref\nrefs = []\n" + FAILING)
    result = p.run("fail()")
    assert isinstance(result.error_in_exec, ValueError)
    return p.ns["refs"][-1]


def test_the_stored_error_goes_after_the_next_cell_and_its_frames_are_freed(
    p: InProcess,
) -> None:
    held = failed_once(p)
    assert held() is not None and sys.last_value is not None  # python3 keeps them too
    p.run("x = 1")
    assert getattr(sys, "last_value", None) is None
    assert p.greed.releases.errors_released == 1
    # freed by the young collection, or (when they are old already) by the full one
    # owed to the next quiet moment
    p.clock.advance(QUIET_SECONDS)
    assert held() is None, "the error's frames were not freed"


@pytest.mark.parametrize("code", ["%tb", "import pdb", "seen = sys.last_value is not None"])
def test_a_cell_that_looks_at_the_error_keeps_it(p: InProcess, code: str) -> None:
    p.run("import sys")
    held = failed_once(p)
    p.run(code)
    assert held() is not None and sys.last_value is not None
    p.run("x = 1")  # the next one that does not
    p.clock.advance(QUIET_SECONDS)
    assert held() is None


def test_the_mark_says_when_work_falls_due_and_nothing_before(p: InProcess) -> None:
    """A cell with nothing to release costs the hooks one comparison: the mark is the
    number of the cell after which something falls due, and infinite otherwise."""
    counts = p.greed.stats.counts
    p.run("x = 1")
    p.run("y = 2")  # a plain number: not an output to watch
    assert counts.release_at == float("inf")
    p.run(BIG)  # 3
    assert counts.release_at == 6  # output_cache_keep (3) cells later
    for _ in range(3):
        p.run("2")
    assert counts.release_at == float("inf") and 3 not in p.ns["Out"]


#: a module no test imported yet, for the heap freeze after a cell that imports
FRESH_MODULE = (
    "import importlib\n"
    "importlib.import_module(next(m for m in ('colorsys', 'sched', 'wave', 'tabnanny',"
    " 'netrc', 'mailbox', 'imghdr', 'sndhdr') if m not in sys.modules))"
)


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[InProcess]:
    """gc_freeze on: a cell that imports makes the heap freeze fall due after it."""
    with InProcess(
        tmp_path, cleanup_interval=0, optimize_interval=0, memory_threshold=0, gc_freeze=True
    ) as h:
        h.run("import sys, weakref\nrefs = []\n" + FAILING)
        yield h


def test_the_next_cell_sent_before_the_work_due_keeps_the_error(frozen: InProcess) -> None:
    """The work due after the failing cell runs when the next cell starts, if that cell
    came first: it is the failing cell's work, and ``%tb`` in that next cell still finds
    the error stored."""
    frozen.run(FRESH_MODULE + "\nfail()", reply_sent=False)  # work due: the freeze
    held = frozen.ns["refs"][-1]
    frozen.run("%tb", reply_sent=False)
    assert held() is not None and sys.last_value is not None


def test_no_freeze_while_a_cell_runs(frozen: InProcess) -> None:
    """A freeze that fell due runs after the reply, or else waits for the next cell to
    end: frozen as that cell starts, IPython's result of it would be frozen too, and
    should it fail, its error and frames (a cycle through that result) with it."""
    frozen.run(FRESH_MODULE, reply_sent=False)  # the freeze is due
    frozen.run("fail()")  # starts before the freeze ran
    held = frozen.ns["refs"][-1]
    frozen.run("x = 1")  # releases the error
    frozen.clock.advance(QUIET_SECONDS)
    assert held() is None, "the failing cell's frames were frozen with its result"
