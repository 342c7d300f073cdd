"""The engine on a real in-process InteractiveShell, with the clock and the scheduler
driven by the test (tests/inprocess.py): triggers, the moments of a cell, interrupts,
hostile objects, requests that wait for a running cell, and the memory budget."""

from __future__ import annotations

import ast
import re
import typing as t
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import InProcess

from greed_kernel.engine import hooks as hooks_module


@pytest.fixture
def p(tmp_path: Path) -> Iterator[InProcess]:
    with InProcess(tmp_path) as harness:
        yield harness


@pytest.fixture
def make(tmp_path: Path) -> Iterator[t.Callable[..., InProcess]]:
    made: list[InProcess] = []

    def factory(**overrides: t.Any) -> InProcess:
        made.append(InProcess(tmp_path, **overrides))
        return made[-1]

    yield factory
    for harness in made:
        harness.close()


def triggers(p: InProcess, method: str) -> list[tuple[str, int]]:
    return [(e["report"]["trigger"], e["report"]["executionCount"]) for e in p.methods(method)]


def assert_interrupted(result: t.Any) -> None:
    """The cell failed with KeyboardInterrupt (IPython shows it like any interrupt)."""
    error = result.error_before_exec or result.error_in_exec
    assert not result.success and isinstance(error, KeyboardInterrupt), error


# -- triggers ----------------------------------------------------------------------------
def test_periodic_cleanup_and_optimize_run_after_the_reply(
    make: t.Callable[..., InProcess],
) -> None:
    p = make(cleanup_interval=4, optimize_interval=3, memory_threshold=0, recent_window=0)
    p.run("a0 = 0")
    p.run("_temp_x = 1")
    p.run("a2 = 2")
    assert triggers(p, "execution:optimize") == [("periodic", 3)]
    p.clock.advance(1)  # _temp_x is no longer recent
    p.run("a3 = 3", reply_sent=False)  # the 4th cell: its reply is on its way
    assert triggers(p, "execution:cleanup") == []  # nothing ran before the reply
    assert p.after_reply() == 2  # the work; the cleanup's trim, in a slice of its own
    assert triggers(p, "execution:cleanup") == [("periodic", 4)] and "_temp_x" not in p.ns
    for i in range(4, 12):
        p.run(f"a{i} = {i}")
    assert [n for _, n in triggers(p, "execution:cleanup")] == [4, 8, 12]
    # due together at 12: the optimisation does not collect a second time
    assert [n for _, n in triggers(p, "execution:optimize")] == [3, 6, 9, 12]
    assert p.methods("execution:optimize")[-1]["report"]["gcCollected"] == 0


def test_work_due_when_the_next_cell_starts_runs_before_its_code(
    make: t.Callable[..., InProcess],
) -> None:
    """nbclient sends the next cell at once: what the last one left due runs first."""
    p = make(cleanup_interval=2, memory_threshold=0, recent_window=0)
    p.run("a = 1")
    p.run("_temp_b = 2", reply_sent=False)  # the periodic cleanup is due
    p.clock.advance(0.001)  # ... and the next cell arrives before the work's timer
    p.run("print(_temp_b)")  # the cleanup ran before its code: the temporary is gone
    assert triggers(p, "execution:cleanup") == [("periodic", 2)]
    assert "_temp_b" not in p.ns and p.greed.stats.execution_count == 3
    p.clock.advance(1)  # the stale timer finds nothing more to do
    assert triggers(p, "execution:cleanup") == [("periodic", 2)]


def test_requests_that_wait_for_a_cell_run_after_the_reply(p: InProcess) -> None:
    ran: list[str] = []
    p.greed.executing = True  # a cell awaits: the event loop delivers a request
    p.greed.when_no_cell(lambda: ran.append("request"))
    p.greed.executing = False
    p.greed.cell_done()
    assert ran == []
    p.after_reply()
    assert ran == ["request"]


def test_disabled_intervals(make: t.Callable[..., InProcess]) -> None:
    p = make(cleanup_interval=0, optimize_interval=0, memory_threshold=0)
    for i in range(10):
        p.run(f"a{i} = {i}")
    assert p.events == [] and p.service.status()["nextCleanupIn"] is None


