"""Time the kernel adds to each cell: context tracking and the trigger checks.

    python -m benchmarks.tracking [--out docs/benchmarks]

Runs Greed's per-cell hooks (pre_run_cell, the scan of the compiled tree,
post_run_cell, cell_done before the reply, after_reply after it) on a real
in-process IPython shell, for an
ordinary 5-line cell and a 500-line cell, with 10 and 10,000 variables in the
namespace. Periodic cleanups are disabled so only the per-cell work is timed.
Writes tracking.json next to the other benchmark results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import typing as t
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from traitlets import Bool, Float, Integer, List, Unicode
from traitlets.config import Configurable

from greed_kernel.engine.greed import Greed

CELL_5 = (
    "def scale(a):\n"
    "    return a * weight\n"
    "weight = 3\n"
    "values = [scale(i) for i in range(3)]\n"
    "print(values, model)\n"
)
CELL_500 = "".join(
    f"v{i} = scale(weight) + {i}\nif v{i} > 3:\n    total = v{i} * 2\n" for i in range(167)
)[:-1]


class Settings(Configurable):
    """GreedKernel's defaults, with periodic work off (only per-cell work is timed)."""

    preserve = List(default_value=["model"])
    recent_window = Float(300.0)
    recent_cells = Integer(20)
    temporary_patterns = List(default_value=["_temp_*", "_out_*"])
    evict_min_bytes = Integer(1 << 20)
    cleanup_interval = Integer(0)
    optimize_interval = Integer(0)
    memory_threshold = Float(0.8)
    memory_low_watermark = Float(0.7)
    memory_limit = Integer(0)
    pressure_cooldown = Integer(10)
    idle_timeout = Float(0.0)
    output_cache_keep = Integer(3)
    evict = Unicode("page")
    gc_freeze = Bool(False)
    oom_recovery = Bool(True)
    guard_threshold = Float(0.95)
    paging_max_bytes = Integer(0)
    paging_dir = Unicode("")


class _Info:
    silent = False
    store_history = True
    raw_cell = ""


class _Result:
    error_in_exec = None
    execution_count = 1

    def __init__(self, info: _Info) -> None:
        self.info = info


def time_hooks(engine: Greed, shell: InteractiveShell, cell: str, runs: int) -> tuple[float, float]:
    """Median microseconds of one cell's worth of Greed work: before the reply (the
    hooks and the pressure probe), and after it (what the kernel schedules)."""
    tree = shell.compile.ast_parse(shell.transform_cell(cell))
    hooks = engine.hooks
    before, after = [], []
    for _ in range(runs):
        info = _Info()
        result = _Result(info)
        t0 = time.perf_counter()
        hooks.pre_run_cell(info)
        hooks.on_tree(tree)
        hooks.post_run_cell(result)
        engine.cell_done()
        t1 = time.perf_counter()
        engine.after_reply()
        t2 = time.perf_counter()
        before.append(t1 - t0)
        after.append(t2 - t1)
    return statistics.median(before) * 1e6, statistics.median(after) * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args(argv)
    shell = InteractiveShell.instance()
    engine = Greed(shell, parent=Settings(), schedule=lambda delay, fn: None)
    shell.run_cell("model = None\n" + CELL_5)  # define model, scale, weight, values
    results = {}
    for nvars in (10, 10_000):
        for k in range(nvars):
            shell.user_ns[f"var{k}"] = k
        for label, cell in (("5-line", CELL_5), ("500-line", CELL_500)):
            runs = args.runs if label == "5-line" else max(20, args.runs // 10)
            before, after = time_hooks(engine, shell, cell, runs)
            results[f"{label}, {nvars} vars (us)"] = round(before, 1)
            results[f"{label}, {nvars} vars, after the reply (us)"] = round(after, 1)
    for key, value in results.items():
        print(f"{key:50} {value:9.1f}")
    write_json(args.out, "tracking.json", results)
    return results


def write_json(out: str, name: str, results: t.Any) -> None:
    """Write *results* as OUT/NAME (indented JSON), making OUT if needed."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
