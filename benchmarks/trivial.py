"""The trivial suite: what greed adds to ``x = 1`` and ``x + 1``, against python3.

Many short-lived kernel processes of each kind run a few hundred trivial cells each,
in batches alive together and interleaved cell by cell; the estimates
(:mod:`benchmarks.estimates`) pool or pair their cells. Each kernel also times its own
execute handler, and in the greed kernels greed is then switched off and on, cell by
cell, to compare the two in the same processes (:mod:`benchmarks.probes`). The
control runs the same design with python3 on both sides, or against a python3
kernel that only imported greed's modules.
"""

from __future__ import annotations

import statistics
import time
import typing as t

from . import probes
from .estimates import (
    TRIVIAL_CODES,
    attached_results,
    bootstrap_added_us,
    paired_added_us,
)
from .harness import Kernel
from .kernels import GREED, PYTHON3, Progress, Variant, median, ratio, rotated, started
from .sandbox import Sandbox


def pairs(numbers: range, first: Variant, second: Variant) -> list[Variant]:
    """A kernel of each variant per number, labelled ``label#n``. Kernels started
    earlier run slower (by up to 0.2 ms a cell, whatever the kernel): every other pair
    starts the second variant first."""
    return [
        Variant(f"{v.label}#{n}", v.spec, v.args)
        for n in numbers
        for v in ((first, second) if n % 2 == 0 else (second, first))
    ]


