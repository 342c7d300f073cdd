"""Python bytecodes greed runs per ordinary cell: the hot path, counted exactly.

    python -m benchmarks.bytecodes [--out docs/benchmarks] [--periodic]

The instruction counts of ``benchmarks.hotpath`` move by thousands from run to run (the
guard's thread and the GIL hand-offs it causes), more than the 10% an issue may allow.
This counts what does not move: the bytecodes executed in greed_kernel's own frames on
the main thread (``sys.settrace`` with opcode events), in the same loop as hotpath's
attached variant (``hotpath._loop``), at 300 and at 1,300 cells after the warm-up; the
difference over 1,000 cells is per cell, with which function ran it. Periodic work
(a cleanup every 100 cells, an optimisation every 50) is off unless ``--periodic``:
it is not the hot path. The C work those bytecodes cause is not counted.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import typing as t

from .tracking import write_json

CODES = ("x = 1", "x + 1")
SHORT, LONG = 300, 1300
#: the loop's lines (the cells print their results too)
MARK = "greed-bytecodes"


def _counted(cells: int, code: str, periodic: bool) -> collections.Counter[str]:
    """Bytecodes per greed function over *cells* cells (in this process)."""
    from IPython.core.interactiveshell import InteractiveShell

    from . import hotpath, tracking

    if not periodic:
        plain = tracking.Settings

        def settings(**kwargs: t.Any) -> t.Any:
            made = plain(**kwargs)
            made.cleanup_interval = made.optimize_interval = 0
            return made

        tracking.Settings = settings  # type: ignore[misc,assignment]
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: t.Any, event: str, arg: t.Any) -> t.Any:
        code_ = frame.f_code
        if "greed_kernel" not in code_.co_filename:
            return None
        frame.f_trace_opcodes = True
        key = f"{os.path.basename(code_.co_filename)}:{code_.co_qualname}"

        def local(frame: t.Any, event: str, arg: t.Any) -> t.Any:
            if event == "opcode":
                counts[key] += 1
            return local

        return local

    if InteractiveShell.initialized():
        InteractiveShell.clear_instance()
    sys.settrace(tracer)
    try:
        hotpath._loop("attached", cells, code)
    finally:
        sys.settrace(None)
    return counts


def per_cell(code: str, periodic: bool = False) -> dict[str, float]:
    """Bytecodes per cell by greed function, and ``total`` (in a fresh process each)."""
    runs = []
    for cells in (SHORT, LONG):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bytecodes", "--loop", str(cells), code]
            + (["--periodic"] if periodic else []),
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        ).stdout
        marked = [line.split(" ")[1:] for line in out.splitlines() if line.startswith(MARK)]
        runs.append({key: n for key, n in marked})
    short, long = runs
    rows = {k: (int(long[k]) - int(short.get(k, 0))) / (LONG - SHORT) for k in long}
    rows = {k: v for k, v in sorted(rows.items(), key=lambda kv: -kv[1]) if v}
    return {"total": sum(rows.values()), **rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bytecodes")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--periodic", action="store_true", help="periodic work on")
    parser.add_argument("--loop", nargs=2, metavar=("CELLS", "CODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop:
        for key, n in _counted(int(args.loop[0]), args.loop[1], args.periodic).items():
            print(MARK, key, n)
        return 0
    results = {code: per_cell(code, args.periodic) for code in CODES}
    for code, rows in results.items():
        parts = ", ".join(f"{k} {v:g}" for k, v in rows.items() if k != "total")
        print(f"{code!r:8} greed runs {rows['total']:g} bytecodes per cell: {parts}")
    write_json(args.out, "bytecodes.json", {"periodic": args.periodic, "per_cell": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
