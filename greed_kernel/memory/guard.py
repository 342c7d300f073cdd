"""The memory guard: while a cell runs, stop it before the kernel's memory reaches its
limit, so that the kernel is not killed.

How it works:

* A daemon thread watches while cells run: :meth:`MemoryGuard.arm` and
  :meth:`MemoryGuard.disarm` write one attribute each. The thread goes on reading for
  ``LINGER`` seconds after a cell, so that back-to-back cells never wake it, then
  sleeps on a lock, which the next ``arm`` releases.
* While it watches, the thread reads the kernel's non-reclaimable memory (RssAnon +
  RssShmem of the kernel and its children, ``MemoryProbe.unreclaimable``: one
  ``pread`` of ``/proc/self/statm``). It reads again before memory could cover the
  distance to the threshold at ``GROWTH_RATE`` (counting the wait for the GIL): every
  100 ms far from the limit, every millisecond close to it.
* Once memory is at ``threshold`` of the limit (and has grown by a step since the
  cell started, or since the last stop), it raises :class:`MemoryLimitError`, a
  ``MemoryError``, in the main thread with ``PyThreadState_SetAsyncExc``: the cell
  stops as on Ctrl-C, at its next bytecode, with its partial effects kept.
* It raises only while the main thread runs the user's code (the cell's module code
  that IPython's ``run_code`` runs, or what it calls), and only if the main thread is
  still in the frame it looked at: the check and the raise happen in one section of C
  calls (``pageio.run_section``), so the error can never land in the kernel's own
  machinery after the cell, nor in IPython showing a traceback.

Where it cannot act: an exception is delivered only between bytecodes, so a single C
call that allocates more than is left (one ``torch.ones`` of 3 GiB under a 1.5 GiB
limit) runs to its end, and the kernel may be killed meanwhile; a main thread blocked
in a call that waits (a lock, a socket) is stopped when that call returns. The guard
then says, through ``on_sample``'s *stopping*, that it has asked a cell to stop that
has not stopped yet (the death record keeps it).
"""

from __future__ import annotations

import ctypes
import logging
import operator
import os
import sys
import threading
import time
import types
import typing as t
from collections.abc import Callable

from . import pageio

log = logging.getLogger(__name__)

__all__ = ["GROWTH_RATE", "MemoryGuard", "MemoryLimitError", "Stop"]

#: Fastest growth of non-reclaimable memory the guard plans for, in bytes per second
#: (this machine fills fresh memory at up to about 7 GiB/s from one thread).
GROWTH_RATE = 16 << 30
#: Shortest and longest wait between two readings while a cell runs, in seconds.
FASTEST_POLL = 0.001
SLOWEST_POLL = 0.1
#: Least growth, in bytes, that counts as "still growing" after a stop.
MIN_STEP = 8 << 20
#: Seconds the thread goes on reading after a cell ends, so that at machine pace the
#: next cell finds it awake (no wake-up per cell); then it sleeps until a cell starts.
LINGER = 1.0


class MemoryLimitError(MemoryError):
    """Raised in a running cell by greed's memory guard: the kernel's memory reached
    ``GreedKernel.guard_threshold`` of its limit, and the cell was stopped before the
    kernel would have been killed."""

    #: the sentence of the last stop (set just before it is raised: the raise passes a
    #: class, which Python instantiates without arguments)
    message = "the kernel's memory reached its guard threshold"

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (type(self).message,)))


class Stop(t.NamedTuple):
    """A stop the guard asked for: the cell, memory then, the limit."""

    cell: int
    used: int
    limit: int


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int


