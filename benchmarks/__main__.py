"""``python -m benchmarks``: Greed against the stock python3 kernel, side by side.

    python -m benchmarks                      # the full run (26 minutes on 2 busy cores)
    python -m benchmarks --quick --out DIR     # a smoke run (about two minutes)
    python -m benchmarks --only soak --cells 300
    python -m benchmarks --only paging,budget

Writes, under --out (default docs/benchmarks): soak.csv, trivial.csv,
instructions.csv and syscalls.csv (where valgrind and strace are installed),
housekeeping.csv, pause.csv, checkpointing.csv,
startup.csv, paging.csv, budget.csv (the series), summary.json (every result, the headline
ratios with their targets, the machine and versions), summary.md (the headline
table) and soak_rss.png, soak_latency.png, budget_rss.png. Prints the headline
table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import typing as t
from pathlib import Path

from . import (
    budget,
    checkpointing,
    housekeeping,
    instructions,
    machine,
    paging,
    pause,
    soak,
    startup,
    trivial,
)
from .details import details
from .headline import headline
from .kernels import GREED, PYTHON3, Variant
from .plots import plot_budget, plot_soak
from .sandbox import Sandbox
from .summary import markdown, table, write_csv, write_json

SUITES = (
    "soak",
    "trivial",
    "instructions",
    "housekeeping",
    "pause",
    "checkpointing",
    "startup",
    "paging",
    "budget",
)
#: The soak compresses hours of notebook into minutes; see --paced-window.
DEFAULT_PACED_WINDOW = 3.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the greed kernel against the stock python3 kernel.",
    )
    p.add_argument("--cells", type=int, default=None, help="soak cells (default 1000; quick 20)")
    p.add_argument(
        "--trivial",
        type=int,
        default=None,
        help="trivial cells per kernel process (default 600; quick 20)",
    )
    p.add_argument(
        "--trivial-processes",
        type=int,
        default=None,
        help="kernel processes of each kind in the trivial suite (default 16; quick 1)",
    )
    p.add_argument(
        "--trivial-batch",
        type=int,
        default=None,
        help="of them, how many of each kind are alive (and interleaved) at a time "
        f"(default {trivial.TRIVIAL_BATCH})",
    )
    p.add_argument(
        "--instructions",
        type=int,
        default=None,
        help="cells of each code counted under callgrind per kernel in the instructions "
        "suite (default 100; quick 2)",
    )
    p.add_argument(
        "--trivial-control",
        type=int,
        default=None,
        help="pairs of python3 kernels run the trivial suite's between-process design "
        "against each other, as a control, and as many pairs against python3 kernels that "
        "imported greed's modules (default 8; quick 1; 0 skips both)",
    )
    p.add_argument(
        "--trivial-greed-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra command-line argument of the trivial suite's greed kernels "
        "(repeatable; write it with '=': --trivial-greed-arg=--GreedKernel.optimize_interval=0)",
    )
    p.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    p.add_argument("--out", default="docs/benchmarks", help="output directory")
    p.add_argument("--seed", type=int, default=1234, help="seed of the soak workload")
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions for housekeeping and start-up (5)"
    )
    p.add_argument(
        "--paced-window",
        type=float,
        default=DEFAULT_PACED_WINDOW,
        metavar="SECONDS",
        help="also soak a greed kernel whose recent_window is SECONDS instead of 300 "
        "(about 30 cells at the soak's pace, as 300 s is at an interactive pace); "
        f"0 skips it (default {DEFAULT_PACED_WINDOW:g})",
    )
    p.add_argument(
        "--soak-budget",
        default="auto",
        metavar="BYTES|auto|0",
        help="also soak a 'greed-budget' kernel with --GreedKernel.memory_limit=BYTES; auto: "
        "half python3's peak anonymous RSS (RssAnon + RssShmem) in the soak of the "
        "summary.json already under --out (skipped when there is none); 0 skips it",
    )
    p.add_argument(
        "--paging-mib", type=int, default=None, help="size paged out (default 512; quick 16)"
    )
    p.add_argument(
        "--budget-blocks", type=int, default=None, help="budget session blocks (48; quick 6)"
    )
    p.add_argument(
        "--budget-block-mib", type=int, default=None, help="MiB per block (64; quick 16)"
    )
    p.add_argument(
        "--budget-limit",
        type=int,
        default=None,
        help=f"greed's memory_limit in the budget session (default {budget.BUDGET_LIMIT}; "
        "quick: derived from python3's memory after the setup cell)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite the summary, table and plots from the "
        "summary.json and soak.csv already under --out",
    )
    p.add_argument(
        "--only",
        default=",".join(SUITES),
        help=f"comma-separated subset of {','.join(SUITES)} (default: all)",
    )
    return p


def main(argv: t.Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    quick = args.quick
    cells = args.cells if args.cells is not None else (20 if quick else 1000)
    trivial_cells = args.trivial if args.trivial is not None else (20 if quick else 600)
    reps = args.reps if args.reps is not None else (2 if quick else 5)
    namespace_sizes = (100,) if quick else (100, 1_000, 10_000)
    object_counts = (20_000,) if quick else (300_000, 500_000, 1_000_000, 2_000_000)
    paging_mib = args.paging_mib or (16 if quick else 512)
    blocks = args.budget_blocks or (6 if quick else 48)
    block_mib = args.budget_block_mib or (16 if quick else 64)
    budget_limit = args.budget_limit or (None if quick else budget.BUDGET_LIMIT)
    out = Path(args.out)
    if args.report_only:
        return _report_only(out)
    soak_budget = _soak_budget(args.soak_budget, out)
    out.mkdir(parents=True, exist_ok=True)

    env = machine.environment()
    env["loadavg_start"] = env.pop("loadavg")
    env["greed_kernel_source"] = machine.greed_source()
    print(
        f"benchmarks: {env['machine']['cores']} cores, "
        f"{env['machine']['ram_bytes'] / 2**30:.1f} GiB RAM, {env['machine']['cpu_model']}; "
        f"load average {' / '.join(f'{v:.2f}' for v in env['loadavg_start'] or [])}"
    )
    results: dict[str, t.Any] = {}
    t0 = time.monotonic()
    with Sandbox() as sandbox:
        if "soak" in only:
            variants = [PYTHON3, GREED]
            if args.paced_window > 0:
                variants.append(
                    Variant(
                        "greed-paced",
                        "greed",
                        (f"--GreedKernel.recent_window={args.paced_window:g}",),
                    )
                )
            if soak_budget[0]:
                variants.append(
                    Variant(
                        "greed-budget",
                        "greed",
                        (f"--GreedKernel.memory_limit={soak_budget[0]}",),
                    )
                )
            print(f"soak: {cells} cells on {', '.join(v.label for v in variants)}")
            rows, results["soak"] = soak.soak(sandbox, variants, cells, args.seed)
            if soak_budget[0]:
                results["soak"]["kernels"]["greed-budget"]["memory_limit_source"] = soak_budget[1]
            write_csv(out / "soak.csv", rows)
            plot_soak(out, rows, results["soak"])
        if "trivial" in only:
            processes = args.trivial_processes or (1 if quick else 16)
            batch = args.trivial_batch or trivial.TRIVIAL_BATCH
            print(
                f"trivial cells: {trivial_cells} on each of {processes} python3 and greed "
                f"kernels, {batch} of each at a time"
            )
            rows, results["trivial"] = trivial.trivial(
                sandbox, trivial_cells, processes, batch, greed_args=tuple(args.trivial_greed_arg)
            )
            write_csv(out / "trivial.csv", rows)
            control = args.trivial_control
            control = (1 if quick else 8) if control is None else control
            if control > 0:
                print(f"trivial control: python3 against python3, {control} pairs of processes")
                results["trivial"]["control"] = trivial.trivial_control(
                    sandbox, trivial_cells, control, batch
                )
                print(
                    "trivial control: python3 against python3 that imported greed's "
                    f"modules, {control} pairs of processes"
                )
                results["trivial"]["modules_control"] = trivial.trivial_control(
                    sandbox, trivial_cells, control, batch, other=trivial.PYTHON3_GREED_MODULES
                )
        if "instructions" in only:
            counted = args.instructions or (2 if quick else 100)
            print(f"instructions: {counted} cells of each code per kernel, under callgrind")
            # the smoke run counts python3 only: each kernel starts under callgrind in
            # about 10 s, and every variant is counted the same way
            rows, results["instructions"] = instructions.instructions(
                sandbox,
                counted,
                warmup=2 if quick else 20,
                variants=("python3",) if quick else None,
            )
            write_csv(out / "instructions.csv", rows)
            rows, results["instructions"]["syscalls"] = instructions.syscalls(
                sandbox, 3 if quick else 300, warmup=2 if quick else 20
            )
            write_csv(out / "syscalls.csv", rows)
        if "housekeeping" in only:
            print("housekeeping: cleanup and optimisation cost")
            rows, results["housekeeping"] = housekeeping.housekeeping(
                sandbox, namespace_sizes, object_counts, reps, first_reps=min(reps, 3)
            )
            write_csv(out / "housekeeping.csv", rows)
        if "pause" in only:
            pause_cells, pause_objects = (60, 20_000) if quick else (300, 500_000)
            print(
                f"pause: {pause_cells} back-to-back cells across periodic work, "
                f"{pause_objects:,} objects besides torch's"
            )
            rows, results["pause"] = pause.pause(
                sandbox, pause_cells, pause_objects, rounds=1 if quick else 2
            )
            write_csv(out / "pause.csv", rows)
        if "checkpointing" in only:
            ck_cells = 10 if quick else 150
            print(f"checkpointing: {ck_cells} cells at a person's pace, checkpoints on and off")
            rows, results["checkpointing"] = checkpointing.checkpointing(
                sandbox, ck_cells, think=0.6 if quick else 0.8, seed=args.seed
            )
            write_csv(out / "checkpointing.csv", rows)
        if "startup" in only:
            print(f"start-up: {reps} starts of each kernel")
            rows, results["startup"] = startup.startup(sandbox, reps)
            write_csv(out / "startup.csv", rows)
        if "paging" in only:
            print(f"paging: {paging_mib} MiB, {reps} times, in a fresh process")
            rows, results["paging"] = paging.suite(sandbox, paging_mib, reps)
            write_csv(out / "paging.csv", rows)
        if "budget" in only:
            print(f"budget: {blocks} blocks of {block_mib} MiB under a memory limit")
            rows, results["budget"] = budget.budget(sandbox, blocks, block_mib, budget_limit)
            write_csv(out / "budget.csv", rows)
            plot_budget(out, rows, results["budget"])
    env.update(machine.environment() | {"loadavg_start": env["loadavg_start"]})
    source_after = machine.greed_source()
    source = env["greed_kernel_source"]
    # the kernels ran the same greed_kernel unless its sources changed (a commit of
    # other files moves HEAD only)
    source["changed_during_run"] = source_after["sources_sha256"] != source["sources_sha256"]
    if source_after["git_head"] != source["git_head"]:
        source["git_head_after"] = source_after["git_head"]
    note = (
        f"{'Quick smoke run' if quick else 'Full run'} of `python -m benchmarks` "
        f"({time.monotonic() - t0:.0f} s). Timings are wall-clock on a shared machine: "
        "other jobs may have been running (see the load averages)."
    )
    if env["greed_kernel_source"]["changed_during_run"]:
        note += " The greed_kernel sources changed while it ran."
    _write(out, quick, note, env, results)
    print(f"\nwrote {out}{os.sep} in {time.monotonic() - t0:.0f} s")
    return 0


def _soak_budget(option: str, out: Path) -> tuple[int, str]:
    """greed-budget's memory_limit for the soak, and where it comes from (0: none)."""
    import json

    if option != "auto":
        value = int(option)
        return value, "given on the command line" if value else ""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        p3 = summary["results"]["soak"]["kernels"]["python3"]
    except (OSError, ValueError, KeyError):
        return 0, ""
    if p3.get("anonymous_peak"):
        return p3["anonymous_peak"] // 2, (
            "half python3's peak RssAnon + RssShmem in the soak of the previous run "
            f"({summary['environment'].get('time', '?')})"
        )
    return 0, ""