def test_idle_trigger_fires_once_per_idle_period(make: t.Callable[..., InProcess]) -> None:
    p = make(idle_timeout=300, memory_threshold=0)
    p.run("x = 1")
    p.clock.advance(299)
    assert p.events == []
    p.clock.advance(1)
    assert triggers(p, "execution:cleanup") == [("idle", 1)]
    assert triggers(p, "execution:optimize") == [("idle", 1)]
    assert p.methods("execution:cleanup")[0]["stats"]["cleanupCount"] == 1
    p.clock.advance(3600)  # nothing ran since: no second one
    assert len(p.events) == 2 and p.clock.pending == 0
    p.run("y = 2")
    p.clock.advance(300)
    assert triggers(p, "execution:cleanup") == [("idle", 1), ("idle", 2)]


def test_idle_trigger_waits_for_a_running_or_awaiting_cell(
    make: t.Callable[..., InProcess],
) -> None:
    p = make(idle_timeout=300, memory_threshold=0)
    p.run("x = 1")
    p.greed.executing = True  # a long cell (or one awaiting) began before the timer fired
    p.clock.advance(1000)
    assert p.events == []
    p.greed.executing = False
    p.run("y = 2")  # a cell ends 1000 s after the last one
    p.clock.advance(299)
    assert p.events == []
    p.clock.advance(1)
    assert triggers(p, "execution:cleanup") == [("idle", 2)]


def test_memory_trigger_and_cooldown(make: t.Callable[..., InProcess]) -> None:
    p = make(memory_limit=1_000_000)  # 1 MB: pressure is 1.0
    p.run("x = 1")
    pressure = p.methods("memory:pressure")
    # crossing the threshold, then the budget that cannot be held (with the holders)
    assert len(pressure) == 2 and "holders" in pressure[1]
    assert pressure[0]["stats"]["memoryPressure"] == 1.0
    assert pressure[0]["stats"]["memoryLimitBytes"] == 1_000_000
    assert triggers(p, "execution:cleanup") == [("memory", 1)]
    assert triggers(p, "execution:optimize") == [("memory", 1)]
    for i in range(4):  # cooldown: pressure cannot rise above 1.0
        p.run(f"y{i} = {i}")
    assert len(p.methods("memory:pressure")) == 2
    assert len(triggers(p, "execution:cleanup")) == 1
    p.settings.pressure_cooldown = 2
    p.run("z = 1")  # the cooldown is over: looked at again, still not held, said once
    assert triggers(p, "execution:cleanup")[-1] == ("memory", 6)
    assert len(p.methods("memory:pressure")) == 3