class MemoryGuard:
    """Watches memory while a cell runs; see the module docstring.

    *read* returns the non-reclaimable bytes, *limit* the effective limit and *cell*
    the number of the cell running (or of the last one); they are called on the
    guard's thread and must not raise. *on_sample(used, limit, cell,
    stopping)* is called on that thread after each reading. *user_code* is the code
    object below which the main thread runs the user's code (IPython's ``run_code``);
    None: anywhere. *message(used, limit)* words the error."""

    def __init__(
        self,
        read: Callable[[], int],
        limit: Callable[[], int],
        *,
        threshold: float = 0.95,
        cell: Callable[[], int] = lambda: 0,
        on_sample: Callable[[int, int, int, bool], None] | None = None,
        user_code: types.CodeType | None = None,
        message: Callable[[int, int], str] | None = None,
    ) -> None:
        self.read = read
        self.limit = limit
        self.threshold = threshold
        self.cell = cell
        self.on_sample = on_sample
        self.user_code = user_code
        self.message = message or _default_message
        self.main = threading.main_thread().ident or 0
        #: the stops asked for, newest last (a bounded list)
        self.stops: list[Stop] = []
        self.stopped = 0  # stops asked for in this process
        self._poke = threading.Lock()  # released: wake the thread (see _sleep)
        self._poke.acquire()
        self._armed = 0  # token of the armed cell, 0 when disarmed
        self._token = 0
        self._sleeping = False  # the thread waits for a cell to start (see _sleep)
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the main thread -------------------------------------------------------------
    def arm(self) -> None:
        """A cell starts (called on the main thread): an attribute write, and a lock
        release only when the thread sleeps (no cell for LINGER seconds)."""
        if self.threshold <= 0.0 or self._closed:
            return
        self._token += 1
        self._armed = self._token
        if self._thread is None:
            self._start()
        elif self._sleeping:
            self._wake()

    def disarm(self) -> None:
        """The cell has ended (the main thread): an attribute write."""
        self._armed = 0

    def close(self) -> None:
        """Stop the thread (the kernel shuts down)."""
        self._closed = True
        self._armed = 0
        self._wake()

    def _wake(self) -> None:
        try:  # noqa: SIM105 (the hot path: contextlib.suppress costs a microsecond)
            self._poke.release()
        except RuntimeError:  # a wake is pending already
            pass

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="greed-memory-guard", daemon=True)
        self._thread = thread
        thread.start()

    # -- the guard's thread ----------------------------------------------------------
    def _sleep(self) -> None:
        """Sleep until a cell starts (or close). The flag goes up before the last look
        at ``_armed``: an arm() either sees it and wakes us, or is seen here."""
        self._sleeping = True
        if not self._armed and not self._closed:
            self._poke.acquire()
        self._sleeping = False

    def _run(self) -> None:
        while not self._closed:
            try:
                self._watch()
            except Exception:
                log.exception("greed: the memory guard failed; it watches again next cell")
                while self._armed and not self._closed:  # not this cell again
                    self._poke.acquire(True, SLOWEST_POLL)
                self._sleep()

    def _sample(self, used: int, limit: int, stopping: bool) -> None:
        if self.on_sample is not None:
            try:
                self.on_sample(used, limit, self.cell(), stopping)
            except Exception:
                log.exception("greed: recording a memory sample failed")

    def _watch(self) -> None:
        """Read and compare, cell after cell, until no cell has run for LINGER seconds."""
        token = -1  # the cell being watched (0: none)
        start = fired_at = -1
        stopping = False
        active = time.monotonic()
        while not self._closed:
            armed = self._armed
            if armed != token:  # a cell started or ended since the last reading
                token, start, fired_at, stopping = armed, -1, -1, False
            used, limit = self.read(), self.limit()
            threshold = int(limit * self.threshold) if limit > 0 else 0
            if armed:
                active = time.monotonic()
                if start < 0:
                    start = used
                step = max(MIN_STEP, (limit - threshold) // 4)
                if (
                    threshold > 0
                    and used >= threshold
                    and used >= start + step
                    and used >= fired_at + step
                    and self._fire(armed, used, limit)
                ):
                    fired_at = used
                    stopping = True
                elif stopping and fired_at >= 0 and used < fired_at - step:
                    stopping = False  # it stopped, and let go of the memory
            self._sample(used, limit, stopping)
            if not armed and time.monotonic() - active > LINGER:
                self._sleep()
                active = time.monotonic()
                continue
            # the next reading: before memory could reach the threshold, counting the
            # wait for the GIL (up to a switch interval when the main thread runs
            # bytecode); between cells too, since the next one may start at any moment
            gap = threshold - used if used < threshold else 0
            wait = gap / GROWTH_RATE - sys.getswitchinterval()
            self._poke.acquire(True, min(max(wait, FASTEST_POLL), SLOWEST_POLL))

    def _fire(self, token: int, used: int, limit: int) -> bool:
        """Raise MemoryLimitError in the main thread if it runs the user's code. The
        raise checks, from C, that the main thread is still in the frame that was
        looked at (it cannot run meanwhile). Whether it was raised."""
        frame = sys._current_frames().get(self.main)
        if frame is None or not _in_user_code(frame, self.user_code) or self._armed != token:
            return False
        MemoryLimitError.message = self.message(used, limit)
        steps = [_still_in(self.main, frame), (_set_async_exc, self.main, MemoryLimitError)]
        try:
            pageio.run_section(steps)
        except pageio.SectionAborted:
            return False  # it ran on: look again at the next reading
        self.stops = [*self.stops[-15:], Stop(self.cell(), used, limit)]
        self.stopped += 1
        return True


def _still_in(ident: int, frame: types.FrameType) -> tuple[t.Any, ...]:
    """A section step that raises KeyError unless thread *ident* runs *frame* now."""
    now = map(operator.itemgetter(ident), map(operator.call, [sys._current_frames]))
    return (list, map({frame: None}.__getitem__, now))


#: Our own code: the guard never stops a cell inside it (a weakref callback of the
#: paging table, say, that runs under the user's frames).
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _in_user_code(frame: types.FrameType, marker: types.CodeType | None) -> bool:
    """Whether *frame* (the main thread's innermost) runs the user's code: the code
    *marker*'s frame runs (a module's code: the cell) or code it calls, however deep;
    not *marker*'s frame itself nor anything else it calls (IPython showing a
    traceback), and not greed's."""
    child = None
    while frame is not None:
        code = frame.f_code
        if code is marker:
            return child is not None and child.co_name == "<module>"
        if code.co_filename.startswith(_OURS):
            return False
        child = code
        frame = frame.f_back  # type: ignore[assignment]
    return marker is None


def _default_message(used: int, limit: int) -> str:
    gib = 1 << 30
    return (
        f"greed stopped this cell at {used / gib:.2f} GiB of its {limit / gib:.2f} GiB "
        "memory limit, before the kernel would have been killed"
    )
