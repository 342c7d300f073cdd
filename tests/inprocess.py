"""The engine on a real in-process InteractiveShell, with a clock and a scheduler
driven by the test: no kernel process, no waiting for the wall clock.

    with InProcess(tmp_path, idle_timeout=300) as p:
        p.run("x = 1")             # a user cell, then what the kernel does after it
        p.clock.advance(301)       # the idle timer fires, in no time at all
"""

from __future__ import annotations

import copy
import gc
import heapq
import itertools
import logging
import math
import typing as t
from collections.abc import Callable
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config, Configurable

from greed_kernel.engine import triggers
from greed_kernel.engine.greed import AFTER_REPLY_DELAY, Greed
from greed_kernel.kernel import GreedKernel


def settings_class() -> type[Configurable]:
    """A Configurable with GreedKernel's traits (copies, with their defaults)."""
    traits = {
        name: copy.copy(trait) for name, trait in GreedKernel.class_own_traits(config=True).items()
    }
    return type("GreedSettings", (Configurable,), traits)


GreedSettings = settings_class()


class ManualClock:
    """A monotonic clock that moves only when told, and runs what falls due."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Callable[[], None]) -> tuple[float, int]:
        handle = (self.now + max(delay, 0.0), next(self._order))
        heapq.heappush(self._queue, (*handle, callback))
        return handle

    def advance(self, seconds: float = 0.0) -> int:
        """Move the clock and run every callback due by then, in order; how many ran."""
        end, ran = self.now + seconds, 0
        while self._queue and self._queue[0][0] <= end:
            due, _, callback = heapq.heappop(self._queue)
            self.now = max(self.now, due)
            callback()
            ran += 1
        self.now = end
        return ran

    @property
    def pending(self) -> int:
        return len(self._queue)


def only_new_threads(monkeypatch: t.Any) -> None:
    """Threads that the test runner or other tests of this process left running
    (pytest-xdist's execnet channel, jupyter_core's run_sync runner) do not pause
    paging: only the ones started from now on count."""
    import dataclasses

    from greed_kernel.memory import threads

    real = threads.judge
    before = set(real().blocking)

    def judge() -> threads.Judgement:
        found = real()
        old = {i for i in found.blocking if i in before}
        blocking = {i: d for i, d in found.blocking.items() if i not in old}
        return dataclasses.replace(found, blocking=blocking, exempt=found.exempt | old)

    monkeypatch.setattr(threads, "judge", judge)


class Errors(logging.Handler):
    """The errors our components logged (each is a failure of ours)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class InProcess:
    """A real InteractiveShell with Greed connected as the kernel connects it."""

    def __init__(
        self, paging_dir: Path | str, identity: str | None = None, **overrides: t.Any
    ) -> None:
        overrides.setdefault("idle_timeout", 0.0)
        # every cell's memory is looked at, however short it ran and however far the
        # threshold is (see MEMORY_GROWTH_RATE): tests that count looks say otherwise
        self._probe_every = triggers.PROBE_EVERY_CELL_SECONDS, triggers.MEMORY_GROWTH_RATE
        triggers.PROBE_EVERY_CELL_SECONDS = 0.0
        triggers.MEMORY_GROWTH_RATE = math.inf
        self.settings = GreedSettings(paging_dir=str(paging_dir), **overrides)
        self.clock = ManualClock()
        self.events: list[tuple[str, dict[str, t.Any]]] = []
        self._created = not InteractiveShell.initialized()
        c = Config()
        c.HistoryManager.hist_file = ":memory:"
        self.shell = InteractiveShell.instance(config=c)
        # the shell may be another test's: cells count from 1, in a history session of
        # their own (the same numbers again in one session make IPython print "ERROR!
        # Session/line number was not unique" into whichever cell writes them out)
        self.shell.reset(new_session=True)
        self.shell.execution_count = 1
        self.log = logging.getLogger(f"greed-inprocess-{Path(paging_dir).name}")
        self.log.propagate = False
        self.errors = Errors()
        self.log.addHandler(self.errors)
        self.greed = Greed(
            self.shell,
            parent=self.settings,
            log=self.log,
            clock=self.clock,
            schedule=self.clock.schedule,
            publish=lambda method, params: self.events.append((method, params)),
            identity=identity,
        )
        self.service = self.greed.service
        self.greed.register()

    def run(self, code: str, *, reply_sent: bool = True) -> t.Any:
        """One execute request: the cell, what comes before its reply, and (unless
        *reply_sent* is False) what the kernel schedules after it."""
        self.greed.begin()
        try:
            result = self.shell.run_cell(code, store_history=True)
        finally:
            self.greed.cell_done()
        if reply_sent:
            self.after_reply()
        return result

    def after_reply(self) -> int:
        """Let the time the kernel waits after a reply pass: what it scheduled runs."""
        return self.clock.advance(AFTER_REPLY_DELAY)

    def methods(self, method: str) -> list[dict[str, t.Any]]:
        return [params for m, params in self.events if m == method]

    @property
    def ns(self) -> dict[str, t.Any]:
        return self.shell.user_ns

    def close(self) -> None:
        triggers.PROBE_EVERY_CELL_SECONDS, triggers.MEMORY_GROWTH_RATE = self._probe_every
        self.greed.shutdown()
        self.shell.reset(new_session=False)
        gc.collect()
        if self._created:
            InteractiveShell.clear_instance()

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