def test_a_budget_that_cannot_be_held_is_explained_once_per_episode(
    p: InProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    p.run("junk = bytearray(64 << 20)")  # plain Python memory: never paged
    used = p.greed.probe.unreclaimable()
    p.settings.memory_limit = int(used / 0.9)  # pressure 0.9, above the 0.8 threshold
    capsys.readouterr()
    p.run("x = 1")  # the budget is looked at after the reply ...
    (event,) = [e for e in p.methods("memory:pressure") if "holders" in e]
    assert event["holders"][0]["name"] == "junk"
    assert p.service.status()["budgetRefusal"]["holders"][0]["name"] == "junk"
    assert p.service.stats()["memoryBudget"]["held"] is False
    assert "nothing more can be paged out" not in capsys.readouterr().err
    p.run("y = 2")  # ... so its line is said under the next cell, before its code runs
    err = capsys.readouterr().err
    assert "nothing more can be paged out" in err and "junk (64 MiB, bytearray)" in err
    p.run("z = 2")  # the same episode: no second line
    assert "nothing more can be paged out" not in capsys.readouterr().err
    p.settings.memory_limit = used * 4  # pressure far below the watermark: episode over
    p.run("w = 3")
    assert p.service.status()["budgetRefusal"] is None


def test_a_budget_refused_by_the_idle_cleanup_is_said_under_the_next_cell(
    make: t.Callable[..., InProcess],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    p = make(idle_timeout=300)
    p.run("junk = bytearray(64 << 20)")  # plain Python memory: never paged
    p.run("x = 1")  # nothing due after this one
    p.settings.memory_limit = int(p.greed.probe.unreclaimable() / 0.9)
    capsys.readouterr()
    p.clock.advance(301)  # idle: a cleanup, an optimisation and a look at the budget
    assert p.service.status()["budgetRefusal"]["holders"][0]["name"] == "junk"
    assert "nothing more can be paged out" not in capsys.readouterr().err
    p.run("y = 2")  # no cell work was due: the notice alone makes the cell say it
    assert "nothing more can be paged out" in capsys.readouterr().err


def test_out_of_memory_is_recovered_before_the_reply(
    p: InProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    p.run("def f():\n    x = bytearray(1 << 20)\n    raise MemoryError\nf()", reply_sent=False)
    assert p.greed.stats.execution_count == 1
    assert "Greed: reclaimed" in capsys.readouterr().err  # under the failing cell
    assert [m for m, _ in p.events][-1] == "memory:oom"


# -- the hooks ---------------------------------------------------------------------------
def test_names_are_scanned_and_stamped_after_the_reply(p: InProcess) -> None:
    p.run("x = 1", reply_sent=False)
    assert "x" not in p.greed.tracker.last  # the hot path only kept the tree
    p.after_reply()
    assert p.greed.tracker.last["x"].execution == 1


def test_a_reader_of_the_stamps_stamps_first(p: InProcess) -> None:
    p.run("x = 1", reply_sent=False)
    assert p.service.why("x")["lastTouchedCell"] == 1  # before the scheduled work ran
    # the running cell's trees count too (%greed why in the cell that defines it)
    p.ns["why"] = p.service.why
    p.run("y = 2\nrow = why('y')", reply_sent=False)
    assert p.ns["row"]["lastTouchedCell"] == 2


def test_cells_scanned_together_keep_their_own_number_and_time(p: InProcess) -> None:
    p.run("x = 1", reply_sent=False)
    p.clock.advance(5)  # the scheduled work runs 5 s later than the cell
    p.shell.run_cell("y = x", store_history=True)
    stamps = p.greed.tracker.last
    assert stamps["x"].execution == 1 and stamps["x"].time == p.clock.now - 5
    assert p.service.why("y")["lastTouchedCell"] == 2  # a reader scans what waits first


def scans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The trees the hooks scan, from now on."""
    scanned: list[object] = []
    real = hooks_module.scan_tree

    def counting(tree: t.Any) -> t.Any:
        scanned.append(tree)
        return real(tree)

    monkeypatch.setattr(hooks_module, "scan_tree", counting)
    return scanned


def test_a_cell_run_again_is_not_scanned_again(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    scanned = scans(monkeypatch)
    p.run("x = 1")
    p.greed.hooks.stamp()
    assert len(scanned) == 1
    touched: list[object] = []
    real_touch = p.greed.tracker.touch
    monkeypatch.setattr(p.greed.tracker, "touch", lambda *a: touched.append(a) or real_touch(*a))
    p.clock.advance(3)
    for _ in range(3):  # one batch (nothing is due in between)
        started = p.clock.now
        p.run("x = 1")
        p.run("y = 2")
    assert p.greed.hooks.unstamped
    p.greed.hooks.stamp()
    assert len(scanned) == 2  # only the new source, once
    assert len(touched) == 4  # x = 1 once, by its last run; y = 2 was new at each run
    stamps = p.greed.tracker.last
    assert stamps["x"] == (started, 6) and stamps["y"].execution == 7


def test_cells_run_again_wait_without_their_trees(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    monkeypatch.setattr(hooks_module, "STAMP_BATCH", 3)
    monkeypatch.setattr(hooks_module, "STAMP_MAX_CELLS", 3)
    for source in ("x = 1", "y = 2", "z = 3"):
        p.run(source)
    p.greed.hooks.stamp()  # as a reader of the stamps would: the three are scanned
    assert "x = 1" in p.greed.hooks.scanned and not p.greed.hooks.unstamped
    for _ in range(9):  # more than a batch, but nothing to scan: no wake-up
        p.run("x = 1", reply_sent=False)
        p.run("y = 2", reply_sent=False)
    assert p.clock.pending == 0 and not p.greed.hooks.unstamped
    # the tree of a source scanned before is not kept: it is freed where python3 frees
    # it, by the end of the cell, not at the next one
    trees: list[weakref.ref[ast.AST]] = []
    parse = p.shell.compile.ast_parse

    def kept_track_of(*args: t.Any, **kwargs: t.Any) -> ast.AST:
        tree = parse(*args, **kwargs)
        trees.append(weakref.ref(tree))
        return tree

    monkeypatch.setattr(p.shell.compile, "ast_parse", kept_track_of)
    p.run("x = 1", reply_sent=False)
    p.run("y = 2", reply_sent=False)
    assert len(trees) == 2 and trees[0]() is None and trees[1]() is None
    # one entry per source, its last run, without a tree: nothing piles up per cell
    reruns = p.greed.hooks.reruns
    assert [(known.source, known.number) for known in reruns] == [
        ("x = 1", 22),
        ("y = 2", 23),
    ]
    p.run("z = 3", reply_sent=False)  # a third source run again: STAMP_MAX_CELLS wait
    assert p.clock.pending == 1
    p.after_reply()
    assert not p.greed.hooks.reruns
    last = p.greed.tracker.last
    assert (last["x"].execution, last["y"].execution, last["z"].execution) == (22, 23, 24)


def test_sources_remembered_are_bounded(p: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks_module, "SCANNED_SOURCES", 2)
    scanned = scans(monkeypatch)
    for source in ("a = 1", "b = 2", "c = 3", "a = 1"):  # a was dropped for c
        p.run(source)
        p.greed.hooks.stamp()
    assert len(scanned) == 4 and list(p.greed.hooks.scanned) == ["c = 3", "a = 1"]
    big = "z = 1\n" + "#" * hooks_module.SCANNED_SOURCE_CHARS
    p.run(big)
    p.greed.hooks.stamp()
    p.run(big)  # too big to be remembered: scanned again
    p.greed.hooks.stamp()
    assert len(scanned) == 6 and big not in p.greed.hooks.scanned


def test_a_transformer_of_the_users_makes_cells_scanned_again(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ast

    class Rename(ast.NodeTransformer):  # what ran is not what the source says
        def visit_Name(self, node: ast.Name) -> ast.Name:
            return ast.copy_location(ast.Name("renamed", node.ctx), node)

    scanned = scans(monkeypatch)
    p.run("x = 1")
    p.greed.hooks.stamp()
    assert "x = 1" in p.greed.hooks.scanned and len(scanned) == 1
    for transformers in ([Rename()], None):  # appended to the list, then a new list
        if transformers is None:
            p.shell.ast_transformers = [Rename()]
        else:
            p.shell.ast_transformers.extend(transformers)
        try:
            p.run("x = 1")
            p.greed.hooks.stamp()
        finally:
            p.shell.ast_transformers.clear()
        assert p.ns["renamed"] == 1
        assert p.greed.tracker.last["renamed"].execution == p.shell.execution_count - 1
    p.shell.input_transformers_post.append(lambda lines: [x.replace("x", "y") for x in lines])
    try:
        p.run("x = 1")
        p.greed.hooks.stamp()
    finally:
        p.shell.input_transformers_post.clear()
    assert p.ns["y"] == 1 and p.greed.tracker.last["y"].execution == 4
    assert len(scanned) == 4  # what ran under a transformer was scanned, not remembered
    assert p.greed.hooks.scanned["x = 1"].names.writes == {"x"}
    p.run("x = 1")  # without: remembered again
    p.greed.hooks.stamp()
    assert len(scanned) == 4


def test_an_interrupt_in_pre_run_cell_stops_the_cell(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython's event manager swallows what a callback raises: the hooks stop the
    cell themselves, at the tree hook, before any of its code runs."""
    calls = iter([KeyboardInterrupt, None])
    real = p.greed.hooks.clock

    def clock() -> float:
        if next(calls, None) is KeyboardInterrupt:
            raise KeyboardInterrupt
        return real()

    monkeypatch.setattr(p.greed.hooks, "clock", clock)
    assert_interrupted(p.shell.run_cell("ran = True", store_history=True))
    assert "ran" not in p.ns
    monkeypatch.undo()
    assert p.run("ran = True").success and p.ns["ran"] is True


def test_a_class_with_an_unhashable_metaclass_does_not_stop_tracking(p: InProcess) -> None:
    p.run("class Meta(type):\n    __hash__ = None\nclass C(metaclass=Meta):\n    pass\nx = 1")
    assert p.run("C\nx").success
    n = p.shell.execution_count - 1
    assert p.greed.tracker.last["x"].execution == n and p.greed.tracker.last["C"].execution == n
    assert not p.errors.records


def test_names_are_stamped_with_the_injected_clock(p: InProcess) -> None:
    p.clock.advance(42)
    p.run("def f():\n    return g\ng = 1\nf()", reply_sent=False)
    assert p.service.why("g")["lastTouchedAgo"] == 0  # stamped with the cell's start
    assert p.greed.tracker.last["g"].time == p.clock.now
    p.clock.advance(60)
    assert p.service.why("g")["lastTouchedAgo"] == 60


def test_unregister_leaves_the_shell_as_it_was(p: InProcess) -> None:
    p.greed.unregister()
    assert "transform_ast" not in p.shell.__dict__
    assert p.greed.hooks.pre_run_cell not in p.shell.events.callbacks["pre_run_cell"]
    count = p.greed.stats.execution_count
    p.run("x = 1")
    assert p.greed.stats.execution_count == count


def test_a_failure_of_ours_never_changes_the_cell(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> t.NoReturn:
        raise RuntimeError("ours")

    monkeypatch.setattr(p.greed.tracker, "touch", broken)
    monkeypatch.setattr(p.greed.triggers, "check_pressure", broken)
    result = p.run("x = 40 + 2\nx")
    assert result.success and result.result == 42
    assert p.errors.records  # logged


# -- requests and the running cell -------------------------------------------------------
def test_requests_wait_for_a_running_cell(p: InProcess) -> None:
    ran: list[str] = []
    p.greed.executing = True  # as the kernel's do_execute sets it, also while a cell awaits
    p.greed.when_no_cell(lambda: ran.append("cleanup"))
    assert ran == []
    p.greed.executing = False
    p.greed.cell_done()  # the kernel calls this once the reply is built
    assert ran == []
    p.after_reply()  # ... and the rest after the reply
    assert ran == ["cleanup"]
    p.greed.when_no_cell(lambda: ran.append("now"))
    assert ran == ["cleanup", "now"]


def test_a_user_thread_pauses_paging(
    make: t.Callable[..., InProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numpy")
    p = make(recent_window=0.0, evict_min_bytes=1)
    p.run("import numpy as np, threading\nbig = np.ones(1 << 20)\nstop = threading.Event()")
    # a thread that runs (here a Python loop) may be inside a C call that writes memory
    p.run(
        "def spin():\n    while not stop.is_set():\n        sum(range(100))\n"
        "worker = threading.Thread(target=spin, name='users-worker')\nworker.start()"
    )
    p.clock.advance(1)  # big is no longer recent
    report = p.service.cleanup("manual")
    assert report is not None and report["paged"] == []
    assert "users-worker" in p.service.status()["pagingPaused"]
    p.run("stop.set()\nworker.join()")
    report = p.service.cleanup("manual")
    assert report is not None and "big" in report["paged"]
    assert p.service.status()["pagingPaused"] == ""
    assert p.service.paged()["big"] > 0
    assert p.service.restore(["big"]) > 0


def test_an_idle_thread_does_not_pause_paging(
    make: t.Callable[..., InProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread blocked in a known wait (an idle executor worker, as
    ``asyncio.to_thread`` leaves one) cannot write while paging holds the GIL."""
    pytest.importorskip("numpy")
    p = make(recent_window=0.0, evict_min_bytes=1)
    p.run("import numpy as np, concurrent.futures\nbig = np.ones(1 << 20)")
    p.run("pool = concurrent.futures.ThreadPoolExecutor(1)\npool.submit(sum, [1, 2]).result()")
    p.clock.advance(1)  # big is no longer recent
    report = p.service.cleanup("manual")
    assert report is not None and "big" in report["paged"]
    assert p.service.status()["pagingPaused"] == ""
    p.run("pool.shutdown()")


def test_marks_and_views(p: InProcess) -> None:
    p.run("kept = 1\nother = 2")
    p.service.preserve(["kept"])
    assert p.service.why("kept")["rule"] == "marked"
    assert "kept" in p.service.stats()["preservedVariables"]
    p.service.unpreserve(["kept", "model"])
    assert p.service.why("kept")["rule"] != "marked"
    rows = {r["name"]: r for r in p.service.vars()}
    assert {"kept", "other"} <= set(rows) and rows["kept"]["type"] == "int"
    with pytest.raises(KeyError):
        p.service.why("missing")
    assert set(p.service.settings()) >= {"cleanup_interval", "memory_limit", "evict"}


def test_short_cells_are_probed_for_memory_once_their_run_time_adds_up(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    probes: list[float] = []
    real = p.greed.probe.pressure
    monkeypatch.setattr(p.greed.probe, "pressure", lambda: probes.append(1) or real())
    p.run("x = 1")  # the first cell is always looked at
    for i in range(5):
        p.run(f"x = {i}")
    assert len(probes) == 1
    p.greed.stats.counts.seconds += 3600.0  # as if the cells had run that long
    p.run("x = 2")
    assert len(probes) == 2


def test_an_ordinary_cell_schedules_nothing_and_waits_to_be_scanned(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    monkeypatch.setattr(hooks_module, "STAMP_BATCH", 3)
    p.run("a = 1")  # the first cell is probed: a wake-up after its reply
    p.run("b = 2", reply_sent=False)
    assert p.clock.pending == 0  # nothing due: no wake-up at all
    p.run("c = 3", reply_sent=False)  # nor for the next one: b waits, unscanned
    assert p.clock.pending == 0 and "b" not in p.greed.tracker.last
    p.clock.advance(7)
    p.run("d = 4", reply_sent=False)  # 3 cells wait: a wake-up scans them, in order
    assert p.clock.pending == 1 and "b" not in p.greed.tracker.last
    p.after_reply()
    stamps = p.greed.tracker.last
    assert [stamps[n].execution for n in "bcd"] == [2, 3, 4]
    assert stamps["d"].time - stamps["b"].time == 7  # each at its own cell's start
    p.run("e = 5", reply_sent=False)
    assert p.clock.pending == 0
    p.run("f = 6\n" + "#" * hooks_module.STAMP_BATCH_CHARS, reply_sent=False)  # a big cell
    assert p.clock.pending == 1  # its tree is not kept for long


def test_an_ordinary_cell_costs_greed_seven_calls_and_no_trait_read(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path, counted (not timed): for an ordinary cell with nothing due, greed
    makes these 7 Python calls (begin and cell_done of the execute request, arming and
    disarming the memory guard, the shell's two events and its tree hook) on
    plain objects and reads no trait (a trait read is several Python calls of
    traitlets'); the trait reads of the cell are IPython's, as many as detached."""
    import os
    import sys

    import traitlets

    import greed_kernel
    from greed_kernel.engine import triggers as triggers_module

    ours_dir = os.path.dirname(greed_kernel.__file__) + os.sep
    traitlets_dir = os.path.dirname(traitlets.__file__) + os.sep

    monkeypatch.setattr(triggers_module, "PROBE_EVERY_CELL_SECONDS", 3600.0)
    monkeypatch.setattr(p.shell.displayhook, "cache_size", 0)
    codes = ("x = 1", "x + 1")
    for code in codes * 3:  # probed once
        p.run(code)
    p.greed.hooks.stamp()  # as a reader of the stamps would: the sources are remembered

    def counted(run: t.Callable[[str], t.Any]) -> tuple[list[str], int]:
        ours: list[str] = []
        traits = 0

        def profile(frame: t.Any, event: str, arg: t.Any) -> None:
            nonlocal traits
            if event == "call":
                where = frame.f_code.co_filename
                if where.startswith(ours_dir):
                    ours.append(frame.f_code.co_name)
                elif where.startswith(traitlets_dir) and frame.f_code.co_name == "__get__":
                    traits += 1

        for code in codes:
            sys.setprofile(profile)
            try:
                run(code)
            finally:
                sys.setprofile(None)
        return ours, traits

    ours, traits = counted(lambda code: p.run(code, reply_sent=False))
    assert p.clock.pending == 0  # nothing fell due
    # a source run before: its tree is not kept (on_tree is not called), and the cell is
    # counted and compared with the triggers' marks inside post_run_cell
    per_cell = [
        *("begin", "arm", "pre_run_cell", "transform_ast", "post_run_cell"),
        *("cell_done", "disarm"),
    ]
    assert ours == per_cell * 2
    # the objects these calls read and write are plain: no attribute of a HasTraits
    # object (about four times dearer) on the hot path
    for obj in (p.greed, p.greed.hooks, p.greed.stats.counts, p.greed.guarding.guard):
        assert not isinstance(obj, traitlets.HasTraits), type(obj)
    p.greed.unregister()
    nothing, detached_traits = counted(lambda code: p.shell.run_cell(code, store_history=True))
    assert nothing == []
    assert traits == detached_traits


def test_memory_is_looked_at_once_cells_may_have_filled_the_headroom(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greed_kernel.engine import triggers as triggers_module

    monkeypatch.setattr(triggers_module, "MEMORY_GROWTH_RATE", 1 << 30)  # 1 GiB/s
    p.settings.memory_limit = 1 << 30
    looks: list[float] = []
    monkeypatch.setattr(p.greed.probe, "pressure", lambda: looks.append(1) or 0.3)
    p.run("x = 1")  # looked at: 0.5 of 1 GiB left below the threshold, 0.5 s at 1 GiB/s
    stats = p.greed.stats
    for i in range(3):
        p.run(f"x = {i}")
    assert len(looks) == 1
    stats.counts.seconds += 0.4  # as if the cells had run 0.4 s: still not due
    p.run("x = 2")
    assert len(looks) == 1
    stats.counts.seconds += 0.1  # 0.5 s of cells: the headroom may be used up
    p.run("x = 3")
    assert len(looks) == 2
    p.settings.memory_limit = 2 << 30  # a new limit: looked at after the next cell
    p.run("x = 4")
    assert len(looks) == 3


def test_settings_changed_in_the_session_take_effect(p: InProcess) -> None:
    p.settings.memory_threshold = 0
    for i in range(3):
        p.run(f"a{i} = {i}")
    p.settings.cleanup_interval = 5  # as %config GreedKernel.cleanup_interval = 5 does
    p.run("a3 = 3")
    assert triggers(p, "execution:cleanup") == []
    p.run("a4 = 4")
    assert triggers(p, "execution:cleanup") == [("periodic", 5)]


def test_walks_over_the_namespace_skip_ipythons_history_names(
    p: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_i12 and _12 (one more per cell) are never classified by a cleanup or the
    variables view, so that cost does not grow with the session; what those walks
    give is unchanged."""
    from greed_kernel.engine.policy import Policy

    for i in range(30):
        p.run(f"value_{i} = {i}\n{i}")  # _iN and, with the output, _N
    assert {"_i12", "_12", "_ii"} <= set(p.ns)
    p.service.preserve(["value_3"])
    seen: list[str] = []
    classify, decide = Policy.classify, Policy.decide

    def spy_classify(self: Policy, name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        seen.append(name)
        return classify(self, name, *args, **kwargs)

    def spy_decide(self: Policy, name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        seen.append(name)
        return decide(self, name, *args, **kwargs)

    monkeypatch.setattr(Policy, "classify", spy_classify)
    monkeypatch.setattr(Policy, "decide", spy_decide)
    report = p.service.cleanup("manual")
    rows = {r["name"] for r in p.service.vars()}
    preserved = p.service.stats()["preservedVariables"]
    assert "value_0" in seen  # the user's names are still classified
    assert not [n for n in seen if re.fullmatch(r"_i{1,3}\d*|_\d+", n)], seen
    assert report is not None and "value_3" in preserved
    assert {f"value_{i}" for i in range(30)} <= rows
    assert not {"_i12", "_12"} & (rows | set(preserved))
