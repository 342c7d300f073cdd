"""Running statistics and JSON-clean reports.

Everything that leaves the kernel (comm events, ``%greed`` output, the client)
goes through :func:`json_clean`: plain numbers, strings, lists and dicts, no
NaN or infinity, long lists capped with a count of what was left out.
"""

from __future__ import annotations

import collections
import math
import time
import typing as t

from .. import __version__

#: Longest list of names sent in a message; the rest is counted, not listed.
MAX_NAMES = 200
#: Reports kept for ``%greed status`` and the comm's history.
MAX_REPORTS = 20


def capped(names: t.Iterable[str], limit: int = MAX_NAMES) -> tuple[list[str], int]:
    """The first *limit* names (sorted) and how many were left out."""
    items = sorted(names)
    return items[:limit], max(0, len(items) - limit)


def json_clean(value: t.Any, depth: int = 0) -> t.Any:
    """A copy of *value* made only of JSON types; non-finite floats become None."""
    if depth > 8:
        return None
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_clean(v, depth + 1) for v in items]
    return str(value)


class CellCounts:
    """What every user cell moves, and the marks it is compared with.

    :class:`~greed_kernel.engine.hooks.CellHooks` counts and times each user cell here and
    compares the result with the marks :class:`~greed_kernel.engine.triggers.Triggers` sets
    (when the periodic work, the next look at the memory pressure, the idle timer and
    the heap freeze are due) and with the one
    :class:`~greed_kernel.engine.releases.Releases` sets (an old output or the stored
    error to release). One plain object with slots, written in every cell: in a kernel,
    the memory a cell's hooks touch is cold after the messages between two cells, and
    each further object read costs a cache miss or more."""

    __slots__ = (
        "checkpoint_to_arm",
        "due_executions",
        "due_seconds",
        "executions",
        "freeze_check",
        "idle_to_arm",
        "last_end",
        "release_at",
        "seconds",
        "source",
    )

    def __init__(self, now: float) -> None:
        self.executions = 0  # user cells that ended
        self.seconds = 0.0  # their run time, in all
        self.last_end = now  # the clock's time when the last one ended
        self.source = ""  # its source as typed
        #: work is due once executions reach this (a periodic trigger) ...
        self.due_executions: float = 0
        #: ... or seconds reach this (the next look at the memory pressure) ...
        self.due_seconds = 0.0
        #: ... or after any cell: an idle timeout is set and no timer is armed ...
        self.idle_to_arm = False
        #: ... or after any cell: checkpoints are automatic and no timer is armed ...
        self.checkpoint_to_arm = False
        #: ... or when this says so (gc_freeze is on: the cell imported modules) ...
        self.freeze_check: t.Callable[[], bool] | None = None
        #: ... or once the cell numbered this ends: an old output or the stored error is
        #: to be released (engine.releases)
        self.release_at: float = math.inf


class Stats:
    """Counters the engine updates; :meth:`snapshot` gives the STATS dict. The cells'
    own counts are in :attr:`counts` (see :class:`CellCounts`)."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # monotonic seconds (tests inject their own)
        self.counts = CellCounts(clock())
        self.memory_pressure = 0.0
        self.cleanup_count = 0
        self.optimize_count = 0
        self.last_cleanup: int | None = None
        #: The budget episode in progress (pressure above memory_threshold) that could
        #: not be held, as %greed status shows it; None once pressure is back down.
        self.budget_refusal: dict[str, t.Any] | None = None
        self.reports: collections.deque[dict[str, t.Any]] = collections.deque(maxlen=MAX_REPORTS)

    @property
    def execution_count(self) -> int:
        """User cells that ended."""
        return self.counts.executions

    @property
    def total_time(self) -> float:
        """Seconds spent in user cells."""
        return self.counts.seconds

    @property
    def last_end(self) -> float:
        """When the last user cell ended (the clock's time)."""
        return self.counts.last_end

    def record_report(self, report: dict[str, t.Any]) -> None:
        if report["kind"] == "cleanup":
            self.cleanup_count += 1
            self.last_cleanup = report["executionCount"]
        elif report["kind"] == "optimize":
            self.optimize_count += 1
        self.reports.append(report)

    def last_report(self, kind: str) -> dict[str, t.Any] | None:
        return next((r for r in reversed(self.reports) if r["kind"] == kind), None)

    def snapshot(
        self,
        *,
        preserved: t.Iterable[str],
        rss: int,
        limit: int,
        cuda: list[dict[str, int]],
        extra: dict[str, t.Any] | None = None,
    ) -> dict[str, t.Any]:
        """The STATS dict: Greed.js's keys first, then ours."""
        names, omitted = capped(preserved)
        n = self.execution_count
        stats = {
            "executionCount": n,
            "avgExecutionTime": (self.total_time / n * 1000.0) if n else 0.0,
            "memoryPressure": min(1.0, max(0.0, self.memory_pressure)),
            "idleTime": max(0.0, (self.clock() - self.last_end) * 1000.0),
            "preservedVariables": names,
            "preservedVariablesOmitted": omitted,
            "cleanupCount": self.cleanup_count,
            "optimizeCount": self.optimize_count,
            "lastCleanup": self.last_cleanup,
            "rssBytes": rss,
            "memoryLimitBytes": limit,
            "cuda": cuda,
            "version": __version__,
        }
        if extra:
            stats.update(extra)
        return json_clean(stats)
