"""What every component shares: the settings it reads, its base class, and the guard
that keeps a failure of ours from changing the outcome of the user's cell.

Components are ``LoggingConfigurable``s, built as ipykernel builds its own: the
kernel passes itself as ``parent=``, and a component reads the ``GreedKernel``
traits it needs through :attr:`Component.options`. Tests pass any
``Configurable`` with the same attributes (see tests/inprocess.py).
"""

from __future__ import annotations

import functools
import time
import typing as t
from collections.abc import Callable

from traitlets.config import LoggingConfigurable

#: A monotonic clock, in seconds (injected: tests drive time by hand).
Clock = Callable[[], float]
#: ``schedule(delay, callback)``: run *callback* on the kernel's main thread later.
Schedule = Callable[[float, Callable[[], None]], t.Any]


class Settings(t.Protocol):
    """The GreedKernel traits the components read."""

    preserve: list[str]
    recent_window: float
    recent_cells: int
    temporary_patterns: list[str]
    evict_min_bytes: int
    cleanup_interval: int
    optimize_interval: int
    memory_threshold: float
    memory_low_watermark: float
    memory_limit: int
    pressure_cooldown: int
    idle_timeout: float
    output_cache_keep: int
    evict: str
    gc_freeze: bool
    oom_recovery: bool
    guard_threshold: float
    paging_max_bytes: int
    paging_dir: str
    checkpoint: str
    checkpoint_dir: str
    checkpoint_max_bytes: int


class Component(LoggingConfigurable):
    """A part of the engine with one job; its settings are its parent's traits."""

    def __init__(self, *, clock: Clock = time.monotonic, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock

    @property
    def options(self) -> Settings:
        return t.cast(Settings, self.parent)


def low_watermark(settings: Settings) -> float:
    """Where a budget cleanup stops paging: the watermark, at most the threshold."""
    return min(settings.memory_low_watermark, settings.memory_threshold or 1.0)


F = t.TypeVar("F", bound=Callable[..., t.Any])


def guarded(fn: F) -> F:
    """Log and swallow any failure (KeyboardInterrupt included) of a component method.

    The method's component must have a ``log``. A failure in our machinery never
    changes the outcome of the user's cell; what to do about an interrupt that
    reaches us *before* the user's code is the hooks' business (see hooks.py).
    """

    @functools.wraps(fn)
    def wrapper(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return fn(self, *args, **kwargs)
        except KeyboardInterrupt:
            self.log.exception("greed: %s interrupted; the user's cell is unaffected", fn.__name__)
        except Exception:
            self.log.exception("greed: %s failed; the user's cell is unaffected", fn.__name__)
        return None

    return t.cast(F, wrapper)
