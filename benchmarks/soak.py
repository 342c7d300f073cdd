"""The soak: a seeded PyTorch notebook of many cells, on every variant at once.

The kernels are alive together and take turns cell by cell, the order rotated every
cell. After each cell, each kernel's memory is read from /proc/PID/status (with its
children): RssAnon, RssFile and RssShmem apart, and VmRSS, their sum. At the end,
each kernel's settled memory is read once it is idle (SETTLE_SECONDS after the last
cell), the training result and the preserved state are compared with the first variant's,
and greed's own counters are read through its comm.
"""

from __future__ import annotations

import statistics
import time
import typing as t
from collections.abc import Sequence

from .greedcomm import greed_stats
from .kernels import MiB, Progress, Variant, digest, kernel_args, median, rotated, started
from .sandbox import Sandbox
from .workload import (
    NONDETERMINISTIC_KINDS,
    RESULT_EXPRESSIONS,
    STATE_EXPRESSIONS,
    generate,
    setup_code,
)

#: Seconds after the last cell before the settled memory is read: the kernels are idle.
SETTLE_SECONDS = 1.0


def soak(
    sandbox: Sandbox,
    variants: Sequence[Variant],
    cells: int,
    seed: int,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Run the seeded notebook on every variant, interleaved cell by cell.

    Returns the per-cell rows and the results (per kernel: RSS and latency
    statistics, status mismatches; across kernels: the training result and the
    preserved state).
    """
    workload = generate(cells, seed)
    rows: list[dict[str, t.Any]] = []
    results: dict[str, t.Any] = {"cells": cells, "seed": seed, "kernels": {}}
    with started(sandbox, variants) as kernels:
        base: dict[str, dict[str, int]] = {}
        for k in kernels:
            run = k.must_run(setup_code(seed))
            base[k.label] = k.memory()
            results["kernels"][k.label] = {
                "args": kernel_args(variants, k.label),
                "setup_s": run.latency_s,
                "rss_after_setup": base[k.label]["rss"],
                "memory_after_setup": base[k.label],
            }
        outputs: dict[str, list[str]] = {k.label: [] for k in kernels}
        t0 = time.monotonic()
        for cell in workload:
            for k in rotated(kernels, cell.index):
                run = k.run(cell.code)
                mem = k.memory()
                outputs[k.label].append(digest(run.result) + "/" + (run.error or ""))
                rows.append(
                    {
                        "kernel": k.label,
                        "cell": cell.index,
                        "kind": cell.kind,
                        "expect": cell.expect,
                        "status": run.status,
                        "error": run.error or "",
                        "latency_ms": round(run.latency_s * 1000.0, 4),
                        "rss_bytes": mem["rss"],
                        "rss_anon_bytes": mem["anon"],
                        "rss_file_bytes": mem["file"],
                        "rss_shmem_bytes": mem["shmem"],
                    }
                )
            if cell.index % 100 == 0 or cell.index == cells:
                progress(
                    f"  soak: {cell.index}/{cells} cells, {time.monotonic() - t0:.0f} s; "
                    "RssAnon / RssFile: "
                    + ", ".join(
                        f"{r['kernel']} {r['rss_anon_bytes'] / MiB:.0f} / "
                        f"{r['rss_file_bytes'] / MiB:.0f} MiB"
                        for r in rows[-len(kernels) :]
                    )
                )
        loop_s = time.monotonic() - t0
        # settled: once the work after the last reply (greed's slices) is done
        time.sleep(SETTLE_SECONDS)
        settled = {k.label: k.memory() for k in kernels}
        for k in kernels:
            r = results["kernels"][k.label]
            r["result"] = k.evaluate(**RESULT_EXPRESSIONS)
            try:
                r["state"] = k.evaluate(**STATE_EXPRESSIONS)
                r["state_ok"] = True
            except Exception as e:
                r["state"] = {"failed": str(e)}
                r["state_ok"] = False
            if k.spec == "greed":
                r["greed_stats"] = greed_stats(k)
    results["wall_s"] = loop_s
    # how many soak cells one kernel ran per second: what a recent_window covers
    results["kernel_cells_per_s"] = cells / loop_s if loop_s > 0 else None
    for v in variants:
        for arg in v.args:
            if arg.startswith("--GreedKernel.recent_window="):
                window = float(arg.split("=", 1)[1])
                results["kernels"][v.label]["recent_window_s"] = window
                results["kernels"][v.label]["recent_window_cells"] = (
                    window * results["kernel_cells_per_s"]
                )
            if arg.startswith("--GreedKernel.memory_limit="):
                results["kernels"][v.label]["memory_limit"] = int(arg.split("=", 1)[1])
    ref = variants[0].label
    for label, r in results["kernels"].items():
        mine = [row for row in rows if row["kernel"] == label]
        r.update(series_stats(mine, base[label], settled[label]))
        r["identical_to_" + ref] = r["result"] == results["kernels"][ref]["result"]
        ref_lat = [row["latency_ms"] for row in rows if row["kernel"] == ref]
        lat = [row["latency_ms"] for row in mine]
        # the same cell, at nearly the same moment: robust against a changing load
        r["latency_paired_ratio_median"] = median(
            [a / b for a, b in zip(lat, ref_lat, strict=True) if b > 0]
        )
        r["latency_paired_diff_median_ms"] = median(
            [a - b for a, b in zip(lat, ref_lat, strict=True)]
        )
        kinds = [c.kind for c in workload]
        r["outputs_differing_from_" + ref] = sum(
            1
            for kind, a, b in zip(kinds, outputs[label], outputs[ref], strict=True)
            if kind not in NONDETERMINISTIC_KINDS and a != b
        )
    return rows, results


#: Memory series of the soak: the key prefix in the results, the CSV column and the
#: kind in :meth:`Kernel.memory` (``anon_*`` is RssAnon alone, shmem is separate).
MEMORY_SERIES = (
    ("rss", "rss_bytes", "rss"),
    ("anon", "rss_anon_bytes", "anon"),
    ("file", "rss_file_bytes", "file"),
    ("shmem", "rss_shmem_bytes", "shmem"),
)


def series_stats(
    rows: list[dict[str, t.Any]], base: dict[str, int], settled: dict[str, int] | None = None
) -> dict[str, t.Any]:
    """Memory (start, end, peak, growth of each series) and latency statistics of one
    kernel's soak rows; *base* is its memory after the setup cell, *settled* after the
    last cell once the kernel is idle (the end; else the last row's)."""
    lat = [r["latency_ms"] for r in rows]
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["latency_ms"])
    window = min(50, max(1, len(lat) // 2))
    memory: dict[str, t.Any] = {}
    for prefix, column, kind in MEMORY_SERIES:
        series = [r[column] for r in rows]
        end = series[-1] if settled is None else settled[kind]
        memory[f"{prefix}_start"] = base[kind]
        memory[f"{prefix}_end"] = end
        memory[f"{prefix}_peak"] = max([base[kind], *series, end])
        memory[f"{prefix}_growth"] = end - base[kind]
    # "anonymous": RssAnon + RssShmem, what a memory budget counts
    anonymous = [r["rss_anon_bytes"] + r["rss_shmem_bytes"] for r in rows]
    start = base["anon"] + base["shmem"]
    end = anonymous[-1] if settled is None else settled["anon"] + settled["shmem"]
    memory["anonymous_start"] = start
    memory["anonymous_end"] = end
    memory["anonymous_peak"] = max([start, *anonymous, end])
    memory["anonymous_growth"] = end - start
    return {
        **memory,
        "latency_median_ms": median(lat),
        "latency_mean_ms": statistics.fmean(lat),
        "latency_p90_ms": statistics.quantiles(lat, n=10)[-1] if len(lat) > 1 else lat[0],
        "latency_max_ms": max(lat),
        "latency_first_window_ms": median(lat[:window]),
        "latency_last_window_ms": median(lat[-window:]),
        "latency_window": window,
        "latency_median_by_kind_ms": {k: median(v) for k, v in sorted(by_kind.items())},
        "status_mismatches": sum(1 for r in rows if r["status"] != r["expect"]),
        "errors": sum(1 for r in rows if r["status"] == "error"),
    }
