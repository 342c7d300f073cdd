"""While a cell runs: the memory guard, the memory timeline and this kernel's record.

* The guard (``memory/guard.py``) is armed when an execute request starts and
  disarmed when it ends; its readings go to the timeline (``memory/timeline.py``) and
  to this kernel's record (``session/record.py``), which the next kernel of the
  notebook reads if this one dies.
* After a cell the guard stopped, :meth:`Guarding.headline` words the line said
  under it; the out-of-memory recovery runs as after any ``MemoryError``.
* The timeline gets its markers from the engine's published events (a cleanup, a
  budget cleanup) and from the guard's stops, and answers the comm's ``memory``.
"""

from __future__ import annotations

import time
import typing as t

from ..memory.guard import MemoryGuard, MemoryLimitError
from ..memory.timeline import Timeline
from .component import Component, guarded
from .context import Context

if t.TYPE_CHECKING:
    from ..session.previous import PreviousKernel
    from ..session.record import KernelRecord

#: Published events whose report marks the timeline, and the trigger that makes a
#: cleanup a budget cleanup.
_MARKED = {"execution:cleanup": "cleanup"}
_BUDGET_TRIGGER = "memory"


class Guarding(Component):
    """The guard, the timeline and the record of one kernel (see the module docstring)."""

    def __init__(
        self, context: Context, record: KernelRecord | None = None, **kwargs: t.Any
    ) -> None:
        super().__init__(**kwargs)
        self.shell = context.shell
        self.probe = context.probe
        self.stats = context.stats
        self.store = context.store
        self.record = record
        #: the previous kernel of this notebook, if it died (session.record)
        self.previous: PreviousKernel | None = None
        self.timeline = Timeline()
        self._peak = 0
        run_code = getattr(type(self.shell), "run_code", None)
        hooks = context.hooks
        self.guard = MemoryGuard(
            self.probe.unreclaimable,
            self.probe.effective_limit,
            threshold=self.options.guard_threshold,
            cell=lambda: hooks.number,
            on_sample=self._sampled,
            user_code=getattr(run_code, "__code__", None),
            message=_error_message,
        )
        self._observed = hasattr(self.parent, "observe")
        if self._observed:
            self.parent.observe(self._threshold_changed, names=["guard_threshold"])

    # -- a cell ----------------------------------------------------------------------
    def headline(self, error: BaseException) -> str | None:
        """The start of the line under a cell the guard stopped (None for any other
        error), and the stop marked on the timeline."""
        if not isinstance(error, MemoryLimitError) or not self.guard.stops:
            return None
        stop = self.guard.stops[-1]
        self.timeline.mark("guard", stop.cell)
        return (
            f"Greed: stopped this cell at {_gib(stop.used)} of its {_gib(stop.limit)} limit, "
            "before the kernel would have been killed"
        )

    @guarded
    def _sampled(self, used: int, limit: int, cell: int, stopping: bool) -> None:
        """A reading of the guard (on its thread)."""
        self.timeline.sample(used)
        record = self.record
        if record is not None:
            self._peak = peak = max(self._peak, used)
            record.update(
                cell=cell,
                used=used,
                peak=peak,
                sampled_at=time.time(),
                stopping=stopping,
                limit=limit,
            )

    # -- the timeline ----------------------------------------------------------------
    @guarded
    def published(self, method: str, params: dict[str, t.Any]) -> None:
        """A published event (``events.publish``): cleanups mark the timeline."""
        kind = _MARKED.get(method)
        if kind is None:
            return
        report = params.get("report") or {}
        if report.get("trigger") == _BUDGET_TRIGGER:
            kind = "budget"
        self.timeline.paged = self.store.total_bytes()
        self.timeline.mark(kind, self.stats.execution_count)

    def memory(self) -> dict[str, t.Any]:
        """The comm's ``memory`` result: a reading now, then the whole timeline."""
        timeline = self.timeline
        timeline.paged = self.store.total_bytes()
        timeline.sample(self.probe.unreclaimable())
        options = self.options
        return {
            "limitBytes": self.probe.effective_limit(),
            "guardThreshold": options.guard_threshold,
            "memoryThreshold": options.memory_threshold,
            **timeline.to_json(),
            "guardStops": self.guard.stopped,
        }

    def status(self) -> dict[str, t.Any]:
        """The guard's part of ``%greed status``."""
        limit = self.probe.effective_limit()
        threshold = self.options.guard_threshold
        previous = self.previous
        return {
            "guardThreshold": threshold,
            "guardThresholdBytes": int(limit * threshold),
            "guardStops": self.guard.stopped,
            "previousKernel": None if previous is None else previous.message,
        }

    # -- wiring ----------------------------------------------------------------------
    def _threshold_changed(self, change: t.Any) -> None:
        self.guard.threshold = change["new"]

    def close(self, clean: bool = True) -> None:
        """Stop the guard; on a clean shutdown the record is marked done."""
        self.guard.close()
        if self._observed:
            self._observed = False
            self.parent.unobserve(self._threshold_changed, names=["guard_threshold"])
        if clean and self.record is not None:
            self.record.done()


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def _error_message(used: int, limit: int) -> str:
    return (
        f"greed stopped this cell at {_gib(used)} of its {_gib(limit)} memory limit, "
        "before the kernel would have been killed (GreedKernel.guard_threshold)"
    )
