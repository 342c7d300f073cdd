"""The six measurements: soak, trivial-cell overhead, housekeeping cost, start-up,
paging against raw file I/O, and a session under a memory budget.

Each suite takes a :class:`~benchmarks.harness.Sandbox`, starts its own
kernels (or, for paging, a fresh process), shuts them down, and returns plain
data (lists of row dicts for the CSV files and a dict of results for
summary.json).

Where two kernels are compared on the same cells (soak, trivial cells, budget),
they are alive together and take turns cell by cell, never running at the same
time, with the order rotated every cell: whatever else loads the machine
weighs on both alike. Paging and raw I/O alternate their order every repetition.

Memory is read from /proc/PID/status of each kernel and its children: RssAnon,
RssFile and RssShmem apart, and VmRSS (their sum).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import statistics
import subprocess
import sys
import time
import typing as t
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .harness import Kernel, Sandbox
from .workload import (
    NONDETERMINISTIC_KINDS,
    RESULT_EXPRESSIONS,
    STATE_EXPRESSIONS,
    generate,
    setup_code,
)

Progress = Callable[[str], None]
MiB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    """A kernel to benchmark: a label, its spec and extra command-line arguments."""

    label: str
    spec: str
    args: tuple[str, ...] = ()


PYTHON3 = Variant("python3", "python3")
GREED = Variant("greed", "greed")


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@contextlib.contextmanager
def started(sandbox: Sandbox, variants: Sequence[Variant]) -> Iterator[list[Kernel]]:
    """Start one kernel per variant; shut them all down afterwards."""
    kernels: list[Kernel] = []
    try:
        for v in variants:
            k = Kernel(sandbox, v.spec, v.label, v.args)
            kernels.append(k)
            k.start()
        yield kernels
    finally:
        for k in kernels:
            k.shutdown()


def _rotated(kernels: list[Kernel], i: int) -> list[Kernel]:
    j = i % len(kernels)
    return kernels[j:] + kernels[:j]


def _digest(text: str | None) -> str:
    return "" if text is None else hashlib.sha1(text.encode()).hexdigest()[:12]


# -- 1. soak ----------------------------------------------------------------------------
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
                "args": list(next(v.args for v in variants if v.label == k.label)),
                "setup_s": run.latency_s,
                "rss_after_setup": base[k.label]["rss"],
                "memory_after_setup": base[k.label],
            }
        outputs: dict[str, list[str]] = {k.label: [] for k in kernels}
        t0 = time.monotonic()
        for cell in workload:
            for k in _rotated(kernels, cell.index):
                run = k.run(cell.code)
                mem = k.memory()
                outputs[k.label].append(_digest(run.result) + "/" + (run.error or ""))
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
                r["greed_stats"] = _greed_stats(k)
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
        r.update(_series_stats(mine, base[label]))
        r["identical_to_" + ref] = r["result"] == results["kernels"][ref]["result"]
        ref_lat = [row["latency_ms"] for row in rows if row["kernel"] == ref]
        lat = [row["latency_ms"] for row in mine]
        # the same cell, at nearly the same moment: robust against a changing load
        r["latency_paired_ratio_median"] = _median(
            [a / b for a, b in zip(lat, ref_lat, strict=True) if b > 0]
        )
        r["latency_paired_diff_median_ms"] = _median(
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


def _series_stats(rows: list[dict[str, t.Any]], base: dict[str, int]) -> dict[str, t.Any]:
    lat = [r["latency_ms"] for r in rows]
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["latency_ms"])
    window = min(50, max(1, len(lat) // 2))
    memory: dict[str, t.Any] = {}
    for prefix, column, kind in MEMORY_SERIES:
        series = [r[column] for r in rows]
        memory[f"{prefix}_start"] = base[kind]
        memory[f"{prefix}_end"] = series[-1]
        memory[f"{prefix}_peak"] = max([base[kind], *series])
        memory[f"{prefix}_growth"] = series[-1] - base[kind]
    # "anonymous": RssAnon + RssShmem, what a memory budget counts
    anonymous = [r["rss_anon_bytes"] + r["rss_shmem_bytes"] for r in rows]
    start = base["anon"] + base["shmem"]
    memory["anonymous_start"] = start
    memory["anonymous_end"] = anonymous[-1]
    memory["anonymous_peak"] = max([start, *anonymous])
    memory["anonymous_growth"] = anonymous[-1] - start
    return {
        **memory,
        "latency_median_ms": _median(lat),
        "latency_mean_ms": statistics.fmean(lat),
        "latency_p90_ms": statistics.quantiles(lat, n=10)[-1] if len(lat) > 1 else lat[0],
        "latency_max_ms": max(lat),
        "latency_first_window_ms": _median(lat[:window]),
        "latency_last_window_ms": _median(lat[-window:]),
        "latency_window": window,
        "latency_median_by_kind_ms": {k: _median(v) for k, v in sorted(by_kind.items())},
        "status_mismatches": sum(1 for r in rows if r["status"] != r["expect"]),
        "errors": sum(1 for r in rows if r["status"] == "error"),
    }


_STATS_EXPR = (
    "__import__('json').dumps({'snapshot': get_ipython().kernel.greed.service.snapshot(), "
    "'pagedTotal': get_ipython().kernel.greed.store.pager.paged_total, "
    "'reports': [{k: r.get(k) for k in ('kind', 'trigger', 'executionCount', 'durationMs', "
    "'freedBytes', 'gcCollected', 'pagedBytes', 'pressureBefore', 'pressureAfter', "
    "'outputsReleased', 'gradsCleared')} "
    "for r in get_ipython().kernel.greed.service.reports()]})"
)
_SNAPSHOT_KEYS = (
    "executionCount",
    "cleanupCount",
    "optimizeCount",
    "pagedBytes",
    "pagingNotice",
    "rssBytes",
)


def _greed_stats(k: Kernel) -> dict[str, t.Any]:
    """Greed's own counters, and its last reports (at most 20, the kernel keeps no more).

    ``pagedBytes`` is what is paged out now (mapped from greed's files);
    ``pagedTotal`` every byte ever paged out; ``paged`` the names paged now.
    """
    try:
        raw = json.loads(ast.literal_eval(k.evaluate(s=_STATS_EXPR)["s"]))
    except Exception as e:
        return {"failed": str(e)}
    snap = raw["snapshot"]
    reports = raw["reports"]
    out: dict[str, t.Any] = {key: snap.get(key) for key in _SNAPSHOT_KEYS}
    out["pagedNames"] = len(snap.get("paged") or []) + (snap.get("pagedOmitted") or 0)
    # whether a paging directory was chosen (the path itself is this machine's business)
    out["pagingDirectorySet"] = bool(snap.get("pagingDirectory"))
    out["pagedTotal"] = raw.get("pagedTotal")
    for kind in ("cleanup", "optimize"):
        ms = [r["durationMs"] for r in reports if r["kind"] == kind and r["trigger"] == "periodic"]
        out[f"{kind}_reports_seen"] = len(ms)
        out[f"{kind}_median_ms"] = _median(ms)
        out[f"{kind}_max_ms"] = max(ms) if ms else None
    memory = [r for r in reports if r["kind"] == "cleanup" and r["trigger"] == "memory"]
    out["memory_cleanups_seen"] = len(memory)
    out["memory_cleanup_median_ms"] = _median([r["durationMs"] for r in memory])
    out["reports"] = reports
    return out


# -- 2. trivial cells -------------------------------------------------------------------
TRIVIAL_CODES = ("x = 1", "x + 1")
#: Run once in every kernel of the trivial suite (python3's and greed's alike): the time
#: from an execute request's handler being called to its reply being sent, in the kernel.
_HANDLER_TIMER = """\
def _bench_timer(kernel=get_ipython().kernel, times=[]):
    import time
    inner = kernel.shell_handlers["execute_request"]
    async def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)
    kernel.shell_handlers["execute_request"] = timed
    return times
