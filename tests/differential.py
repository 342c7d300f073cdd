"""Differential harness: the same cells on the stock ``python3`` kernel and on
``greed`` evicting and checkpointing after every cell, outputs compared.

Greed runs with a cleanup and an optimisation after every cell, nothing
counting as recent and every value large enough to evict
(:data:`EVICT_EVERY_CELL`), so every stale tensor and array is paged out
between any two cells. A program is a list of cells; each runs on both kernels
(submitted to both, then collected), and for each cell the reply status, the
stdout and stderr text, the results and the error's name and value must be
equal. The kernel's own one-line notes under a cell (lines starting with
``Greed: ``) are not part of the comparison.

Not compared, because they are what a cleanup is for (see README, "Cleanup"):
temporaries (``_temp_*``), old ``Out`` entries, the stored traceback and
frozen parameters' gradients. The corpus leaves them alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kernel_harness import ExecResult, KernelHarness

EVICT_EVERY_CELL = (
    "--GreedKernel.cleanup_interval=1",
    "--GreedKernel.optimize_interval=1",
    "--GreedKernel.recent_window=0",
    "--GreedKernel.evict_min_bytes=1",
    "--GreedKernel.idle_timeout=0",
)

#: Run first in every program on both kernels: a fresh namespace, seeds, helpers. Last,
#: both kernels move what is alive then (the libraries, the helpers) to the permanent
#: generation: the full collection of greed's cleanup after every cell then walks what
#: the program made (about 0.3 s less per cell with torch, numpy and pandas imported),
#: and python3 holds the same heap frozen, so what is compared is unchanged.
PRELUDE = """\
%reset -f
import gc, hashlib, sys, threading, weakref
import numpy as np
np.random.seed(0)
try:
    import torch
    torch.manual_seed(0)
except ImportError:
    torch = None

def cs(x):
    '''A short, exact fingerprint of a value's bytes.'''
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().contiguous().numpy()
    if isinstance(x, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]
        return (x.shape, str(x.dtype), digest)
    return repr(x)[:80]

gc.collect()
gc.freeze()
"""


@dataclass(frozen=True)
class CellOutcome:
    status: str
    stdout: str
    stderr: str
    results: tuple[str, ...]
    error: tuple[str, str] | None


#: Warnings name the cell's file after the kernel's PID.
_CELL_FILE = re.compile(r"ipykernel_\d+")


def outcome(result: ExecResult, *, greed: bool) -> CellOutcome:
    stderr = _CELL_FILE.sub("ipykernel_PID", result.stderr)
    if greed:  # the kernel's own notes under a cell
        stderr = "".join(
            line for line in stderr.splitlines(keepends=True) if not line.startswith("Greed: ")
        )
    results = tuple(
        m["content"]["data"].get("text/plain", "")
        for m in result.outputs
        if m["msg_type"] in ("execute_result", "display_data")
    )
    error = result.error
    return CellOutcome(
        status=result.status,
        stdout=_CELL_FILE.sub("ipykernel_PID", result.stdout),
        stderr=stderr,
        results=results,
        error=None if error is None else (error["ename"], error["evalue"]),
    )


class Differential:
    """A python3 kernel and a greed kernel evicting after every cell."""

    def __init__(self, *greed_args: str) -> None:
        self.python3 = KernelHarness(kernel_name="python3")
        try:
            self.greed = KernelHarness(*EVICT_EVERY_CELL, *greed_args)
        except BaseException:
            self.python3.shutdown()
            raise

    def run_cell(self, code: str, timeout: float = 120) -> tuple[CellOutcome, CellOutcome]:
        """The cell on both kernels; on greed, then a checkpoint of the namespace (a
        silent request: not a cell of the program), which must change nothing."""
        ids = self.python3.submit(code), self.greed.submit(code)
        outcomes = (
            outcome(self.python3.collect(ids[0], timeout), greed=False),
            outcome(self.greed.collect(ids[1], timeout), greed=True),
        )
        self.greed.execute("%greed checkpoint", silent=True, store_history=False, timeout=timeout)
        return outcomes

    def run(self, cells: list[str]) -> list[str]:
        """Run a program on both kernels; the differences, described (empty: identical)."""
        problems = []
        for code in [PRELUDE, *cells]:
            expected, got = self.run_cell(code)
            if expected != got:
                problems.append(f"cell {code!r}:\n  python3: {expected}\n  greed:   {got}")
        return problems

    def paged_total(self) -> int:
        """Bytes greed has paged out so far (it must have, for a run to mean anything)."""
        return int(self.greed.eval("get_ipython().kernel.greed.store.pager.paged_total"))

    def shutdown(self) -> None:
        try:
            self.greed.shutdown()
        finally:
            self.python3.shutdown()

    def __enter__(self) -> Differential:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
