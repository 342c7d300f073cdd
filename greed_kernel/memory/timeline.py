"""The kernel's memory over time: a bounded ring of samples and markers.

Samples come from the memory guard while cells run, from the engine's looks at the
pressure and from whoever asks for the timeline (the JupyterLab panel's ``memory``
request); markers from the engine when a cleanup, a budget cleanup or a guard stop
happens. Samples closer together than ``every`` seconds share one slot, which keeps
the highest reading: a peak is never averaged away, and a fast loop cannot push the
last minutes out of the ring.

Two threads write (the guard's and the main thread), so one lock guards the ring;
a write costs about a microsecond.
"""

from __future__ import annotations

import collections
import threading
import time
import typing as t
from collections.abc import Callable

__all__ = ["MARKER_KINDS", "Timeline"]

#: What a marker marks (the comm's ``MemoryMarker.kind``).
MARKER_KINDS = ("cleanup", "budget", "guard")


class Timeline:
    """Samples ``(t, unreclaimable, paged)`` and markers ``(t, kind, cell)``, oldest first."""

    __slots__ = ("_lock", "_markers", "_samples", "clock", "every", "paged")

    def __init__(
        self,
        samples: int = 1024,
        markers: int = 256,
        every: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._samples: collections.deque[list[float]] = collections.deque(maxlen=samples)
        self._markers: collections.deque[tuple[float, str, int]] = collections.deque(maxlen=markers)
        self._lock = threading.Lock()
        self.every = float(every)
        self.clock = clock
        #: paged-out bytes as last known: paging happens between cells, and the engine
        #: sets this after it pages (reading the paging table from the guard's thread
        #: would race with the main thread's paging)
        self.paged = 0

    def sample(self, unreclaimable: int, now: float | None = None) -> None:
        """Record a reading of the kernel's non-reclaimable memory."""
        now = self.clock() if now is None else now
        samples = self._samples
        with self._lock:
            if samples:
                last = samples[-1]
                if 0.0 <= now - last[0] < self.every:
                    if unreclaimable > last[1]:
                        last[1] = unreclaimable
                    last[2] = self.paged
                    return
            samples.append([now, unreclaimable, self.paged])

    def mark(self, kind: str, cell: int, now: float | None = None) -> None:
        """Record that a cleanup (``cleanup``), a budget cleanup (``budget``) or a guard
        stop (``guard``) happened after cell *cell*."""
        if kind not in MARKER_KINDS:
            raise ValueError(f"unknown marker kind {kind!r}")
        now = self.clock() if now is None else now
        with self._lock:
            self._markers.append((now, kind, int(cell)))

    def to_json(self) -> dict[str, list[dict[str, t.Any]]]:
        """The samples and markers as the comm's ``MemoryTimeline`` lists them."""
        with self._lock:
            samples = [list(s) for s in self._samples]
            markers = list(self._markers)
        return {
            "samples": [
                {"t": at, "unreclaimableBytes": int(used), "pagedBytes": int(paged)}
                for at, used, paged in samples
            ],
            "markers": [
                {"t": at, "kind": kind, "executionCount": cell} for at, kind, cell in markers
            ],
        }
