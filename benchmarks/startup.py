"""The start-up suite: seconds from starting a kernel to its kernel_info reply."""

from __future__ import annotations

import typing as t

from .harness import Kernel
from .kernels import GREED, PYTHON3, Progress, median, ratio
from .sandbox import Sandbox


def startup(
    sandbox: Sandbox, reps: int, progress: Progress = print
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Seconds from start_kernel to a kernel_info reply (wait_for_ready), alternating."""
    rows: list[dict[str, t.Any]] = []
    for rep in range(reps):
        order = (PYTHON3, GREED) if rep % 2 == 0 else (GREED, PYTHON3)
        for v in order:
            with Kernel(sandbox, v.spec, v.label) as k:
                seconds = k.start()
            rows.append({"kernel": v.label, "rep": rep + 1, "seconds": round(seconds, 4)})
    results: dict[str, t.Any] = {"reps": reps, "kernels": {}}
    for label in ("python3", "greed"):
        values = [r["seconds"] for r in rows if r["kernel"] == label]
        results["kernels"][label] = {"median_s": median(values), "all_s": values}
    results["ratio"] = ratio(
        results["kernels"]["greed"]["median_s"], results["kernels"]["python3"]["median_s"]
    )
    progress(
        f"  start-up: python3 {results['kernels']['python3']['median_s']:.2f} s, greed "
        f"{results['kernels']['greed']['median_s']:.2f} s (median of {reps})"
    )
    return rows, results