def interleaved(
    kernels: list[Kernel], cells: int, rows: list[dict[str, t.Any]], setup: str = ""
) -> None:
    """20 warm-up cells on each kernel (then *setup*, if any), then *cells* trivial
    cells, one kernel after the other, the starting kernel rotating every two cells;
    each cell's latency appended to *rows*."""
    for k in kernels:  # warm-up, not recorded
        for i in range(20):
            k.must_run(TRIVIAL_CODES[i % 2])
        if setup:
            k.must_run(setup)
    for i in range(cells):
        code = TRIVIAL_CODES[i % 2]
        for k in rotated(kernels, i // 2):
            run = k.run(code)
            if run.status != "ok":
                raise RuntimeError(f"{k.label}: {code!r} failed: {run.reply}")
            rows.append(
                {
                    "kernel": k.label.split("#")[0],
                    "process": k.label,
                    "i": i + 1,
                    "code": code,
                    "latency_ms": round(run.latency_s * 1000.0, 4),
                }
            )


#: Kernel processes of each kind alive at a time in the trivial suite.
TRIVIAL_BATCH = 4


def trivial(
    sandbox: Sandbox,
    cells: int,
    processes: int = 16,
    batch: int = TRIVIAL_BATCH,
    progress: Progress = print,
    greed_args: tuple[str, ...] = (),
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """``x = 1`` and ``x + 1``, alternately, *cells* of them on each of *processes*
    python3 kernels and as many greed kernels; *batch* of each kind alive at a time,
    all of a batch interleaved cell by cell.

    Two processes of the same kernel differ in median latency by tens of
    microseconds, and sometimes 0.2 ms (on a shared machine, and with ASLR off and a
    fixed hash seed too), more than the difference measured here; and one cell's
    latency spreads over milliseconds. So many short-lived processes each run a few
    hundred cells (as pyperf runs many worker processes), the medians pool the cells
    of each kind, and a bootstrap over processes and cells gives a 95% interval.
    Besides the latency seen by the client (request sent to idle status), each kernel
    times its own execute handler (handler called to reply sent).

    Then, in the greed kernels of each batch, as many cells again with greed attached
    on every other cell and detached on the others (:func:`toggled_cells`), and as many
    with only the memory guard on and off (``results["guard"]``): the same processes,
    so neither the spread between processes nor the drift of the machine weighs on
    those differences. *greed_args*: extra command-line
    arguments of the greed kernels (``--GreedKernel.optimize_interval=0`` and
    ``--GreedKernel.cleanup_interval=0`` time ordinary cells without the periodic work).
    """
    rows: list[dict[str, t.Any]] = []
    handler: dict[str, list[float]] = {}
    toggled = 2 * (cells // 2)  # cells of the attached / detached phase, per greed kernel
    toggles: list[dict[str, t.Any]] = []
    guard_toggles: list[dict[str, t.Any]] = []
    t0 = time.monotonic()
    for first in range(0, processes, batch):
        numbers = range(first, min(processes, first + batch))
        greed_variant = Variant(GREED.label, GREED.spec, GREED.args + tuple(greed_args))
        with started(sandbox, pairs(numbers, PYTHON3, greed_variant)) as kernels:
            interleaved(kernels, cells, rows, setup=probes.HANDLER_TIMER)
            for k in kernels:
                times = k.must_run(probes.HANDLER_TIMES).stdout.strip().split(",")
                handler[k.label] = [float(v) for v in times[:cells]]
            greed = [k for k in kernels if k.spec == GREED.spec]
            toggles += toggled_cells(greed, "greed", toggled)
            guard_toggles += toggled_cells(greed, "guard", toggled)
        progress(
            f"  trivial: {numbers.stop}/{processes} processes of each kernel, "
            f"{time.monotonic() - t0:.0f} s"
        )
    results: dict[str, t.Any] = {
        "cells": cells,
        "processes": processes,
        "batch": batch,
        "greed_args": list(greed_args),
        "kernels": {},
    }
    for label in ("python3", "greed"):
        mine = [r for r in rows if r["kernel"] == label]
        values = [r["latency_ms"] for r in mine]
        in_handler = [
            v for name, times in handler.items() if name.startswith(label + "#") for v in times
        ]
        results["kernels"][label] = {
            "median_ms": median(values),
            "mean_ms": statistics.fmean(values),
            "median_by_code_ms": {
                code: median([r["latency_ms"] for r in mine if r["code"] == code])
                for code in TRIVIAL_CODES
            },
            "median_by_process_ms": {
                name: median([r["latency_ms"] for r in mine if r["process"] == name])
                for name in sorted({r["process"] for r in mine}, key=_process_number)
            },
            "handler_median_us": median(in_handler),
        }
    p3, gr = results["kernels"]["python3"], results["kernels"]["greed"]
    results["added_ms_median"] = gr["median_ms"] - p3["median_ms"]
    # x = 1 and x + 1 take 1.5 ms apart: the median of all cells falls between the two
    # and moves with either, so the % is taken per code, the larger one reported
    results["added_percent_by_code"] = {
        code: 100.0
        * (gr["median_by_code_ms"][code] - p3["median_by_code_ms"][code])
        / p3["median_by_code_ms"][code]
        for code in TRIVIAL_CODES
    }
    results["added_percent"] = max(results["added_percent_by_code"].values())
    results["added_ms_mean"] = gr["mean_ms"] - p3["mean_ms"]
    results["added_us_by_code"] = {
        code: 1000.0 * (gr["median_by_code_ms"][code] - p3["median_by_code_ms"][code])
        for code in TRIVIAL_CODES
    }
    results["added_us_interval"] = bootstrap_added_us(rows, None)
    results["added_us_interval_by_code"] = {
        code: bootstrap_added_us(rows, code) for code in TRIVIAL_CODES
    }
    results["paired_by_code"] = {code: paired_added_us(rows, code) for code in TRIVIAL_CODES}
    results["handler_added_us"] = gr["handler_median_us"] - p3["handler_median_us"]
    # the same paired by process, with an interval: how much of the added latency is in
    # the execute handler (cell i of each kernel ran TRIVIAL_CODES[i % 2])
    handler_rows = [
        {
            "kernel": name.split("#")[0],
            "process": name,
            "code": TRIVIAL_CODES[i % 2],
            "latency_ms": v / 1000.0,
        }
        for name, times in handler.items()
        for i, v in enumerate(times)
    ]
    results["handler_paired_by_code"] = {
        code: paired_added_us(handler_rows, code) for code in TRIVIAL_CODES
    }
    results["attached"] = attached_results(toggles)
    results["guard"] = attached_results(guard_toggles)
    results["latency_ratio_median"] = ratio(gr["median_ms"], p3["median_ms"])
    return rows, results


def toggled_cells(greed: list[Kernel], switch: str, cells: int) -> list[dict[str, t.Any]]:
    """*cells* trivial cells on each of the *greed* kernels, interleaved, with *switch*
    (:data:`~benchmarks.probes.SWITCHES`) on for every other cell and off for the
    others, in the same processes; a row per cell, ``attached`` saying whether it was
    on, with the latency and the execute handler's wall and CPU time."""
    rows: list[dict[str, t.Any]] = []
    for k in greed:
        k.must_run(probes.toggle(switch, cells))
    for i in range(cells):
        code = TRIVIAL_CODES[(i // 2) % 2]  # each code on cells with the switch on and off
        for k in rotated(greed, i // 2):
            run = k.run(code)
            rows.append(
                {
                    "process": k.label,
                    "i": i + 1,
                    "code": code,
                    "attached": i % 2 == 0,
                    "latency_ms": run.latency_s * 1000.0,
                }
            )
    for k in greed:
        lines = k.must_run(probes.TOGGLE_STOP).stdout.strip().split(";")
        mine = [r for r in rows if r["process"] == k.label]
        for r, line in zip(mine, lines, strict=True):
            on, wall, cpu = line.split(",")
            if (on == "1") != r["attached"]:
                raise RuntimeError(f"{k.label}: the {switch} toggle lost its step at cell {r['i']}")
            r["handler_us"], r["cpu_us"] = float(wall), float(cpu)
    return rows


#: The second python3 kernel of each pair in :func:`trivial_control`.
PYTHON3_AGAIN = Variant("python3-again", "python3")
#: ... or a python3 kernel that has imported greed's modules (and runs nothing of them).
PYTHON3_GREED_MODULES = Variant("python3-greed-modules", "python3-greed-modules")


def trivial_control(
    sandbox: Sandbox,
    cells: int,
    processes: int = 8,
    batch: int = TRIVIAL_BATCH,
    progress: Progress = print,
    other: Variant = PYTHON3_AGAIN,
) -> dict[str, t.Any]:
    """The trivial suite's between-process design with python3 on both sides: what
    the spread between processes alone gives (an A/A control). The same cells, the
    same interleaving and alternating start order, the same medians and bootstrap.
    *other*: the kernel in greed's place (:data:`PYTHON3_GREED_MODULES`: what holding
    greed's code, without running it, adds)."""
    rows: list[dict[str, t.Any]] = []
    t0 = time.monotonic()
    for first in range(0, processes, batch):
        numbers = range(first, min(processes, first + batch))
        with started(sandbox, pairs(numbers, PYTHON3, other)) as kernels:
            if other is PYTHON3_GREED_MODULES:
                for kernel in kernels:
                    if kernel.label.startswith(other.label):
                        _check_greed_modules(kernel)
            interleaved(kernels, cells, rows)
        progress(
            f"  trivial control: {numbers.stop}/{processes} pairs of python3 and "
            f"{other.label} kernels, {time.monotonic() - t0:.0f} s"
        )
    kinds = ("python3", other.label)

    def median_of(kind: str, code: str) -> float:
        return median([r["latency_ms"] for r in rows if r["kernel"] == kind and r["code"] == code])

    added = {
        code: 1000.0 * (median_of(kinds[1], code) - median_of(kinds[0], code))
        for code in TRIVIAL_CODES
    }
    return {
        "cells": cells,
        "processes": processes,
        "added_us_by_code": added,
        "added_us_interval_by_code": {
            code: bootstrap_added_us(rows, code, kinds=kinds) for code in TRIVIAL_CODES
        },
        "added_percent_by_code": {
            code: added[code] / 10.0 / median_of(kinds[0], code) for code in TRIVIAL_CODES
        },
        "paired_by_code": {
            code: paired_added_us(rows, code, kinds=kinds) for code in TRIVIAL_CODES
        },
    }


def _check_greed_modules(kernel: Kernel) -> None:
    """The kernel holds greed's modules and runs python3's kernel class, or we say so."""
    seen = kernel.must_run(
        "print('greed_kernel.engine.greed' in __import__('sys').modules, "
        "type(get_ipython().kernel).__name__)"
    ).stdout.split()
    if seen != ["True", "IPythonKernel"]:
        raise RuntimeError(f"{kernel.label}: not python3 with greed's modules imported: {seen}")


def _process_number(name: str) -> int:
    return int(name.rpartition("#")[2])
