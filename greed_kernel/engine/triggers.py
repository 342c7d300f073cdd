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

import math
import sys
import typing as t
from collections.abc import Callable

from .component import Component, Schedule, guarded, low_watermark
from .context import Context
from .housekeeping import Housekeeping

#: Shortest wait before looking again when the idle timer fired too early.
IDLE_RECHECK = 0.05
#: Seconds with no cell running or ending after which an owed full collection runs
#: (housekeeping collected only the young generations; see Housekeeping.collect).
QUIET_SECONDS = 2.0
#: Fewest seconds of cell run time between two looks at the memory pressure.
PROBE_EVERY_CELL_SECONDS = 0.002
#: Most seconds of cell run time between two looks, however far the threshold is.
PROBE_AT_MOST_EVERY_SECONDS = 1.0
#: Fastest growth of unreclaimable memory assumed while cells run, in bytes per
#: second: a page counts once it is written, and page faults plus zeroing do not fill
#: memory faster than this even with many threads. Between two looks memory then
#: cannot cross ``memory_threshold`` unnoticed: the next look is due after
#: ``headroom / MEMORY_GROWTH_RATE`` seconds of cells (at least
#: PROBE_EVERY_CELL_SECONDS, at most PROBE_AT_MOST_EVERY_SECONDS). At 10% of 23 GiB
#: that is a look every second of cells (some hundreds of ``x = 1`` cells); near the
#: threshold, after every cell.
MEMORY_GROWTH_RATE = 32 << 30

#: The traits that decide when work is due (their changes recompute it).
_WHEN = ("cleanup_interval", "optimize_interval", "idle_timeout", "gc_freeze")
_MEMORY = ("memory_threshold", "memory_limit")


