"""The pause suite: how long a cell sent right after a reply waits for the periodic
cleanup or optimisation that fell due, against python3.

A python3 and a greed kernel each import torch and make ``objects`` gc-tracked
objects (about 500k besides torch's own), then run ``cells`` cells of ``x = 1``, each
sent as soon as the previous one's reply and idle status are in: back to back, as
nbclient sends them. The kernels take turns by blocks of ``cells`` (the machine's
drift falls on both), ``rounds`` times. Greed's periodic work falls due after cells
50, 100, ... (an optimisation every 50, a cleanup every 100); the cell after each
waits for it. A cell's delay is its latency minus the median latency of its kernel's
block; python3's delay at the same cells is the control (its own collections fall
where they fall).
"""

from __future__ import annotations

import statistics
import time
import typing as t

from .kernels import GREED, PYTHON3, Progress, started
from .sandbox import Sandbox

#: a setup cell: torch imported, and *objects* more gc-tracked objects (tuples of lists)
SETUP = "import torch\npause_objs = [([i],) for i in range({half})]\nimport gc\ngc.collect()"
COUNT = "len(__import__('gc').get_objects())"


def pause(
    sandbox: Sandbox,
    cells: int = 300,
    objects: int = 500_000,
    rounds: int = 2,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Run the suite; the rows (one per cell) and the results (see the module)."""
    rows: list[dict[str, t.Any]] = []
    results: dict[str, t.Any] = {"cells": cells, "objects": objects, "rounds": rounds}
    t0 = time.monotonic()
    with started(sandbox, [PYTHON3, GREED]) as kernels:
        for k in kernels:
            k.must_run(SETUP.format(half=objects // 2), timeout=600)
            results[f"{k.label}_gc_objects"] = int(k.must_run(f"print({COUNT})").stdout)
        for r in range(rounds):
            order = kernels if r % 2 == 0 else kernels[::-1]
            for k in order:
                k.must_run("pause_start = 1")  # not counted: the count starts below
                # printed during a cell: the number the next cell gets
                first = int(k.must_run("print(get_ipython().execution_count)").stdout)
                block = []
                for _ in range(cells):
                    run = k.run("x = 1")
                    if run.status != "ok":
                        raise RuntimeError(f"{k.label}: x = 1 failed: {run.reply}")
                    block.append(run.latency_s * 1000.0)
                mid = statistics.median(block)
                for i, ms in enumerate(block):
                    rows.append(
                        {
                            "kernel": k.label,
                            "round": r,
                            "cell": first + i,
                            "latency_ms": round(ms, 4),
                            "delay_ms": round(ms - mid, 4),
                        }
                    )
            progress(f"  pause: round {r + 1}/{rounds}, {time.monotonic() - t0:.0f} s")
        greed = next(k for k in kernels if k.label == GREED.label)
        results["greed_reports"] = _reports(greed)
    for label in (PYTHON3.label, GREED.label):
        mine = [row for row in rows if row["kernel"] == label]
        after = [row for row in mine if (row["cell"] - 1) % 50 == 0 and row["cell"] > 1]
        results[label] = {
            "median_ms": statistics.median(row["latency_ms"] for row in mine),
            # the cells right after greed's periodic work fell due (cell 51, 101, ...)
            "after_work_delay_ms": [row["delay_ms"] for row in after],
            "after_work_delay_max_ms": max((row["delay_ms"] for row in after), default=None),
            "max_delay_ms": max(row["delay_ms"] for row in mine),
        }
    results["added_delay_max_ms"] = (
        results[GREED.label]["after_work_delay_max_ms"]
        - results[PYTHON3.label]["after_work_delay_max_ms"]
    )
    return rows, results


def _reports(kernel: t.Any) -> list[dict[str, t.Any]]:
    """The periodic reports greed kept (trigger, kind, duration, generation)."""
    out = kernel.must_run(
        "print([(r['kind'], r['trigger'], round(r['durationMs'], 2), r.get('gcGeneration')) "
        "for r in get_ipython().kernel.greed.stats.reports])"
    ).stdout
    import ast

    return [
        {"kind": kind, "trigger": trigger, "duration_ms": ms, "gc_generation": gen}
        for kind, trigger, ms, gen in ast.literal_eval(out.strip() or "[]")
    ]
