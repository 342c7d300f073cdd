"""Release as you go: old large outputs and the stored error, after the cell that made
them old, without waiting for the periodic cleanup.

* ``Out[n]`` (and ``_n``) holding a value of at least ``evict_min_bytes`` is released
  once ``output_cache_keep`` cells have ended since cell n, unless a later cell
  touched ``_n`` or ``Out`` (the tracker's stamps). Where ``_``/``__``/``___`` or the
  last result still hold it (cells since displayed nothing), it is looked at again
  ``output_cache_keep`` cells later (``cleaner.release_output``).
* The stored error (``sys.last_*``, IPython's traceback) is released once a later cell
  has ended without ``%tb``, ``%debug`` or pdb in its source; a collection of the young
  generations then frees its frames, which IPython holds in reference cycles, where
  they are still young; else the full collection owed to the next quiet moment does.

The hooks say when a cell put a result in the output cache (``cell_output``); the mark
``CellCounts.release_at`` says when work falls due, so a cell with nothing to release
costs one comparison. Each release is O(1) in the size of the namespace: one entry,
measured once (up to ``evict_min_bytes``), and two stamps looked up.
"""

from __future__ import annotations

import collections
import gc
import math
import typing as t

from ..memory.sizes import measure
from . import cleaner
from .component import Component, guarded
from .context import Context

#: A cell whose source has any of these may be looking at the stored error.
_DEBUGGING = ("tb", "debug", "pdb", "last_", "post_mortem", "xmode")


class Releases(Component):
    """Old outputs and the stored error, released after the cell that made them old."""

    def __init__(self, context: Context, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.shell = context.shell
        self.counts = context.stats.counts
        self.tracker = context.tracker
        #: (cell whose end makes it due, cell whose result went to the output cache),
        #: soonest first
        self.pending: collections.deque[tuple[int, int]] = collections.deque()
        self.error_cell = 0  # the cell whose error is stored (0: none known)
        self.outputs_released = 0  # in this process
        self.errors_released = 0

    def output(self, number: int) -> None:
        """Cell *number* put a result in the output cache (the hooks' cell_output)."""
        self.pending.append((number + self.options.output_cache_keep, number))
        self._mark()

    def error(self, number: int) -> None:
        """Cell *number* failed: its error is stored."""
        self.error_cell = number
        self._mark()

    def _mark(self) -> None:
        due = math.inf
        if self.pending:
            due = self.pending[0][0]
        if self.error_cell:
            due = min(due, self.error_cell + 1)
        self.counts.release_at = due

    @guarded
    def run(self, number: int) -> bool:
        """After cell *number* (after its reply, or before the next cell): what fell
        due. Whether the stored error was released (its frames may be old already: a
        full collection is then owed)."""
        released = False
        try:
            keep, pending = self.options.output_cache_keep, self.pending
            held = []
            while pending and pending[0][0] <= number:
                _, n = pending.popleft()
                if self._large(n) and not self._named_since(n):
                    if cleaner.release_output(self.shell, n):
                        self.outputs_released += 1
                    else:  # _, __, ___ hold it: they move on once cells display results
                        held.append((number + max(keep, 1), n))
            pending.extend(held)  # due after everything pending: the order holds
            if self.error_cell and number > self.error_cell:
                source = self.counts.source  # the last user cell's (number's)
                if not any(word in source for word in _DEBUGGING):
                    self.error_cell = 0
                    if cleaner.release_last_error(self.shell):
                        self.errors_released += 1
                        released = True
                        gc.collect(1)  # its frames are in cycles, young ones as a rule
        finally:
            self._mark()
        return released

    def _large(self, n: int) -> bool:
        oh = self.shell.user_ns.get("_oh")
        if not isinstance(oh, dict) or n not in oh:
            return False
        least = self.options.evict_min_bytes
        return measure(oh[n], enough=least).nbytes >= least

    def _named_since(self, n: int) -> bool:
        """A cell after *n* touched ``_n`` or ``Out`` (the tracker's stamps, which the
        engine brings up to date first)."""
        last = self.tracker.last
        return any(
            access is not None and access.execution > n
            for access in (last.get(f"_{n}"), last.get("Out"))
        )