class Triggers(Component):
    """Decides when a cleanup or an optimisation is due, and asks housekeeping.

    It sets the marks of :class:`~greed_kernel.engine.stats.CellCounts` that the hooks
    compare with after every cell: numbers worked out in advance (when work ran, or a
    setting changed), so that no cell reads a setting.
    """

    def __init__(
        self,
        context: Context,
        housekeeping: Housekeeping,
        busy: Callable[[], bool],
        schedule: Schedule | None = None,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hk = housekeeping
        self.probe = context.probe
        self.stats = stats = context.stats
        self.busy = busy  # a cell is running or awaiting
        self.schedule = schedule
        self._counted = 0  # execution count the periodic triggers last looked at
        self._idle_timer: t.Any = None
        self._quiet_timer: t.Any = None
        self._idle_done_at = -1  # execution count of the last idle cleanup
        self._pressure_at: tuple[int, float] | None = None  # (execution, pressure) last trigger
        #: the cells' counts, and when work is next due (the marks set here)
        self.counts = stats.counts
        self._watching = False
        self._watch(True)

    def _watch(self, on: bool) -> None:
        parent = self.parent
        if hasattr(parent, "observe") and on != self._watching:
            self._watching = on
            if on:
                parent.observe(self._settings_changed, names=[*_WHEN, *_MEMORY])
            else:
                parent.unobserve(self._settings_changed, names=[*_WHEN, *_MEMORY])
        self._plan()

    def _settings_changed(self, change: t.Any) -> None:
        if change["name"] in _MEMORY:
            self.counts.due_seconds = 0.0  # look at once with the new limit or threshold
        self._plan()

    def close(self) -> None:
        """Stop watching the settings (the engine shuts down)."""
        self._watch(False)

    def _plan(self) -> None:
        """When the periodic triggers are next due, whether the idle timer is to be
        armed, and whether heaps are frozen: the marks the cells are compared with."""
        s, counts = self.options, self.counts
        after = [
            _next_multiple(i, self._counted) for i in (s.cleanup_interval, s.optimize_interval)
        ]
        counts.due_executions = min(after, default=math.inf)
        counts.idle_to_arm = bool(
            s.idle_timeout and self.schedule is not None and self._idle_timer is None
        )
        counts.freeze_check = self.hk.imports_to_freeze if s.gc_freeze else None

    # -- per cell ----------------------------------------------------------------------
    @guarded
    def cell_ended(self, oom: bool, headline: str | None = None) -> None:
        """Before the reply: the recovery after an out-of-memory error. *headline*: the
        guard stopped the cell, and the line under it starts so."""
        if oom and self.options.oom_recovery:
            self.hk.recover_from_oom(headline)
        elif headline:
            print(f"{headline}; your variables are intact.", file=sys.stderr)

    @guarded
    def after_reply(self) -> None:
        """After the reply: the periodic work that fell due, and the idle timer."""
        s, hk = self.options, self.hk
        before, n = self._counted, self.stats.execution_count
        if n == before:
            return  # nothing ran since (a request that waited for a cell)
        self._counted = n
        try:
            if hk.imports_to_freeze():
                hk.freeze_heap()  # the cell imported modules: they live as long as the kernel
            cleaned = _crossed(s.cleanup_interval, before, n)
            if cleaned:
                hk.cleanup_in_slices("periodic")  # its collection comes in a later slice
            if _crossed(s.optimize_interval, before, n):
                hk.optimize("periodic", collect=not cleaned)
            if cleaned or self.counts.seconds >= self.counts.due_seconds:
                self.check_pressure()
            self.arm_idle_timer()
            self.arm_quiet_timer()
        finally:
            self._plan()

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
        pressure = self.probe.pressure()
        self.stats.memory_pressure = pressure
        self._next_look(pressure)
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
        self._next_look(pressure)
        if pressure > s.memory_threshold:
            hk.refuse(pressure)

    def _next_look(self, pressure: float) -> None:
        """The next look at the pressure: once the cells may have filled the headroom
        left below the threshold (see MEMORY_GROWTH_RATE)."""
        threshold = self.options.memory_threshold or 1.0
        headroom = max(threshold - pressure, 0.0) * self.probe.effective_limit()
        wait = min(headroom / MEMORY_GROWTH_RATE, PROBE_AT_MOST_EVERY_SECONDS)
        self.counts.due_seconds = self.counts.seconds + max(wait, PROBE_EVERY_CELL_SECONDS)

    # -- idle ----------------------------------------------------------------------------
    def arm_idle_timer(self) -> None:
        timeout = self.options.idle_timeout
        if timeout and self.schedule is not None and self._idle_timer is None:
            self._idle_timer = self.schedule(timeout, self.on_idle)
        self.counts.idle_to_arm = False

    def arm_quiet_timer(self) -> None:
        """A full collection is owed: run it at the next quiet moment (on_quiet)."""
        if self.hk.full_owed and self.schedule is not None and self._quiet_timer is None:
            self._quiet_timer = self.schedule(QUIET_SECONDS, self.on_quiet)

    @guarded
    def on_quiet(self) -> None:
        """The owed full collection, once no cell has run or ended for QUIET_SECONDS:
        back-to-back cells put it off, so that no cell waits for it."""
        self._quiet_timer = None
        if not self.hk.full_owed:
            return
        quiet = self.clock() - self.stats.last_end
        if self.busy() or quiet < QUIET_SECONDS:
            if self.schedule is not None:
                wait = max(QUIET_SECONDS - quiet, IDLE_RECHECK)
                self._quiet_timer = self.schedule(wait, self.on_quiet)
            return
        collected = self.hk.collect_full()
        self.log.info(
            "greed: full collection at a quiet moment: %d objects in %.1f ms",
            collected,
            self.hk.full_collection_s * 1000.0,
        )

    @guarded
    def on_idle(self) -> None:
        self._idle_timer = None
        try:
            self._on_idle()
        finally:
            self._plan()  # no timer left: armed again after the next cell

    def _on_idle(self) -> None:
        timeout = self.options.idle_timeout
        if not timeout or self._idle_done_at == self.stats.execution_count:
            return  # disabled, or no cell ran since the last idle cleanup
        idle = self.clock() - self.stats.last_end
        if self.busy() or idle < timeout:
            # a cell is running (or awaiting), or one ran since: wait for the rest
            if self.schedule is not None:
                self._idle_timer = self.schedule(max(timeout - idle, IDLE_RECHECK), self.on_idle)
            return
        self._idle_done_at = self.stats.execution_count
        self.hk.cleanup("idle")
        self.hk.optimize("idle", collect=False)
        self.check_pressure()


def _next_multiple(interval: int, count: int) -> float:
    """The first multiple of *interval* above *count* (infinity: disabled)."""
    return (count // interval + 1) * interval if interval else math.inf


def _crossed(interval: int, before: int, now: int) -> bool:
    """A multiple of *interval* lies in (before, now]: the periodic trigger is due."""
    return now >= _next_multiple(interval, before)
