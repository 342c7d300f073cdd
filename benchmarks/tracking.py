"""Time the kernel adds to each cell: context tracking and the trigger checks.

    python -m benchmarks.tracking [--out docs/benchmarks]

Runs Greed's per-cell hooks (pre_run_cell, the scan of the compiled tree,
post_run_cell, after_execute) on a real in-process IPython shell, for an
ordinary 5-line cell and a 500-line cell, with 10 and 10,000 variables in the
namespace. Periodic cleanups are disabled so only the per-cell work is timed.
Writes tracking.json next to the other benchmark results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from greed_kernel.engine import Engine

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


class Settings:
    """GreedKernel's defaults, with periodic work off (only per-cell work is timed)."""

    preserve = ("model",)
    recent_window = 300.0
    temporary_patterns = ("_temp_*", "_out_*")
    evict_min_bytes = 1 << 20
    cleanup_interval = 0
    optimize_interval = 0
    memory_threshold = 0.8
    memory_low_watermark = 0.7
    memory_limit = 0
    pressure_cooldown = 10
    idle_timeout = 0
    output_cache_keep = 3
    evict = "page"
    gc_freeze = False
    oom_recovery = True
    spill_max_bytes = 0
    spill_dir = ""


class _Info:
    silent = False
    store_history = True
    raw_cell = ""


class _Result:
    error_in_exec = None

    def __init__(self, info: _Info) -> None:
        self.info = info


def time_hooks(engine: Engine, shell: InteractiveShell, cell: str, runs: int) -> float:
    """Median microseconds of one cell's worth of Greed hooks."""
    tree = shell.compile.ast_parse(shell.transform_cell(cell))
    samples = []
    for _ in range(runs):
        info = _Info()
        result = _Result(info)
        t0 = time.perf_counter()
        engine.pre_run_cell(info)
        engine.on_tree(tree)
        engine.post_run_cell(result)
        engine.after_execute()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args(argv)
    shell = InteractiveShell.instance()
    engine = Engine(shell, Settings())  # type: ignore[arg-type]
    shell.run_cell("model = None\n" + CELL_5)  # define model, scale, weight, values
    results = {}
    for nvars in (10, 10_000):
        for k in range(nvars):
            shell.user_ns[f"var{k}"] = k
        for label, cell in (("5-line", CELL_5), ("500-line", CELL_500)):
            runs = args.runs if label == "5-line" else max(20, args.runs // 10)
            results[f"{label}, {nvars} vars (us)"] = round(time_hooks(engine, shell, cell, runs), 1)
    for key, value in results.items():
        print(f"{key:32} {value:9.1f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tracking.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
