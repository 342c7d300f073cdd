"""Instructions greed adds to an ordinary cell, counted in-process by callgrind.

    python -m benchmarks.hotpath [--out docs/benchmarks]

A real ``InteractiveShell`` runs cells of one code (``x = 1``, ``x + 1``) the way the
kernel runs them: greed attached (``begin`` of its ``do_execute``, which arms the
memory guard, the shell events, the tree hook, ``cell_done``, and whatever it schedules
after the reply, run at once), attached with the guard off (``guard_threshold = 0``),
and detached (greed built, as in a greed kernel, but not connected: its objects are in
the heap that the collector walks either way). Each variant runs under ``valgrind
--tool=callgrind`` twice, with 300 and with 1,300 cells after 50 warm-up cells, so
that start-up cancels: greed's instructions per cell are the attached difference
minus the detached one, over 1,000 cells. Each thread is counted apart
(``--separate-threads=yes``): with ``PYTHONHASHSEED=0`` the main thread's counts repeat
exactly from run to run (no kernel or socket is involved), so that number moves only
when the per-cell code of greed (or of IPython and Python) changes. The guard's thread
is counted too, apart: how often it reads depends on wall time.

This is the hot path alone. The kernel adds its ``do_execute`` layer, and a cell runs
there with cold caches; ``python -m benchmarks --only trivial,instructions`` measures
those, against python3 kernels.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CODES = ("x = 1", "x + 1")
WARM = 50
#: the two runs of each variant: their difference, per cell, is what is reported
SHORT, LONG = 300, 1300
#: greed not connected; connected with the memory guard off; connected as a kernel runs it
VARIANTS = ("detached", "unguarded", "attached")


def per_cell(short: int, long: int, cells: int = LONG - SHORT) -> float:
    """Instructions per cell from the counts of a short and a long run."""
    return (long - short) / cells


def _loop(variant: str, cells: int, code: str) -> None:
    """Run *cells* cells of *code* (after WARM) on a fresh shell; greed *variant*."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from greed_kernel.engine import triggers
    from greed_kernel.engine.greed import Greed

    from .tracking import Settings

    triggers.PROBE_EVERY_CELL_SECONDS = 3600.0  # one look at the memory, in the warm-up
    c = Config()
    c.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=c)
    shell.displayhook.cache_size = 0  # the output cache would grow with the count
    shell.user_ns["x"] = 1
    settings = Settings(paging_dir=tempfile.mkdtemp(prefix="greed-hotpath-"))
    if variant == "unguarded":  # attached, with the memory guard off
        settings.guard_threshold = 0.0
    run = shell.run_cell
    queue: list[t.Callable[[], None]] = []

    def schedule(delay: float, callback: t.Callable[[], None]) -> object:
        queue.append(callback)
        return callback

    greed = Greed(shell, parent=settings, schedule=schedule, publish=lambda m, p: None)
    if variant == "detached":  # built, as in a greed kernel, but not connected
        for _ in range(WARM + cells):
            run(code, store_history=True)
        return
    greed.register()
    for _ in range(WARM + cells):
        greed.begin()  # as the kernel's do_execute: the flag, and the guard armed
        try:
            run(code, store_history=True)
        finally:
            greed.cell_done()
        while queue:  # the reply is sent: what was scheduled after it
            queue.pop(0)()


def _count(variant: str, cells: int, code: str, work: Path) -> tuple[int, int]:
    """Instructions of one run: the main thread's, and all threads' together."""
    out = work / f"{variant}.{cells}.{abs(hash(code))}"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.hotpath",
            "--loop",
            variant,
            str(cells),
            code,
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1800,
    )
    from .instructions import counted

    total, main = counted(sorted(work.glob(f"{out.name}-*")))
    if main is None:
        raise RuntimeError(f"{out.name}: callgrind wrote no main-thread dump")
    return main, total


def measure(jobs: int = 2) -> dict[str, dict[str, float]]:
    """For each code: the main thread's instructions per cell detached, unguarded and
    attached, greed's difference (``added``) and the guard's (``guard``); then the same
    differences over all threads (``*_all_threads``: the guard's thread included, whose
    readings depend on wall time under valgrind, so those do not repeat exactly)."""
    runs = [(v, n, code) for code in CODES for v in VARIANTS for n in (SHORT, LONG)]
    with (
        tempfile.TemporaryDirectory(prefix="greed-hotpath-") as tmp,
        ThreadPoolExecutor(jobs) as pool,
    ):
        counts = dict(zip(runs, pool.map(lambda r: _count(*r, Path(tmp)), runs), strict=True))
    results = {}
    for code in CODES:
        main, every = (
            {v: per_cell(counts[(v, SHORT, code)][k], counts[(v, LONG, code)][k]) for v in VARIANTS}
            for k in (0, 1)
        )
        results[code] = {
            **main,
            "added": main["attached"] - main["detached"],
            "guard": main["attached"] - main["unguarded"],
            "added_all_threads": every["attached"] - every["detached"],
            "guard_all_threads": every["attached"] - every["unguarded"],
        }
    return results


def main(argv: list[str] | None = None) -> dict[str, t.Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at a time")
    loop = ("VARIANT", "CELLS", "CODE")
    parser.add_argument("--loop", nargs=3, metavar=loop, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop:
        variant, cells, code = args.loop
        _loop(variant, int(cells), code)
        return {}
    if shutil.which("valgrind") is None:
        print("hotpath: valgrind not found on PATH; skipped")
        return {}
    from .tracking import write_json

    results = measure(args.jobs)
    for code, row in results.items():
        print(
            f"{code!r:10} detached {row['detached']:>12,.0f}  attached {row['attached']:>12,.0f}"
            f"  greed adds {row['added']:>8,.0f} instructions per cell"
            f" (the memory guard {row['guard']:>6,.0f}); main thread. All threads:"
            f" {row['added_all_threads']:>8,.0f} (guard {row['guard_all_threads']:>6,.0f})"
        )
    write_json(args.out, "hotpath.json", results)
    return results


if __name__ == "__main__":
    main()
