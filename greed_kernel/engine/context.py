"""What the engine's components share: built once by the engine (``greed.Greed``) and
handed to each component at construction, so that no component is wired after it is
built and none takes more than a few collaborators of its own."""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from dataclasses import dataclass

if t.TYPE_CHECKING:
    from ..analysis.tracker import Tracker
    from ..memory.probe import MemoryProbe
    from .events import Events
    from .hooks import CellHooks
    from .policy import Marks, Policy
    from .stats import Stats
    from .store import PagedValues


@dataclass(frozen=True, slots=True)
class Context:
    """The shell and the engine's shared parts."""

    shell: t.Any
    parent: t.Any  # the kernel: its traits are the settings
    tracker: Tracker
    probe: MemoryProbe
    stats: Stats
    marks: Marks
    store: PagedValues
    hooks: CellHooks
    events: Events
    #: the rules in force now (the settings and the user's marks)
    policy: Callable[[], Policy]
    #: run a function now, or after the cell that is running (or awaiting) ends
    when_no_cell: Callable[[Callable[[], None]], None]
