"""A control for the trivial suite: the latency a known amount of pure CPU work adds.

    python -m benchmarks.busywork [--us 30] [--processes 16] [--cells 600] [--out DIR]

Pairs of python3 kernels run the trivial suite's between-process design (the same
interleaving, alternating start order and paired estimate), one kernel of each pair
with a busy loop registered on the shell's ``pre_run_cell`` and ``post_run_cell``
events: *us* microseconds of ``perf_counter`` spinning per cell, half at each event,
where greed's hooks run. No greed code is involved. What it shows is how much latency
that much work on the kernel's main thread adds on this machine, and how well the
design tells two amounts of work apart. Writes busywork.json under ``--out`` (default:
print only).
"""

from __future__ import annotations

import argparse
import time
import typing as t

from .estimates import TRIVIAL_CODES, paired_added_us
from .kernels import PYTHON3, Variant, started
from .sandbox import Sandbox
from .tracking import write_json
from .trivial import TRIVIAL_BATCH, interleaved, pairs

BUSY = Variant("python3-busy", "python3")

#: Run once in each busy kernel; BUSY_SECONDS is replaced by half the work per cell.
_SETUP = """\
def _bench_busy():
    import time
    pc = time.perf_counter
    def spin(*args):
        end = pc() + BUSY_SECONDS
        while pc() < end:
            pass
    shell = get_ipython()
    shell.events.register("pre_run_cell", spin)
    shell.events.register("post_run_cell", spin)
_bench_busy()
del _bench_busy
"""


def busywork(
    sandbox: Sandbox, us: float, processes: int, cells: int, progress: t.Callable[[str], None]
) -> dict[str, t.Any]:
    """The paired estimate of what *us* microseconds of work per cell add (us, by code)."""
    rows: list[dict[str, t.Any]] = []
    setup = _SETUP.replace("BUSY_SECONDS", repr(us / 2e6))
    t0 = time.monotonic()
    for first in range(0, processes, TRIVIAL_BATCH):
        numbers = range(first, min(processes, first + TRIVIAL_BATCH))
        with started(sandbox, pairs(numbers, PYTHON3, BUSY)) as kernels:
            for kernel in kernels:
                if kernel.label.startswith(BUSY.label):
                    kernel.must_run(setup)
            interleaved(kernels, cells, rows)
        progress(f"  busywork: {numbers.stop}/{processes} pairs, {time.monotonic() - t0:.0f} s")
    return {
        "work_us": us,
        "processes": processes,
        "cells": cells,
        "paired_by_code": {
            code: paired_added_us(rows, code, kinds=(PYTHON3.label, BUSY.label))
            for code in TRIVIAL_CODES
        },
    }


def main(argv: list[str] | None = None) -> dict[str, t.Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.busywork")
    parser.add_argument("--us", type=float, default=30.0, help="work per cell (default 30)")
    parser.add_argument("--processes", type=int, default=16, help="pairs of kernels (16)")
    parser.add_argument("--cells", type=int, default=600, help="cells per kernel (600)")
    parser.add_argument("--out", default="", help="write busywork.json here")
    args = parser.parse_args(argv)
    with Sandbox() as sandbox:
        results = busywork(sandbox, args.us, args.processes, args.cells, print)
    for code, p in results["paired_by_code"].items():
        if p:
            low, high = p["interval_us"] or (float("nan"), float("nan"))
            print(
                f"{args.us:g} us of work per cell, {code!r}: {p['added_us']:+.0f} us "
                f"(95% interval {low:+.0f} to {high:+.0f}), {p['pairs']} pairs"
            )
    if args.out:
        write_json(args.out, "busywork.json", results)
    return results


if __name__ == "__main__":
    main()
