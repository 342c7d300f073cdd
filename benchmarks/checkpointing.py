"""The checkpointing suite: what automatic checkpoints cost the cells, at a person's pace.

At machine pace no quiet moment comes, so no checkpoint runs until the cells end; the
cost that matters is at a person's pace, where one runs after nearly every cell. Three
kernels run the soak's PyTorch notebook (its setup and its first ``cells`` cells):
python3, greed with ``checkpoint="auto"`` (its default) and greed with
``checkpoint="off"``. They take turns cell by cell, the order rotated every cell, and
after each round all three are left idle for ``think`` seconds: longer than greed's
quiet moment (0.5 s), so greed brings its checkpoint up to date after every cell that
changed something; a checkpoint still running when the next cell comes is dropped
(that cell waits for one slice).

The overhead is greed-auto's total cell time over greed-off's, minus one (the run-time
overhead ElasticNotebook reports), with the paired median ratio of the same cells and
both against python3. The cells' times vary by more than that overhead here, so the
part a checkpoint adds directly is measured apart: the time each request waited before
the kernel began it (the reply's ``started``: a cell that comes during a slice waits
for it), greed-auto's total over greed-off's, as a share of greed-off's cell time.
The final training state must be the same on all three.
"""

from __future__ import annotations

import statistics
import time
import typing as t
import uuid

from .kernels import Progress, Variant, median, ratio, rotated, started
from .sandbox import Sandbox
from .workload import RESULT_EXPRESSIONS, generate, setup_code

PYTHON3 = Variant("python3", "python3")
#: a notebook of its own each run (the harness's connection files name no kernel id)
_NAME = f"--GreedKernel.session_name=bench-checkpointing-{uuid.uuid4().hex}"
AUTO = Variant("greed-auto", "greed", ("--GreedKernel.checkpoint=auto", _NAME))
OFF = Variant("greed-off", "greed", ("--GreedKernel.checkpoint=off", _NAME + "-off"))
#: What greed-auto wrote, read at the end.
WRITTEN = (
    "print(len(get_ipython().kernel.greed.service.checkpoints()), "
    "get_ipython().kernel.greed.checkpointing.last_ms)"
)


def checkpointing(
    sandbox: Sandbox,
    cells: int = 150,
    think: float = 0.8,
    seed: int = 1234,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Run the suite; the rows (one per kernel and cell) and the results."""
    rows: list[dict[str, t.Any]] = []
    results: dict[str, t.Any] = {"cells": cells, "think_s": think, "seed": seed}
    latencies: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}  # ms from the request sent to the kernel's start
    t0 = time.monotonic()
    with started(sandbox, [PYTHON3, AUTO, OFF]) as kernels:
        for k in kernels:
            k.must_run(setup_code(seed), timeout=600)
            latencies[k.label] = []
            waits[k.label] = []
        for cell in generate(cells, seed):
            for k in rotated(kernels, cell.index):
                run = k.run(cell.code)
                latencies[k.label].append(run.latency_s * 1000.0)
                waits[k.label].append((run.wait_s or 0.0) * 1000.0)
                rows.append(
                    {
                        "kernel": k.label,
                        "cell": cell.index,
                        "kind": cell.kind,
                        "status": run.status,
                        "latency_ms": round(run.latency_s * 1000.0, 4),
                    }
                )
            time.sleep(think)  # a person reads the output: greed's quiet moment comes
            if cell.index % 50 == 0:
                progress(
                    f"  checkpointing: {cell.index}/{cells} cells, {time.monotonic() - t0:.0f} s"
                )
        for k in kernels:
            results[k.label] = {
                "result": k.evaluate(**RESULT_EXPRESSIONS),
                "total_ms": sum(latencies[k.label]),
                "median_ms": median(latencies[k.label]),
                "wait_total_ms": sum(waits[k.label]),
                "wait_max_ms": max(waits[k.label], default=0.0),
            }
        auto = next(k for k in kernels if k.label == AUTO.label)
        count, last_ms = auto.must_run(WRITTEN).stdout.split()
        results["checkpoints_listed"] = int(count)
        results["last_checkpoint_ms"] = None if last_ms == "None" else float(last_ms)
    a, off, p3 = (latencies[v.label] for v in (AUTO, OFF, PYTHON3))
    results["overhead"] = ratio(sum(a), sum(off)) - 1.0  # type: ignore[operator]
    wa, woff = sum(waits[AUTO.label]), sum(waits[OFF.label])
    results["wait_added"] = (wa - woff) / sum(off) if sum(off) else None
    results["paired_ratio_median"] = statistics.median(
        x / y for x, y in zip(a, off, strict=True) if y > 0
    )
    results["vs_python3_total_ratio"] = ratio(sum(a), sum(p3))
    results["off_vs_python3_total_ratio"] = ratio(sum(off), sum(p3))
    first = results[PYTHON3.label]["result"]
    results["identical"] = all(results[v.label]["result"] == first for v in (AUTO, OFF))
    return rows, results