_bench_times = _bench_timer()
del _bench_timer
"""
_HANDLER_TIMES = "print(','.join(f'{s * 1e6:.1f}' for s in _bench_times))"
#: Run once in every greed kernel of the trivial suite: time greed's own entry points
#: (the shell events, the tree hook with the shell's own transform_ast inside it, and
#: cell_done, all before the reply) per cell and each apart, and the work after the
#: reply. The timers' own cost is included: an upper bound.
_GREED_TIMER = """\
def _bench_greed(g=get_ipython().kernel.greed, cells=[], after=[], each={}):
    import time
    h, acc, shell = g.hooks, [0.0], get_ipython()
    def timed(fn, name, sink=None):
        mine = each.setdefault(name, []) if name else []
        def wrapper(*args):
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                spent = time.perf_counter() - t0
                if sink is after:
                    after.append(spent)
                else:
                    mine.append(spent)
                    acc[0] += spent
                    if sink is cells:
                        cells.append(acc[0])
                        acc[0] = 0.0
        return wrapper
    g.unregister()
    H = type(h)  # slotted, as Greed: methods are wrapped on the classes (one instance each)
    H.pre_run_cell = timed(H.pre_run_cell, "pre_run_cell")
    H.post_run_cell = timed(H.post_run_cell, "post_run_cell")
    G = type(g)
    G.cell_done = timed(G.cell_done, "cell_done", cells)
    G.after_reply = timed(G.after_reply, None, after)
    g.register()
    shell.transform_ast = timed(shell.__dict__["transform_ast"], "transform_ast")
    return cells, after, each
