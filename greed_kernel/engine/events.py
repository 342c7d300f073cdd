"""The engine's events: how a component tells the engine, and the engine the
frontends, that something happened, without a callback wired into an object after
it is built. As in IPython's ``core/events.py``, each event is declared by a
documented prototype below; :class:`Events` keeps who listens to which.

Unlike IPython's event manager, a listener that raises is logged, never shown in the
user's cell: these events fire in the kernel's machinery, not in user code.
"""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Callable

__all__ = ["AVAILABLE", "CellEnd", "Events"]


class CellEnd(t.NamedTuple):
    """A user cell that failed: how it failed, and its traceback as shown."""

    error: BaseException
    #: the traceback as shown (ipykernel keeps it only until the next cell)
    shown_traceback: list[str]


def cell_failed(failure: CellEnd) -> None:
    """A user cell raised (CellHooks, when the cell ended)."""


def cell_output(number: int) -> None:
    """User cell *number*'s result, not a plain number, went to the output cache
    (CellHooks, when the cell ended)."""


def work_due() -> None:
    """Housekeeping fell due after a cell, or cells wait to be scanned (CellHooks)."""


def cell_started() -> None:
    """A user cell started, and the engine had asked to hear of it
    (``CellHooks.tell_at_next_cell``)."""


def notice() -> None:
    """Housekeeping has a line for the user, to be said under the next cell."""


def publish(method: str, params: dict[str, t.Any]) -> None:
    """A notification for the frontends (the comm channel): a method of the schema and
    its params."""


AVAILABLE: dict[str, Callable[..., None]] = {
    f.__name__: f for f in (cell_failed, cell_output, work_due, cell_started, notice, publish)
}


class Events:
    """Listeners by event; :meth:`trigger` calls them in the order they registered."""

    __slots__ = ("_listeners", "log")

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logging.getLogger(__name__)
        self._listeners: dict[str, list[Callable[..., None]]] = {name: [] for name in AVAILABLE}

    def register(self, event: str, listener: Callable[..., None]) -> None:
        """Call *listener* on *event* (one of AVAILABLE: KeyError otherwise)."""
        listeners = self._listeners[event]
        if listener not in listeners:
            listeners.append(listener)

    def unregister(self, event: str, listener: Callable[..., None]) -> None:
        self._listeners[event].remove(listener)

    def trigger(self, event: str, *args: t.Any) -> None:
        """Call *event*'s listeners with *args*; one that raises is logged."""
        for listener in self._listeners[event]:
            try:
                listener(*args)
            except Exception:
                self.log.exception("greed: a listener of %s failed", event)
