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

from . import __version__

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


class Stats:
    """Counters the engine updates; :meth:`snapshot` gives the STATS dict."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # monotonic seconds (tests inject their own)
        self.execution_count = 0
        self.total_time = 0.0  # seconds spent in user cells
        self.last_end = clock()  # when the last execution ended
        self.memory_pressure = 0.0
        self.cleanup_count = 0
        self.optimize_count = 0
        self.last_cleanup: int | None = None
        #: The budget episode in progress (pressure above memory_threshold) that could
        #: not be held, as %greed status shows it; None once pressure is back down.
        self.budget_refusal: dict[str, t.Any] | None = None
        self.reports: collections.deque[dict[str, t.Any]] = collections.deque(maxlen=MAX_REPORTS)

    def record_execution(self, seconds: float, now: float | None = None) -> int:
        """A user cell ran for *seconds* and ended at *now* (the clock's time)."""
        self.execution_count += 1
        self.total_time += seconds
        self.last_end = self.clock() if now is None else now
        return self.execution_count

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