_bench_cells, _bench_after, _bench_each = _bench_greed()
del _bench_greed
"""
_GREED_TIMES = (
    "print(','.join(f'{s * 1e6:.1f}' for s in _bench_cells)); "
    "print(f'{sum(_bench_after) * 1e6:.1f}'); "
    "print(__import__('json').dumps({k: [round(s * 1e6, 2) for s in v] "
    "for k, v in _bench_each.items()}))"
)


#: Run once in every greed kernel of the trivial suite, after the latency cells: from
#: the next cell on, greed is attached on every other cell (its shell events, its tree
#: hook and its do_execute) and detached on the others (the kernel then runs cells as
#: IPythonKernel does), the switch made after each cell's reply is built. The switch
#: only moves objects made here in and out of lists and dicts: it makes no object, so
#: it leaves nothing for the collector to do during the next cell. Each cell's execute handler
#: is timed (wall and the main thread's CPU time), for the first CELLS cells (CELLS is
#: replaced by the count before it runs).
_TOGGLE = """\
def _bench_toggle(kernel=get_ipython().kernel):
    import time, types
    from ipykernel.ipkernel import IPythonKernel
    hooks, shell = kernel.greed.hooks, kernel.shell
    pre = shell.events.callbacks["pre_run_cell"]
    post = shell.events.callbacks["post_run_cell"]
    starting, ending = hooks.pre_run_cell, hooks.post_run_cell
    tree_hook = shell.__dict__["transform_ast"]
    plain = types.MethodType(IPythonKernel.do_execute, kernel)
    inner = kernel.shell_handlers["execute_request"]
    size = CELLS
    wall, cpu, attached, n, state = [0.0] * size, [0.0] * size, [0] * size, [0], [1]
    stopped = []
    pc, tt = time.perf_counter, time.thread_time
    async def timed(*args, **kwargs):
        t0, c0 = pc(), tt()
        try:
            return await inner(*args, **kwargs)
        finally:
            if stopped:
                return
            i = n[0]
            if i < size:
                wall[i], cpu[i], attached[i] = pc() - t0, tt() - c0, state[0]
            n[0] += 1
            if state[0]:
                pre.remove(starting)
                post.remove(ending)
                del shell.__dict__["transform_ast"]
                kernel.__dict__["do_execute"] = plain
                state[0] = 0
            else:
                pre.append(starting)
                post.append(ending)
                shell.__dict__["transform_ast"] = tree_hook
                del kernel.__dict__["do_execute"]
                state[0] = 1
    def stop():
        stopped.append(True)  # this cell is not recorded, and greed stays attached
        kernel.shell_handlers["execute_request"] = inner
        print(";".join(
            f"{attached[i]},{wall[i] * 1e6:.1f},{cpu[i] * 1e6:.1f}" for i in range(min(n[0], size))
        ))
    kernel.shell_handlers["execute_request"] = timed
    return stop
