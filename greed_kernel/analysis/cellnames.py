"""The result of scanning one cell: the module-level names it reads, writes and deletes.

Both scanners produce it: :mod:`greed_kernel.analysis.scope` from the cell's tree and
:mod:`greed_kernel.analysis.syntax` from its tokens (the fallback). It lives apart from
both so that neither has to import the other to build one. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EMPTY", "FAILED", "NOTHING", "CellNames", "merge"]


@dataclass(frozen=True, slots=True)
class CellNames:
    """The module-level names one cell reads, writes and deletes.

    ``parsed`` is False when the names came from the token fallback (or the tree
    scan failed), in which case ``reads`` is an over-approximation and
    ``writes``/``deletes`` are empty.
    """

    reads: frozenset[str]
    writes: frozenset[str]
    deletes: frozenset[str]
    parsed: bool = True

    @property
    def touched(self) -> frozenset[str]:
        """Every name the cell reads, writes or deletes."""
        return self.reads | self.writes | self.deletes


NOTHING: frozenset[str] = frozenset()
EMPTY = CellNames(NOTHING, NOTHING, NOTHING)
# What a scan that failed outright returns: nothing known, not parsed.
FAILED = CellNames(NOTHING, NOTHING, NOTHING, parsed=False)


def merge(a: CellNames, b: CellNames) -> CellNames:
    """Union of two scans; ``parsed`` only if both were parsed."""
    return CellNames(
        a.reads | b.reads,
        a.writes | b.writes,
        a.deletes | b.deletes,
        a.parsed and b.parsed,
    )
