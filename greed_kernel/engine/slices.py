"""Work in slices: a generator's steps, run on the kernel's event loop a few ms at a
time, so that a cell sent meanwhile waits for one slice at most, not for the work.

A :class:`Slices` runs one piece of work at a time: a generator whose steps yield
``None`` (the slice may go on while its time lasts) or ``True`` (the slice ends here:
the next step is long, and gets a slice of its own). Between two slices the event
loop turns, and an execute request that came in runs first. What happens to the work when
a cell ran in between is the work's choice:

* ``drop`` (a checkpoint): it is abandoned when the cell starts (:meth:`cell_starts`),
  before the cell's code runs; ``dropped`` is called, to start it again after the cell.
  A work started with ``hold`` (an overdue checkpoint) is finished there instead, and
  the cell waits for it;
* ``wait`` (a cleanup's page-outs): it goes on after the cell, once its reply is on its
  way; the steps look again at what the cell may have changed, and hold no value
  in between. Cells sent back to back
  do not starve it: it waits for one reply, then takes a slice between two cells.

Without a scheduler (tests, the kernel's shutdown), :meth:`Slices.finish` runs what is
left at once.
"""

from __future__ import annotations

import logging
import time
import typing as t
from collections.abc import Callable, Iterator

from .component import Schedule

#: Seconds of work between two turns of the event loop.
SLICE_SECONDS = 0.005
#: Seconds a slice waits after a cell ended: the reply and the idle status go first.
AFTER_CELL_DELAY = 0.002
#: Seconds between two looks while a cell is running or awaiting.
BUSY_RECHECK = 0.05


class Slices:
    """One generator of work at a time, run a slice at a time on the event loop."""

    def __init__(
        self,
        schedule: Schedule | None,
        busy: Callable[[], bool],
        executions: Callable[[], int],
        log: logging.Logger,
        *,
        on_cell: t.Literal["drop", "wait"],
        seconds: float = SLICE_SECONDS,
        pause: float = 0.0,
    ) -> None:
        self.schedule = schedule
        self.busy = busy
        self.executions = executions
        self.log = log
        self.on_cell = on_cell
        self.seconds = seconds  # of work per slice
        self.pause = pause  # seconds between two slices (the loop turns anyway)
        #: the generator of the work left; None: none (the hot path reads it)
        self.work: Iterator[bool | None] | None = None
        self._at = -1  # the execution count the last slice saw
        self._deferred = False  # the next slice waited once for a cell's reply
        self._hold = False  # a cell that starts finishes the work instead of dropping it
        self._done: Callable[[], None] | None = None
        self._failed: Callable[[BaseException], None] | None = None
        self._dropped: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        return self.work is not None

    def start(
        self,
        steps: Iterator[bool | None],
        *,
        done: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        dropped: Callable[[], None] | None = None,
        hold: bool = False,
    ) -> None:
        """Run *steps*: the first slice now (the caller chose the moment: after a reply,
        or before a cell's code), the rest on later turns of the loop (all at once
        without a scheduler). A work still running is finished first. *hold*: a cell
        that starts meanwhile waits for the rest, which runs before its code."""
        self.finish()
        self.work, self._at = steps, self.executions()
        self._deferred, self._hold = False, hold
        self._done, self._failed, self._dropped = done, failed, dropped
        if self.schedule is None:
            self.finish()
        elif self._run(time.perf_counter() + self.seconds):
            self._later(self.pause)

    def finish(self) -> None:
        """Run what is left of the work now, whole (a cleanup that cannot wait)."""
        while self.work is not None:
            self._run(None)

    def cell_starts(self) -> None:
        """An execute request starts: a work that drops on a cell is dropped now, before
        the cell's code runs. Such a work holds values (a checkpoint's): a value the
        cell deletes must die at its ``del``, as on python3. A held work is finished."""
        if self.work is not None and self.on_cell == "drop":
            if self._hold:
                self.finish()
            else:
                self._drop()

    def cancel(self) -> None:
        """Drop the work without its ending (the kernel shuts down)."""
        steps, self.work = self.work, None
        if steps is not None:
            steps.close()

    def _slice(self) -> None:
        if self.work is None:
            return
        if self.busy():
            if self.on_cell == "drop":
                self._drop()
            else:
                self._later(BUSY_RECHECK)
            return
        if self.executions() != self._at:
            if self.on_cell == "drop":
                self._drop()
                return
            if not self._deferred:  # a cell ended since: its reply first, once
                self._deferred = True
                self._later(AFTER_CELL_DELAY)
                return
            self._at = self.executions()  # cells back to back: a slice between two
        self._deferred = False
        if self._run(time.perf_counter() + self.seconds):
            self._later(self.pause)

    def _drop(self) -> None:
        dropped = self._dropped
        self.cancel()
        if dropped is not None:
            self._call(dropped)

    def _run(self, until: float | None) -> bool:
        """Steps until *until* (perf_counter; None: to the end). Whether work is left."""
        steps = self.work
        assert steps is not None
        error: Exception | None = None
        try:
            while True:
                alone = next(steps)
                if until is not None and (alone or time.perf_counter() >= until):
                    return True
        except StopIteration:
            pass
        except Exception as e:
            error = e
        self.work = None
        done, failed = self._done, self._failed
        if error is None:
            if done is not None:
                self._call(done)
        elif failed is None:
            self.log.error("greed: work in slices failed", exc_info=error)
        else:
            self._call(lambda: failed(error))
        return False

    def _later(self, delay: float) -> None:
        assert self.schedule is not None
        self.schedule(delay, self._slice)

    def _call(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            self.log.exception("greed: the end of work in slices failed")


class Stopwatch:
    """Seconds of work in a generator, not counting where it waited at a yield."""

    def __init__(self) -> None:
        self._total = 0.0
        self._mark = time.perf_counter()

    def paused(self, alone: bool = False) -> Iterator[bool | None]:
        """A yield point; *alone*: what follows gets a slice of its own."""
        self._total += time.perf_counter() - self._mark
        yield alone or None
        self._mark = time.perf_counter()

    def seconds(self) -> float:
        return self._total + time.perf_counter() - self._mark