_bench_toggle_stop = _bench_toggle()
del _bench_toggle
"""
#: Its readout: one "attached,wall_us,cpu_us" per cell; the readout's own cell runs
#: attached (after an even count of cells) and is neither recorded nor switched.
_TOGGLE_STOP = "_bench_toggle_stop()"


def _pairs(numbers: range, first: Variant, second: Variant) -> list[Variant]:
    """A kernel of each variant per number, labelled ``label#n``. Kernels started
    earlier run slower (by up to 0.2 ms a cell, whatever the kernel): every other pair
    starts the second variant first."""
    return [
        Variant(f"{v.label}#{n}", v.spec, v.args)
        for n in numbers
        for v in ((first, second) if n % 2 == 0 else (second, first))
    ]


def _interleaved(
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
        for k in _rotated(kernels, i // 2):
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
#: Resamples of the bootstrap that gives the trivial suite's confidence intervals.
BOOTSTRAP_RESAMPLES = 400


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
    on every other cell and detached on the others (:data:`_TOGGLE`): the same
    processes, so neither the spread between processes nor the drift of the machine
    weighs on that difference. Last, greed's own work is timed in its kernels, apart,
    so that the timers weigh on no latency above. *greed_args*: extra command-line
    arguments of the greed kernels (``--GreedKernel.optimize_interval=0`` and
    ``--GreedKernel.cleanup_interval=0`` time ordinary cells without the periodic work).
    """
    rows: list[dict[str, t.Any]] = []
    handler: dict[str, list[float]] = {}
    own: list[float] = []  # greed's work before the reply, per cell (us)
    own_each: dict[str, list[float]] = {}  # ... by entry point, per call (us)
    after = 0.0  # greed's work after the replies, in all (us)
    timed = max(50, cells // 4)
    toggled = 2 * (cells // 2)  # cells of the attached / detached phase, per greed kernel
    toggles: list[dict[str, t.Any]] = []
    t0 = time.monotonic()
    for first in range(0, processes, batch):
        numbers = range(first, min(processes, first + batch))
        greed_variant = Variant(GREED.label, GREED.spec, GREED.args + tuple(greed_args))
        with started(sandbox, _pairs(numbers, PYTHON3, greed_variant)) as kernels:
            _interleaved(kernels, cells, rows, setup=_HANDLER_TIMER)
            for k in kernels:
                times = k.must_run(_HANDLER_TIMES).stdout.strip().split(",")
                handler[k.label] = [float(v) for v in times[:cells]]
            greed = [k for k in kernels if k.spec == GREED.spec]
            for k in greed:  # greed attached on every other cell, in the same processes
                k.must_run(_TOGGLE.replace("CELLS", str(toggled)))
            for i in range(toggled):
                code = TRIVIAL_CODES[(i // 2) % 2]  # each code on attached and detached cells
                for k in _rotated(greed, i // 2):
                    run = k.run(code)
                    toggles.append(
                        {
                            "process": k.label,
                            "i": i + 1,
                            "code": code,
                            "attached": i % 2 == 0,
                            "latency_ms": run.latency_s * 1000.0,
                        }
                    )
            for k in greed:
                lines = k.must_run(_TOGGLE_STOP).stdout.strip().split(";")
                mine = [r for r in toggles if r["process"] == k.label]
                for r, line in zip(mine, lines, strict=True):
                    attached, wall, cpu = line.split(",")
                    if (attached == "1") != r["attached"]:
                        raise RuntimeError(f"{k.label}: the toggle lost its step at cell {r['i']}")
                    r["handler_us"], r["cpu_us"] = float(wall), float(cpu)
            for k in greed:
                k.must_run(_GREED_TIMER)
            for i in range(timed):
                for k in _rotated(greed, i // 2):
                    k.must_run(TRIVIAL_CODES[i % 2])
            for k in greed:
                per_cell, total, each = k.must_run(_GREED_TIMES).stdout.strip().split("\n")
                own.extend(float(v) for v in per_cell.split(",")[1 : timed + 1])  # [0]: its cell
                after += float(total)
                for name, values in json.loads(each).items():
                    # the timer's own cell ended timed (its start did not), and the
                    # readout's cell started timed
                    first = 0 if name in ("pre_run_cell", "transform_ast") else 1
                    own_each.setdefault(name, []).extend(values[first : first + timed])
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
            "median_ms": _median(values),
            "mean_ms": statistics.fmean(values),
            "median_by_code_ms": {
                code: _median([r["latency_ms"] for r in mine if r["code"] == code])
                for code in TRIVIAL_CODES
            },
            "median_by_process_ms": {
                name: _median([r["latency_ms"] for r in mine if r["process"] == name])
                for name in sorted({r["process"] for r in mine}, key=_process_number)
            },
            "handler_median_us": _median(in_handler),
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
    results["added_us_interval"] = _bootstrap_added_us(rows, None)
    results["added_us_interval_by_code"] = {
        code: _bootstrap_added_us(rows, code) for code in TRIVIAL_CODES
    }
    results["paired_by_code"] = {code: _paired_added_us(rows, code) for code in TRIVIAL_CODES}
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
        code: _paired_added_us(handler_rows, code) for code in TRIVIAL_CODES
    }
    results["attached"] = _attached_results(toggles)
    results["own_work_us"] = _median(own)
    results["own_work_quartiles_us"] = statistics.quantiles(own, n=4) if len(own) > 1 else []
    results["own_work_cells"] = len(own)
    results["own_work_by_call_us"] = {name: _median(v) for name, v in own_each.items() if v}
    results["after_reply_us_per_cell"] = after / max(1, timed * processes)
    results["latency_ratio_median"] = _ratio(gr["median_ms"], p3["median_ms"])
    return rows, results


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
        with started(sandbox, _pairs(numbers, PYTHON3, other)) as kernels:
            if other is PYTHON3_GREED_MODULES:
                for kernel in kernels:
                    if kernel.label.startswith(other.label):
                        _check_greed_modules(kernel)
            _interleaved(kernels, cells, rows)
        progress(
            f"  trivial control: {numbers.stop}/{processes} pairs of python3 and "
            f"{other.label} kernels, {time.monotonic() - t0:.0f} s"
        )
    kinds = ("python3", other.label)

    def median(kind: str, code: str) -> float:
        return _median([r["latency_ms"] for r in rows if r["kernel"] == kind and r["code"] == code])

    added = {
        code: 1000.0 * (median(kinds[1], code) - median(kinds[0], code)) for code in TRIVIAL_CODES
    }
    return {
        "cells": cells,
        "processes": processes,
        "added_us_by_code": added,
        "added_us_interval_by_code": {
            code: _bootstrap_added_us(rows, code, kinds=kinds) for code in TRIVIAL_CODES
        },
        "added_percent_by_code": {
            code: added[code] / 10.0 / median(kinds[0], code) for code in TRIVIAL_CODES
        },
        "paired_by_code": {
            code: _paired_added_us(rows, code, kinds=kinds) for code in TRIVIAL_CODES
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


def _attached_results(rows: Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Greed attached against detached in the same processes: medians of each, the
    added latency by code with a 95% interval, and the added time in the execute
    handler (wall and the main thread's CPU time)."""
    out: dict[str, t.Any] = {"cells": len(rows)}
    if not rows:
        return out
    # the bootstrap's two kinds: attached cells as "greed", detached ones as "python3"
    by_mode = [
        {
            **r,
            "process": ("greed#" if r["attached"] else "python3#") + r["process"].split("#")[1],
        }
        for r in rows
    ]

    def added(key: str, code: str | None) -> float:
        on = [r[key] for r in rows if r["attached"] and (code is None or r["code"] == code)]
        off = [r[key] for r in rows if not r["attached"] and (code is None or r["code"] == code)]
        return statistics.median(on) - statistics.median(off)

    out["added_us"] = 1000.0 * added("latency_ms", None)
    out["added_us_by_code"] = {code: 1000.0 * added("latency_ms", code) for code in TRIVIAL_CODES}
    out["added_us_interval_by_code"] = {
        code: _bootstrap_added_us(by_mode, code) for code in TRIVIAL_CODES
    }
    if all("handler_us" in r for r in rows):
        out["handler_added_us_by_code"] = {
            code: added("handler_us", code) for code in TRIVIAL_CODES
        }
        out["cpu_added_us_by_code"] = {code: added("cpu_us", code) for code in TRIVIAL_CODES}
    out["detached_median_ms_by_code"] = {
        code: statistics.median(
            [r["latency_ms"] for r in rows if not r["attached"] and r["code"] == code]
        )
        for code in TRIVIAL_CODES
    }
    out["added_percent_by_code"] = {
        code: out["added_us_by_code"][code] / 10.0 / out["detached_median_ms_by_code"][code]
        for code in TRIVIAL_CODES
    }
    out["added_percent"] = max(out["added_percent_by_code"].values())
    return out


def _bootstrap_added_us(
    rows: Sequence[dict[str, t.Any]],
    code: str | None,
    seed: int = 0,
    kinds: tuple[str, str] = ("python3", "greed"),
) -> list[float] | None:
    """A 95% interval of greed's median minus python3's (us; the second of *kinds*
    minus the first), for the cells running *code* (None: all). A two-stage bootstrap,
    so that both the spread between processes and the spread between cells count: the
    pairs of processes (python3#n and greed#n, which ran side by side) are resampled
    together, then the cells of each process drawn. None with fewer than two pairs."""
    import random

    base, other = kinds
    by_process: dict[str, list[float]] = {}
    for r in rows:
        if code is None or r["code"] == code:
            by_process.setdefault(r["process"], []).append(r["latency_ms"])
    pairs = [
        (by_process[f"{base}#{n}"], by_process[f"{other}#{n}"])
        for n in sorted({name.rpartition("#")[2] for name in by_process})
        if f"{base}#{n}" in by_process and f"{other}#{n}" in by_process
    ]
    if len(pairs) < 2:
        return None
    rng = random.Random(seed)

    def resampled_added() -> float:
        pooled: tuple[list[float], list[float]] = ([], [])
        for _ in pairs:
            pair = rng.choice(pairs)
            for kind, cells in zip(pooled, pair, strict=True):
                kind.extend(rng.choices(cells, k=len(cells)))
        return 1000.0 * (statistics.median(pooled[1]) - statistics.median(pooled[0]))

    added = sorted(resampled_added() for _ in range(BOOTSTRAP_RESAMPLES))
    return [added[int(0.025 * len(added))], added[int(0.975 * len(added)) - 1]]


def _paired_added_us(
    rows: Sequence[dict[str, t.Any]],
    code: str,
    seed: int = 0,
    kinds: tuple[str, str] = ("python3", "greed"),
) -> dict[str, t.Any] | None:
    """The paired estimate for *code*: for each pair of processes that ran side by
    side (``python3#n`` and ``greed#n``), the second's median minus the first's (us);
    their mean, a 95% bootstrap interval over the pairs, and the mean in % of the
    first kind's medians. The machine's drift weighs on both processes of a pair
    alike and cancels, and each process counts once, where the pooled medians let the
    drift between batches of processes widen their interval. None without a pair."""
    import random

    base, other = kinds
    by_process: dict[str, list[float]] = {}
    for r in rows:
        if r["code"] == code:
            by_process.setdefault(r["process"], []).append(r["latency_ms"])
    numbers = sorted(
        {name.rpartition("#")[2] for name in by_process},
        key=lambda n: int(n) if n.isdigit() else n,
    )
    pairs = [
        (
            statistics.median(by_process[f"{base}#{n}"]),
            statistics.median(by_process[f"{other}#{n}"]),
        )
        for n in numbers
        if f"{base}#{n}" in by_process and f"{other}#{n}" in by_process
    ]
    if not pairs:
        return None
    added = [1000.0 * (b - a) for a, b in pairs]
    mean = statistics.fmean(added)
    interval = None
    if len(added) > 1:
        rng = random.Random(seed)
        means = sorted(
            statistics.fmean(rng.choices(added, k=len(added))) for _ in range(BOOTSTRAP_RESAMPLES)
        )
        interval = [means[int(0.025 * len(means))], means[int(0.975 * len(means)) - 1]]
    return {
        "added_us": mean,
        "interval_us": interval,
        "pairs": len(added),
        "added_percent": mean / 10.0 / statistics.fmean(a for a, _ in pairs),
    }


# -- 3. cleanup and optimisation cost -----------------------------------------------------
_OP_EXPR = (
    "(lambda r: None if r is None else [r['durationMs'], r.get('gcCollected'), "
    "r.get('rssBefore'), r.get('rssAfter')])(get_ipython().kernel.greed.service.{op}('manual'))"
)
_COUNT_EXPR = "(len(__import__('gc').get_objects()), __import__('gc').get_freeze_count())"

NAMESPACE_CREATE = (
    'globals().update({{f"v{{i}}": (i, str(i), [i], {{"k": i}}, float(i))[i % 5] '
    "for i in range({n})}})"
)
NAMESPACE_DELETE = (
    "for _k in [k for k in globals() if k[:1] == 'v' and k[1:].isdigit()]:\n"
    "    del globals()[_k]\n"
    "del _k"
)
# two gc-tracked objects per element: a tuple or a dict, and the list inside it
OBJECTS_CREATE = 'bench_objs = [(i, [i]) if i % 2 else {{"i": i, "l": [i]}} for i in range({half})]'
OBJECTS_DELETE = "del bench_objs"


def housekeeping(
    sandbox: Sandbox,
    namespace_sizes: Sequence[int],
    object_counts: Sequence[int],
    reps: int,
    first_reps: int,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Time ``greed.cleanup()`` and ``greed.optimize()`` (their reports' durationMs).

    In a greed kernel that imported torch and numpy, for each size and each
    operation: create the variables or objects (a user cell), run the operation
    once ("first": right after the creation), delete them and settle (an untimed
    cleanup); ``first_reps`` times. After the last first run, ``reps`` more runs
    time the steady state ("next"). With ``GreedKernel.gc_freeze`` off (the
    default now) every cleanup and optimisation does a full ``gc.collect(2)``
    over every tracked object, so first and next runs cost about the same; the
    ``frozen_objects`` column shows the permanent generation (0 unless frozen).
    """
    rows: list[dict[str, t.Any]] = []
    results: dict[str, t.Any] = {
        "reps": reps,
        "first_reps": first_reps,
        "namespace": [],
        "objects": [],
    }
    with started(sandbox, (GREED,)) as (k,):
        k.must_run("import gc\nimport numpy as np\nimport torch\ntorch.set_num_threads(1)")
        k.must_run("%greed preserve bench_objs")  # a long-lived structure, never paged
        _op(k, "cleanup")  # settle: collect what the imports left
        sweeps = [
            ("namespace", n, NAMESPACE_CREATE.format(n=n), NAMESPACE_DELETE)
            for n in namespace_sizes
        ] + [
            ("objects", n, OBJECTS_CREATE.format(half=n // 2), OBJECTS_DELETE)
            for n in object_counts
        ]
        for sweep, size, create, delete in sweeps:
            entry: dict[str, t.Any] = {"size": size}
            for op in ("cleanup", "optimize"):
                for rep in range(first_reps):
                    k.must_run(create)
                    tracked, frozen = ast.literal_eval(k.evaluate(c=_COUNT_EXPR)["c"])
                    entry.setdefault("tracked_objects", tracked)
                    entry.setdefault("frozen_objects", frozen)
                    plan = [("first", rep)]
                    if rep == first_reps - 1:
                        plan += [("next", i) for i in range(reps)]
                    for phase, i in plan:
                        ms, collected, rss_before, rss_after = _op(k, op)
                        rows.append(
                            {
                                "sweep": sweep,
                                "size": size,
                                "op": op,
                                "phase": phase,
                                "rep": i + 1,
                                "tracked_objects": tracked,
                                "frozen_objects": frozen,
                                "duration_ms": round(ms, 4),
                                "gc_collected": collected,
                                "rss_before": rss_before,
                                "rss_after": rss_after,
                            }
                        )
                    k.must_run(delete)
                    _op(k, "cleanup")  # settle before the next creation
                for phase in ("first", "next"):
                    entry[f"{op}_{phase}_ms"] = _median(
                        [
                            r["duration_ms"]
                            for r in rows
                            if (r["sweep"], r["size"], r["op"], r["phase"])
                            == (sweep, size, op, phase)
                        ]
                    )
            results[sweep].append(entry)
            progress(
                f"  housekeeping: {sweep} {size:,} ({entry['tracked_objects']:,} gc objects, "
                f"{entry['frozen_objects']:,} frozen): cleanup first "
                f"{entry['cleanup_first_ms']:.1f} ms, next "
                f"{entry['cleanup_next_ms']:.1f} ms; optimize first "
                f"{entry['optimize_first_ms']:.1f} ms, next {entry['optimize_next_ms']:.1f} ms"
            )
    return rows, results


def _op(k: Kernel, op: str) -> list[t.Any]:
    """Run greed.cleanup() or greed.optimize() in the kernel; its report's numbers."""
    value = ast.literal_eval(k.evaluate(r=_OP_EXPR.format(op=op))["r"])
    if value is None:
        raise RuntimeError(f"greed.{op}() failed:\n{k.log_tail()}")
    return value


# -- 4. start-up ------------------------------------------------------------------------------
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
        results["kernels"][label] = {"median_s": _median(values), "all_s": values}
    results["ratio"] = _ratio(
        results["kernels"]["greed"]["median_s"], results["kernels"]["python3"]["median_s"]
    )
    progress(
        f"  start-up: python3 {results['kernels']['python3']['median_s']:.2f} s, greed "
        f"{results['kernels']['greed']['median_s']:.2f} s (median of {reps})"
    )
    return rows, results


# -- 5. paging ---------------------------------------------------------------------------------
def paging(
    sandbox: Sandbox, mib: int, reps: int, progress: Progress = print
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """``python -m benchmarks.paging`` in a fresh process: page_out and first use
    after paging against raw writes and reads of the same bytes (see its docstring)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.paging", "--mib", str(mib), "--reps", str(reps)],
        cwd=Path(__file__).resolve().parent.parent,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.paging failed:\n{proc.stderr[-3000:]}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = results.pop("rows")
    csv_rows = [
        {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()} for r in rows
    ]
    m = results["median"]
    progress(
        f"  paging {mib} MiB x {reps}: page_out {m['page_out_s']:.3f} s vs raw write "
        f"{m['raw_write_s']:.3f} s; first use warm {m['paged_sum_warm_s']:.3f} s vs raw read "
        f"{m['raw_read_warm_s']:.3f} s (resident sum {m['resident_sum_s']:.3f} s); cold "
        f"{m['paged_sum_cold_s']:.3f} s vs {m['raw_read_cold_s']:.3f} s"
    )
    return csv_rows, results


# -- 6. memory budget ----------------------------------------------------------------------
BUDGET_LIMIT = 1536 * MiB  # 1.5 GiB: --GreedKernel.memory_limit=1610612736

_BUDGET_SETUP = """\
import hashlib
import torch

torch.set_num_threads(1)
BLOCK_ITEMS = {items}


def make_block(i):
    block = torch.arange(BLOCK_ITEMS, dtype=torch.int64)
    return block.mul_(2 * i + 1)  # in place: one allocation per block


def read_block(block):
    return int(block.sum())  # reads every byte


def digest(block):
    return hashlib.sha256(memoryview(block.numpy())).hexdigest()[:16]
"""

#: After each cell, in greed: its counters and its last report (a budget cleanup
#: has trigger "memory", pressureBefore and pressureAfter).
_BUDGET_EXPR = (
    "(lambda g: __import__('json').dumps({'execution': g.stats.execution_count, 'last': "
    "[{k: r.get(k) for k in ('trigger', 'executionCount', 'durationMs', 'pressureBefore', "
    "'pressureAfter', 'pagedBytes')} for r in g.service.reports() if r['kind'] == 'cleanup'][-1:]"
    "}))(get_ipython().kernel.greed)"
)


def budget_cells(blocks: int) -> list[tuple[str, str]]:
    """The session: (kind, code). Cell i creates block i and reads blocks i-1 and
    i-2 (each block is read in the two cells after the one creating it); the last
    cell checks every block (a SHA-256 of its bytes)."""
    cells = []
    for i in range(1, blocks + 3):
        lines = [f"block_{i} = make_block({i})"] if i <= blocks else []
        reads = [j for j in (i - 1, i - 2) if 1 <= j <= blocks]
        lines.append("(" + "".join(f"read_block(block_{j}), " for j in reads) + ")")
        cells.append(("create" if i <= blocks else "read", "\n".join(lines)))
    cells.append(("check", f"[digest(globals()[f'block_{{i}}']) for i in range(1, {blocks + 1})]"))
    return cells


def _budget_session(
    kernels: list[Kernel],
    cells: list[tuple[str, str]],
    limit: int,
    session: str,
    watchdog: bool,
    progress: Progress,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Run the cells on every kernel, interleaved; with ``watchdog``, each kernel is
    killed as soon as its anonymous RSS passes ``limit``."""
    from .harness import KernelError, Watchdog

    rows: list[dict[str, t.Any]] = []
    dogs = {k.label: Watchdog(k, limit) for k in kernels} if watchdog else {}
    alive = list(kernels)
    out: dict[str, t.Any] = {
        k.label: {"killed": False, "outputs": [], "wall_s": 0.0, "completed_cells": 0}
        for k in kernels
    }
    with contextlib.ExitStack() as stack:
        for dog in dogs.values():
            stack.enter_context(dog)
        for index, (kind, code) in enumerate(cells, start=1):
            for k in _rotated(list(alive), index):
                r = out[k.label]
                try:
                    run = k.run(code, timeout=300)
                except KernelError as e:
                    dog = dogs.get(k.label)
                    r["killed"] = True
                    r["killed_at_cell"] = index
                    r["killed_anon"] = dog.killed[0] if dog and dog.killed else None
                    r["error"] = str(e).splitlines()[0]
                    alive.remove(k)
                    progress(f"  budget ({session}): {k.label} died in cell {index}")
                    continue
                mem = k.memory()
                r["wall_s"] += run.latency_s
                r["completed_cells"] = index
                r["outputs"].append(run.result if run.status == "ok" else f"error {run.error}")
                row = {
                    "session": session,
                    "kernel": k.label,
                    "cell": index,
                    "kind": kind,
                    "status": run.status,
                    "latency_ms": round(run.latency_s * 1000.0, 3),
                    "rss_bytes": mem["rss"],
                    "rss_anon_bytes": mem["anon"],
                    "rss_file_bytes": mem["file"],
                    "rss_shmem_bytes": mem["shmem"],
                    "anon_ratio": round((mem["anon"] + mem["shmem"]) / limit, 4),
                    "trigger": "",
                    "pressure_before": "",
                    "pressure_after": "",
                    "paged_bytes": "",
                    "cleanup_ms": "",
                }
                if k.spec == "greed":
                    row.update(_budget_report(k))
                rows.append(row)
            if index % 10 == 0 or index == len(cells):
                progress(
                    f"  budget ({session}): cell {index}/{len(cells)}; anonymous RSS / limit: "
                    + ", ".join(
                        f"{r['kernel']} {r['anon_ratio']:.2f}" for r in rows if r["cell"] == index
                    )
                )
    for k in kernels:
        r = out[k.label]
        mine = [row for row in rows if row["kernel"] == k.label]
        anon = [row["rss_anon_bytes"] + row["rss_shmem_bytes"] for row in mine]
        r["anon_peak_after_cell"] = max(anon) if anon else None
        r["anon_peak_ratio"] = max(anon) / limit if anon else None
        r["watchdog_peak"] = dogs[k.label].peak if k.label in dogs else None
        r["rss_peak_after_cell"] = max((row["rss_bytes"] for row in mine), default=None)
        over = [row["cell"] for row in mine if row["anon_ratio"] > 1.0]
        r["first_cell_over_limit"] = over[0] if over else None
        r["cells_over_limit"] = len(over)
        r["cells_over_110pct"] = sum(1 for row in mine if row["anon_ratio"] > 1.10)
        r["memory_cleanups"] = sum(1 for row in mine if row["trigger"] == "memory")
        r["final"] = r["outputs"][-1] if r["completed_cells"] == len(cells) else None
    return rows, out


def _budget_report(k: Kernel) -> dict[str, t.Any]:
    """The cell's budget cleanup, if greed ran one after it."""
    try:
        raw = json.loads(ast.literal_eval(k.evaluate(s=_BUDGET_EXPR)["s"]))
    except Exception:
        return {}
    last = (raw.get("last") or [{}])[0]
    if last.get("trigger") != "memory" or last.get("executionCount") != raw.get("execution"):
        return {}
    return {
        "trigger": "memory",
        "pressure_before": last.get("pressureBefore"),
        "pressure_after": last.get("pressureAfter"),
        "paged_bytes": last.get("pagedBytes"),
        "cleanup_ms": last.get("durationMs"),
    }


def budget(
    sandbox: Sandbox,
    blocks: int,
    block_mib: int,
    limit: int | None,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """A session of ``blocks`` blocks of ``block_mib`` MiB under a memory limit.

    greed runs with ``--GreedKernel.memory_limit=limit``; python3 as it is. Twice:
    a plain session (both run every cell; anonymous RSS recorded after each) and a
    session with a watchdog that SIGKILLs a kernel whose anonymous RSS (RssAnon +
    RssShmem, with its children) passes the limit, sampled every 20 ms.

    ``limit`` None (smoke runs): derived from python3's anonymous RSS after the
    setup cell, so that a tiny session still exercises the budget.
    """
    items = block_mib * MiB // 8
    cells = budget_cells(blocks)
    setup = _BUDGET_SETUP.format(items=items)
    results: dict[str, t.Any] = {
        "blocks": blocks,
        "block_bytes": block_mib * MiB,
        "cells": len(cells),
    }
    all_rows: list[dict[str, t.Any]] = []
    for session, watchdog in (("plain", False), ("watchdog", True)):
        kernels: list[Kernel] = []
        try:
            p3 = Kernel(sandbox, "python3", "python3")
            kernels.append(p3)
            p3.start()
            p3.must_run(setup)
            if limit is None:
                limit = p3.anon() + blocks * block_mib * MiB // 2
                results["limit_source"] = (
                    "python3's anonymous RSS after the setup cell + half the blocks"
                )
            results.setdefault("limit", limit)
            results.setdefault("limit_source", "fixed")
            g = Kernel(sandbox, "greed", "greed", (f"--GreedKernel.memory_limit={limit}",))
            kernels.append(g)
            g.start()
            g.must_run(setup)
            base = {k.label: k.memory() for k in kernels}
            rows, out = _budget_session(kernels, cells, limit, session, watchdog, progress)
            for label, r in out.items():
                r["memory_after_setup"] = base[label]
            if any(not r["killed"] for r in out.values()):
                for k in kernels:
                    if k.spec == "greed" and not out[k.label]["killed"]:
                        out[k.label]["greed_stats"] = _greed_stats(k)
        finally:
            for k in kernels:
                k.shutdown()
        all_rows += rows
        results[session] = out
    plain, dog = results["plain"], results["watchdog"]
    reference = plain["python3"]["final"]
    ref_outputs = plain["python3"]["outputs"]
    for session in (plain, dog):
        for r in session.values():
            r["outputs_differing_from_python3"] = sum(
                1 for a, b in zip(r["outputs"], ref_outputs, strict=False) if a != b
            )
    for session in (plain, dog):
        for r in session.values():
            r["final_identical_to_python3"] = (
                None if reference is None or r["final"] is None else r["final"] == reference
            )
            r.pop("outputs", None)
    results["wall_ratio"] = _ratio(plain["greed"]["wall_s"], plain["python3"]["wall_s"])
    results["python3_killed"] = dog["python3"]["killed"]
    results["greed_intact"] = (
        not dog["greed"]["killed"] and dog["greed"]["final_identical_to_python3"] is True
    )
    return all_rows, results
