"""Triggers: when housekeeping runs. Every N executions, above a memory threshold,
after an idle timeout, and right after an out-of-memory error.

Two moments per user cell:
- :meth:`Triggers.cell_ended`, before the reply: only what must be under the cell it
  belongs to, the recovery after an out-of-memory error and its line.
- :meth:`Triggers.after_reply`, scheduled once the reply and the idle status are
  on their way: the memory budget (the pressure probe and, above
  ``memory_threshold``, the budget cleanup), the periodic cleanup and optimisation,
  the heap freeze check and the idle timer. Work here delays only a message that
  arrives while it runs.

The clock and the scheduler are injected, so tests drive time by hand.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

from .component import Component, Schedule, guarded, low_watermark
from .housekeeping import Housekeeping
from .memory import MemoryProbe
from .stats import Stats

#: Shortest wait before looking again when the idle timer fired too early.
IDLE_RECHECK = 0.05
#: Seconds of cell run time between two looks at the memory pressure. A cell cannot
#: fill memory faster than it can write it (about 10 GB/s), so between two looks
#: unreclaimable memory grows by at most some tens of MB; a run of trivial cells
#: (``x = 1``) is then probed every 20 cells or so instead of after each one.
PROBE_EVERY_CELL_SECONDS = 0.002


class Triggers(Component):
    """Decides when a cleanup or an optimisation is due, and asks housekeeping."""

    def __init__(
        self,
        housekeeping: Housekeeping,
        probe: MemoryProbe,
        stats: Stats,
        busy: Callable[[], bool],
        schedule: Schedule | None = None,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hk = housekeeping
        self.probe = probe
        self.stats = stats
        self.busy = busy  # a cell is running or awaiting
        self.schedule = schedule
        self._counted = 0  # execution count the periodic triggers last looked at
        self._idle_timer: t.Any = None
        self._idle_done = False
        self._pressure_at: tuple[int, float] | None = None  # (execution, pressure) last trigger
        self._probed_at: float | None = None  # stats.total_time at the last probe

    # -- per cell ----------------------------------------------------------------------
    @guarded
    def cell_ended(self, oom: bool) -> None:
        """Before the reply: the recovery after an out-of-memory error."""
        self._idle_done = False
        if oom and self.options.oom_recovery:
            self.hk.recover_from_oom()

    @guarded
    def after_reply(self) -> None:
        """After the reply: the periodic work that fell due, and the idle timer."""
        s, hk = self.options, self.hk
        before, n = self._counted, self.stats.execution_count
        self._counted = n
        if n == before:
            return  # nothing ran since (a request that waited for a cell)
        if hk.imports_to_freeze():
            hk.freeze_heap()  # the cell imported modules: they live as long as the kernel
        cleaned = _crossed(s.cleanup_interval, before, n)
        if cleaned:
            hk.cleanup("periodic")
        if _crossed(s.optimize_interval, before, n):
            hk.optimize("periodic", collect=not cleaned)
        last = self._probed_at
        if last is None or cleaned or self.stats.total_time - last >= PROBE_EVERY_CELL_SECONDS:
            self.check_pressure()
        self.arm_idle_timer()

    def due(self) -> bool:
        """Something is due after the cells that ran: a periodic trigger, the pressure
        probe, the idle timer to arm, or a heap freeze."""
        s = self.options
        before, n = self._counted, self.stats.execution_count
        last = self._probed_at
        return (
            _crossed(s.cleanup_interval, before, n)
            or _crossed(s.optimize_interval, before, n)
            or last is None
            or self.stats.total_time - last >= PROBE_EVERY_CELL_SECONDS
            or bool(s.idle_timeout and self.schedule is not None and self._idle_timer is None)
            or self.hk.imports_to_freeze()
        )

    def next_due(self, interval: int) -> int | None:
        """Executions until a periodic trigger with this interval fires (None: disabled)."""
        if not interval:
            return None
        return interval - self.stats.execution_count % interval

    # -- memory pressure -----------------------------------------------------------------
    def check_pressure(self) -> None:
        """The memory budget: above memory_threshold, a cleanup that pages out stale
        values, then the least recently used ones, down to memory_low_watermark; if
        that cannot be done, say so once per episode."""
        s, hk = self.options, self.hk
        self.probe.limit = s.memory_limit
        self._probed_at = self.stats.total_time
        pressure = self.probe.pressure()
        self.stats.memory_pressure = pressure
        if pressure <= low_watermark(s):
            self.stats.budget_refusal = None  # the episode is over
        if not s.memory_threshold or pressure <= s.memory_threshold:
            return
        n = self.stats.execution_count
        last = self._pressure_at
        if (
            self.stats.budget_refusal is not None
            and last is not None
            and n - last[0] < s.pressure_cooldown
            and pressure <= last[1] + 0.01
        ):
            return  # nothing could be paged last time, and nothing grew since
        self._pressure_at = (n, pressure)
        self.log.info("greed: memory pressure %.2f above %.2f", pressure, s.memory_threshold)
        hk.emit("memory:pressure", {"stats": hk.snapshot()})
        hk.cleanup("memory")
        hk.optimize("memory", collect=False)
        pressure = self.probe.pressure()
        self.stats.memory_pressure = pressure
        if pressure > s.memory_threshold:
            hk.refuse(pressure)

    # -- idle ----------------------------------------------------------------------------
    def arm_idle_timer(self) -> None:
        timeout = self.options.idle_timeout
        if timeout and self.schedule is not None and self._idle_timer is None:
            self._idle_timer = self.schedule(timeout, self.on_idle)

    @guarded
    def on_idle(self) -> None:
        self._idle_timer = None
        timeout = self.options.idle_timeout
        if not timeout or self._idle_done:
            return
        idle = self.clock() - self.stats.last_end
        if self.busy() or idle < timeout:
            # a cell is running (or awaiting), or one ran since: wait for the rest
            if self.schedule is not None:
                self._idle_timer = self.schedule(max(timeout - idle, IDLE_RECHECK), self.on_idle)
            return
        self._idle_done = True
        self.hk.cleanup("idle")
        self.hk.optimize("idle", collect=False)
        self.check_pressure()


def _crossed(interval: int, before: int, now: int) -> bool:
    """A multiple of *interval* lies in (before, now]: the periodic trigger is due."""
    return bool(interval) and now // interval > before // interval
