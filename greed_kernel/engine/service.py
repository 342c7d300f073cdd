"""The service: what the comm channel and the ``%greed`` magic may ask of the kernel.

A read-and-steer facade over the components (views, housekeeping, marks, the paged
store), and the only thing of the engine the frontends see. Each method is named after
the operation it serves, as the comm's request and the ``%greed`` subcommand are
(``stats``, ``vars``, ``history``, ``paged``, ``restore``, ...). Whatever reads the
stamps first stamps what ran so far (from a magic: the running cell's own trees too).
It holds no state of its own but the text of the last error as shown, which the
engine hands it when a cell fails.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

from .checkpointing import Checkpointing
from .context import Context
from .guarding import Guarding
from .housekeeping import Housekeeping
from .triggers import Triggers
from .views import Views


class Service:
    """Answers the comm channel and the magics (see the module's docstring)."""

    def __init__(
        self,
        context: Context,
        views: Views,
        housekeeping: Housekeeping,
        triggers: Triggers,
        guarding: Guarding,
        checkpointing: Checkpointing,
    ) -> None:
        self.parent = context.parent
        self.hooks = context.hooks
        self.views = views
        self.housekeeping = housekeeping
        self.triggers = triggers
        self.guarding = guarding
        self.checkpointing = checkpointing
        self.statistics = context.stats
        self.marks = context.marks
        self.store = context.store
        #: Run a function now, or after the cell that is running (or awaiting) ends.
        self.when_no_cell = context.when_no_cell
        #: The last error's traceback as shown, for %tb once a cleanup released it.
        self.traceback: list[str] = []

    def stats(self) -> dict[str, t.Any]:
        """The STATS dict, now."""
        self.hooks.stamp(running=True)
        return self.views.snapshot()

    def vars(self) -> list[dict[str, t.Any]]:
        """The user's variables as the ``vars`` table's rows, largest first."""
        self.hooks.stamp(running=True)
        return self.views.variables()

    def why(self, name: str) -> dict[str, t.Any]:
        self.hooks.stamp(running=True)
        return self.views.why(name)

    def status(self) -> dict[str, t.Any]:
        return {
            **self.views.status(self.triggers.next_due),
            **self.guarding.status(),
            **self.checkpointing.status(),
        }

    def memory(self) -> dict[str, t.Any]:
        """The memory over time: samples, markers, the limit and the thresholds."""
        return self.guarding.memory()

    def previous_kernel(self) -> dict[str, t.Any] | None:
        """The previous kernel of this notebook, if it died (the comm's hello)."""
        previous = self.guarding.previous
        return None if previous is None else previous.to_json()

    def history(self) -> list[dict[str, t.Any]]:
        """The last reports (cleanups, optimisations, out-of-memory recoveries), oldest first."""
        return list(self.statistics.reports)

    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        self.hooks.stamp(running=True)
        return self.housekeeping.cleanup(trigger, full)

    def optimize(self, trigger: str) -> dict[str, t.Any] | None:
        return self.housekeeping.optimize(trigger)

    def preserve(self, names: Iterable[str]) -> None:
        self.marks.preserve(names)

    def unpreserve(self, names: Iterable[str]) -> None:
        self.marks.unpreserve(names)

    def paged(self) -> dict[str, int]:
        """Each name whose memory is paged out, with its bytes paged."""
        return self.store.names()

    def restore(self, names: Iterable[str]) -> int:
        """Read the paged-out memory of *names* back into RAM; the bytes read."""
        return self.store.page_in(names)

    # -- checkpoints (session/) ---------------------------------------------------------
    def checkpoint(self) -> dict[str, t.Any] | None:
        """Write a checkpoint now; its summary once it is durable (None: no notebook)."""
        self.hooks.stamp(running=True)
        manifest = self.checkpointing.checkpoint()
        return None if manifest is None else manifest.summary()

    def checkpoints(self) -> list[dict[str, t.Any]]:
        """This notebook's checkpoints, oldest first."""
        return [m.summary() for m in self.checkpointing.checkpoints()]

    def resume(self, id: str | None = None) -> dict[str, t.Any]:
        """Bind the names of checkpoint *id* (None: the latest). Raises LookupError."""
        return self.checkpointing.resume(id)

    def forget(self) -> int:
        """Delete this notebook's checkpoints; the bytes freed."""
        return self.checkpointing.forget()

    def resumable(self) -> dict[str, t.Any] | None:
        """The latest checkpoint (id, time, cell, bytes), or None (the comm's hello)."""
        try:
            latest = self.checkpointing.latest()
        except Exception:
            return None
        if latest is None:
            return None
        s = latest.summary()
        return {k: s[k] for k in ("id", "time", "cell", "bytes")}

    def shown_traceback(self) -> list[str]:
        return self.traceback

    def settings(self) -> dict[str, t.Any]:
        """GreedKernel's traits and their current values (the comm's hello sends them)."""
        source = self.parent
        traits = getattr(source, "class_own_traits", None)
        if traits is None:
            return {}
        return {name: getattr(source, name) for name in traits(config=True)}