def _write(
    out: Path, quick: bool, note: str, env: dict[str, t.Any], results: dict[str, t.Any]
) -> None:
    """summary.json, summary.md; print the details and the headline table."""
    head = headline(results)
    summary = {
        "quick": quick,
        "note": note,
        "environment": env,
        "headline": head,
        "results": results,
    }
    write_json(out / "summary.json", summary)
    detail = details(results)
    (out / "summary.md").write_text(markdown(head, env, note, detail), encoding="utf-8")
    print()
    print(detail)
    print()
    print(table(head))


def _report_only(out: Path) -> int:
    """Rewrite the outputs from the measurements already under ``out``."""
    import csv
    import json

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    results = summary["results"]
    if "soak" in results and (out / "soak.csv").is_file():
        with open(out / "soak.csv", newline="", encoding="utf-8") as f:
            rows = [_numbers(r) for r in csv.DictReader(f)]
        plot_soak(out, rows, results["soak"])
    if "budget" in results and (out / "budget.csv").is_file():
        with open(out / "budget.csv", newline="", encoding="utf-8") as f:
            rows = [_numbers(r) for r in csv.DictReader(f)]
        plot_budget(out, rows, results["budget"])
    _write(out, summary["quick"], summary["note"], summary["environment"], results)
    print(f"\nrewrote {out}{os.sep} from its summary.json and soak.csv")
    return 0


def _numbers(row: dict[str, str]) -> dict[str, t.Any]:
    """A CSV row with its numeric columns (cells, bytes, milliseconds) as numbers."""
    out: dict[str, t.Any] = dict(row)
    for key, value in row.items():
        if key == "cell" or key.endswith("_bytes"):
            out[key] = int(value) if value not in ("", None) else value
        elif key.endswith("_ms") or key.endswith("_ratio"):
            out[key] = float(value) if value not in ("", None) else value
    return out


if __name__ == "__main__":
    sys.exit(main())
