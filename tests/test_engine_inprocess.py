"""The engine on a real in-process InteractiveShell: interrupts before the cell,
hostile metaclasses, and requests that must wait for a running cell."""

from __future__ import annotations

import gc
import logging
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from greed_kernel import engine as engine_module
from greed_kernel.engine import Engine
from greed_kernel.kernel import GreedKernel


class Settings:
    """GreedKernel's trait defaults as plain attributes."""

    def __init__(self, **overrides: t.Any) -> None:
        for name, trait in GreedKernel.class_own_traits(config=True).items():
            setattr(self, name, trait.default())
        self.__dict__.update(overrides)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    created = not InteractiveShell.initialized()
    c = Config()
    c.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=c)
    shell.reset(new_session=False)
    log = logging.getLogger(f"greed-inprocess-{tmp_path.name}")
    log.propagate = False
    errors = Errors()
    log.addHandler(errors)
    own_transform = shell.__dict__.get("transform_ast")
    e = Engine(shell, Settings(spill_dir=str(tmp_path), idle_timeout=0.0), log=log)
    e.errors = errors  # type: ignore[attr-defined]
    e.register()
    try:
        yield e
    finally:
        shell.events.unregister("pre_run_cell", e.pre_run_cell)
        shell.events.unregister("post_run_cell", e.post_run_cell)
        if own_transform is None:
            shell.__dict__.pop("transform_ast", None)
        else:
            shell.transform_ast = own_transform
        shell.reset(new_session=False)
        gc.collect()
        if created:
            InteractiveShell.clear_instance()


def run(engine: Engine, code: str) -> t.Any:
    result = engine.shell.run_cell(code, store_history=True)
    engine.after_execute()
    return result


def assert_interrupted(result: t.Any) -> None:
    """The cell failed with KeyboardInterrupt (IPython shows it like any interrupt)."""
    error = result.error_before_exec or result.error_in_exec
    assert not result.success and isinstance(error, KeyboardInterrupt), error


def test_an_interrupt_during_the_pre_cell_scan_stops_the_cell(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> t.NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.tracker, "touch", interrupted)
    assert_interrupted(engine.shell.run_cell("ran = True", store_history=True))
    assert "ran" not in engine.shell.user_ns


def test_an_interrupt_in_pre_run_cell_stops_the_cell(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython's event manager swallows what a callback raises: the engine stops the
    cell itself, at the tree hook, before any of its code runs."""
    calls = iter([KeyboardInterrupt, None])

    class Clock:
        """The engine module's `time`, whose first perf_counter() is interrupted
        (only the engine's: gc callbacks elsewhere read the real clock)."""

        monotonic = staticmethod(time.monotonic)
        time = staticmethod(time.time)

        @staticmethod
        def perf_counter() -> float:
            if next(calls, None) is KeyboardInterrupt:
                raise KeyboardInterrupt
            return time.perf_counter()

    monkeypatch.setattr(engine_module, "time", Clock)
    assert_interrupted(engine.shell.run_cell("ran = True", store_history=True))
    assert "ran" not in engine.shell.user_ns
    monkeypatch.undo()
    assert run(engine, "ran = True").success and engine.shell.user_ns["ran"] is True


def test_a_class_with_an_unhashable_metaclass_does_not_stop_tracking(engine: Engine) -> None:
    run(engine, "class Meta(type):\n    __hash__ = None\nclass C(metaclass=Meta):\n    pass\nx = 1")
    result = run(engine, "C\nx")
    assert result.success
    n = engine.shell.execution_count - 1
    assert engine.tracker.last["x"].execution == n and engine.tracker.last["C"].execution == n
    assert not engine.errors.records  # type: ignore[attr-defined]


def test_requests_wait_for_a_running_cell(engine: Engine) -> None:
    ran: list[str] = []
    engine.executing = True  # as the kernel's do_execute sets it, also while a cell awaits
    engine.when_no_cell(lambda: ran.append("cleanup"))
    assert ran == []
    engine.executing = False
    engine.after_execute()  # the kernel calls this once the reply is built
    assert ran == ["cleanup"]
    engine.when_no_cell(lambda: ran.append("now"))
    assert ran == ["cleanup", "now"]


def test_a_user_thread_pauses_paging(engine: Engine) -> None:
    pytest.importorskip("numpy")
    engine.config.recent_window = 0.0
    engine.config.evict_min_bytes = 1
    run(engine, "import numpy as np, threading\nbig = np.ones(1 << 20)\nstop = threading.Event()")
    run(engine, "worker = threading.Thread(target=stop.wait, name='users-worker')\nworker.start()")
    report = engine.cleanup("manual")
    assert report["paged"] == [] and "users-worker" in engine.paging_paused
    run(engine, "stop.set()\nworker.join()")
    report = engine.cleanup("manual")
    assert "big" in report["paged"] and engine.paging_paused == ""


def test_a_budget_that_cannot_be_held_is_explained_once_per_episode(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[dict[str, t.Any]] = []
    engine.publish = events.append
    run(engine, "junk = bytearray(64 << 20)")  # plain Python memory: never paged
    used = engine.probe.unreclaimable()
    engine.config.memory_limit = int(used / 0.9)  # pressure 0.9, above the 0.8 threshold
    capsys.readouterr()
    run(engine, "x = 1")
    err = capsys.readouterr().err
    assert "nothing more can be paged out" in err and "junk (64 MiB, bytearray)" in err
    (event,) = [e for e in events if e["event"] == "memory:pressure" and "holders" in e]
    assert event["holders"][0]["name"] == "junk"
    assert engine.budget_refusal is not None
    run(engine, "y = 2")  # the same episode: no second line
    assert "nothing more can be paged out" not in capsys.readouterr().err
    engine.config.memory_limit = used * 4  # pressure far below the watermark: episode over
    run(engine, "z = 3")
    assert engine.budget_refusal is None
