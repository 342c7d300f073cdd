"""The service: what the comm channel and the ``%greed`` magic may ask of the kernel.

A read-and-steer facade over the components (views, housekeeping, marks, the paged
store); each consumer sees it through its own narrow protocol (``channel.Service``,
``magics.GreedService``). Whatever reads the stamps first stamps what ran so far (from
a magic: the running cell's own trees too). It holds no state of its own but the text
of the last error as shown, which the engine hands it when a cell fails.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Iterable

from .hooks import CellHooks
from .housekeeping import Housekeeping
from .policy import Marks
from .stats import Stats
from .store import PagedValues
from .triggers import Triggers
from .views import Views


class Service:
    """Answers the comm channel and the magics (see the module's docstring)."""

    def __init__(
        self,
        parent: t.Any,
        hooks: CellHooks,
        views: Views,
        housekeeping: Housekeeping,
        triggers: Triggers,
        stats: Stats,
        marks: Marks,
        store: PagedValues,
        when_no_cell: Callable[[Callable[[], None]], None],
    ) -> None:
        self.parent = parent
        self.hooks = hooks
        self.views = views
        self.housekeeping = housekeeping
        self.triggers = triggers
        self.stats = stats
        self.marks = marks
        self.store = store
        #: Run a function now, or after the cell that is running (or awaiting) ends.
        self.when_no_cell = when_no_cell
        #: The last error's traceback as shown, for %tb once a cleanup released it.
        self.traceback: list[str] = []

    def snapshot(self) -> dict[str, t.Any]:
        self.hooks.stamp(running=True)
        return self.views.snapshot()

    def variables(self) -> list[dict[str, t.Any]]:
        self.hooks.stamp(running=True)
        return self.views.variables()

    def why(self, name: str) -> dict[str, t.Any]:
        self.hooks.stamp(running=True)
        return self.views.why(name)

    def status(self) -> dict[str, t.Any]:
        return self.views.status(self.triggers.next_due)

    def reports(self) -> list[dict[str, t.Any]]:
        return list(self.stats.reports)

    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        self.hooks.stamp(running=True)
        return self.housekeeping.cleanup(trigger, full)

    def optimize(self, trigger: str) -> dict[str, t.Any] | None:
        return self.housekeeping.optimize(trigger)

    def preserve(self, names: Iterable[str]) -> None:
        self.marks.preserve(names)

    def unpreserve(self, names: Iterable[str]) -> None:
        self.marks.unpreserve(names)

    def paged_names(self) -> dict[str, int]:
        return self.store.names()

    def page_in(self, names: Iterable[str]) -> int:
        return self.store.page_in(names)

    def shown_traceback(self) -> list[str]:
        return self.traceback

    def settings(self) -> dict[str, t.Any]:
        """GreedKernel's traits and their current values (the comm's hello sends them)."""
        source = self.parent
        traits = getattr(source, "class_own_traits", None)
        if traits is None:
            return {}
        return {name: getattr(source, name) for name in traits(config=True)}
