"""The kernels a suite compares, and the small helpers every suite shares.

A :class:`Variant` names a kernel to start (its label, its spec and extra
command-line arguments); :func:`started` starts one kernel per variant and shuts
them all down afterwards. Where two kernels run the same cells they take turns
cell by cell, the order rotated (:func:`rotated`), so that whatever else loads the
machine weighs on both alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .harness import Kernel
from .sandbox import Sandbox

Progress = Callable[[str], None]
MiB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    """A kernel to benchmark: a label, its spec and extra command-line arguments."""

    label: str
    spec: str
    args: tuple[str, ...] = ()


PYTHON3 = Variant("python3", "python3")
GREED = Variant("greed", "greed")


def median(values: Sequence[float]) -> float | None:
    """The median, or None of no values."""
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


@contextlib.contextmanager
def started(sandbox: Sandbox, variants: Sequence[Variant]) -> Iterator[list[Kernel]]:
    """Start one kernel per variant; shut them all down afterwards."""
    kernels: list[Kernel] = []
    try:
        for v in variants:
            k = Kernel(sandbox, v.spec, v.label, v.args)
            kernels.append(k)
            k.start()
        yield kernels
    finally:
        for k in kernels:
            k.shutdown()


def rotated(kernels: list[Kernel], i: int) -> list[Kernel]:
    """The kernels in turn order for step *i*: the first one moves every step."""
    j = i % len(kernels)
    return kernels[j:] + kernels[:j]


def digest(text: str | None) -> str:
    """A short hash of a cell's text output ('' for none), to compare outputs."""
    return "" if text is None else hashlib.sha1(text.encode()).hexdigest()[:12]


def kernel_args(variants: Sequence[Variant], label: str) -> list[str]:
    """The extra arguments of the variant labelled *label*."""
    return list(next(v.args for v in variants if v.label == label))
