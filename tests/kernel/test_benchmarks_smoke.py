"""Smoke run of the benchmarks (``python -m benchmarks --quick``, every suite at tiny
sizes): it completes and writes every expected file with the expected keys. No
timing is asserted; correctness is (paged memory and checksums)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.instructions import missing as _instructions_missing

pytestmark = pytest.mark.timeout(480)

ROOT = Path(__file__).resolve().parents[2]

CSV_COLUMNS = {
    "soak.csv": {
        "kernel",
        "cell",
        "kind",
        "expect",
        "status",
        "latency_ms",
        "rss_bytes",
        "rss_anon_bytes",
        "rss_file_bytes",
        "rss_shmem_bytes",
    },
    "trivial.csv": {"kernel", "process", "i", "code", "latency_ms"},
    "housekeeping.csv": {"sweep", "size", "op", "phase", "rep", "duration_ms", "tracked_objects"},
    "pause.csv": {"kernel", "round", "cell", "latency_ms", "delay_ms"},
    "checkpointing.csv": {"kernel", "cell", "kind", "status", "latency_ms"},
    "startup.csv": {"kernel", "rep", "seconds"},
    "paging.csv": {"rep", "raw_write_s", "page_out_s", "paged_sum_warm_s", "raw_read_warm_s"},
    "budget.csv": {"session", "kernel", "cell", "rss_anon_bytes", "rss_file_bytes", "anon_ratio"},
}
HEADLINE = {
    "anon_growth_ratio",
    "anon_growth_ratio_paced",
    "anon_peak_ratio",
    "budget_soak_anon_ratio",
    "paging_write_ratio",
    "paging_read_ratio_warm",
    "paging_read_ratio_cold",
    "budget_anon_ratio",
    "budget_wall_ratio",
    "rss_growth_ratio",
    "peak_rss_ratio",
    "latency_ratio",
    "latency_paired_ratio",
    "latency_drift",
    "latency_drift_relative",
    "rss_growth_ratio_paced",
    "peak_rss_ratio_paced",
    "trivial_added_us",
    "trivial_added_percent",
    "trivial_paired_added_us",
    "trivial_paired_added_percent",
    "trivial_control_paired_added_us",
    "trivial_modules_paired_added_us",
    "trivial_handler_added_us",
    "trivial_control_added_us",
    "trivial_modules_added_us",
    "trivial_attached_added_us",
    "trivial_attached_added_percent",
    "trivial_attached_cpu_us",
    "startup_ratio",
    "cleanup_ms",
    "cleanup_next_ms",
    "optimize_ms",
    "optimize_next_ms",
    "pause_delay_ms",
    "pause_delay_python3_ms",
    "checkpoint_overhead_percent",
    "checkpoint_paired_ratio",
    "checkpoint_wait_percent",
    "trivial_guard_added_us",
}
CHECKS = {
    "identical_result",
    "identical_result_paced",
    "identical_result_budget",
    "state_preserved",
    "expected_statuses",
    "paging_identical",
    "budget_identical",
    "budget_python3_killed",
    "budget_greed_intact",
    "checkpoint_identical",
}
KERNELS = {"python3", "greed", "greed-paced", "greed-budget"}
# the instructions suite needs valgrind; without it the run notes that it was skipped
HAS_VALGRIND = _instructions_missing() is None
if HAS_VALGRIND:
    CSV_COLUMNS["instructions.csv"] = {"kernel", "code", "cells", "instructions", "per_cell"}
    # (the smoke run counts python3 only: no added instructions to show)
SOAK_BUDGET = 1 << 30  # greed-budget's memory_limit in the smoke run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--cells",
            "20",
            "--soak-budget",
            str(SOAK_BUDGET),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_writes_every_file(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    for name, columns in CSV_COLUMNS.items():
        with open(out / name, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows, name
        assert columns <= set(rows[0]), (name, rows[0].keys())
    for name in ("soak_rss.png", "soak_latency.png", "budget_rss.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) < 500_000, name
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("# ")


def test_soak_rows_cover_every_kernel_and_cell(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    with open(out / "soak.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kernels = {r["kernel"] for r in rows}
    assert kernels == KERNELS
    for kernel in kernels:
        assert sorted(int(r["cell"]) for r in rows if r["kernel"] == kernel) == list(range(1, 21))


def test_summary_keys(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["quick"] is True
    env = summary["environment"]
    assert {"machine", "versions", "loadavg", "loadavg_start", "greed_kernel_source"} <= set(env)
    assert {"cores", "ram_bytes", "cpu_model"} <= set(env["machine"])
    assert env["argv"][0] == "-m benchmarks"  # no path of the machine it ran on
    assert {"python", "ipykernel", "IPython", "torch"} <= set(env["versions"])
    assert set(summary["results"]) == {
        "soak",
        "trivial",
        "instructions",
        "housekeeping",
        "pause",
        "checkpointing",
        "startup",
        "paging",
        "budget",
    }
    pause = summary["results"]["pause"]
    # a checkpoint after every quiet cell (the setup's too), none when they are off
    assert summary["results"]["checkpointing"]["checkpoints_listed"] >= 5
    assert pause["greed"]["after_work_delay_ms"], pause  # cell 51 came after work
    # greed attached and detached (its public switch) on alternate cells, each timed
    attached = summary["results"]["trivial"]["attached"]
    assert attached["cells"] > 0 and set(attached["handler_added_us_by_code"]) == {"x = 1", "x + 1"}
    # the execute handler's added time, paired by process
    handler = summary["results"]["trivial"]["handler_paired_by_code"]
    assert set(handler) == {"x = 1", "x + 1"} and all(p["pairs"] == 1 for p in handler.values())
    instructions = summary["results"]["instructions"]
    if HAS_VALGRIND:
        assert set(instructions["kernels"]) == {"python3"}
        for code in ("x = 1", "x + 1"):
            assert instructions["kernels"]["python3"]["per_cell"][code] > 1_000_000
            # the main thread counted apart, and less than all threads together
            main = instructions["kernels"]["python3"]["main_per_cell"][code]
            assert 1_000_000 < main < instructions["kernels"]["python3"]["per_cell"][code]
    else:
        assert instructions["skipped"]
    syscalls = instructions["syscalls"]
    if shutil.which("strace") is not None and "skipped" not in syscalls:
        assert set(syscalls["per_cell"]) == {"python3", "greed-detached", "greed"}
        assert syscalls["per_cell"]["python3"] > 0
    else:  # no strace, or ptrace refused here: said, not silent
        assert syscalls["skipped"]
    metrics = summary["headline"]["metrics"]
    assert set(metrics) >= HEADLINE
    for metric in metrics.values():
        assert {"label", "value", "unit", "target", "op", "met"} <= set(metric)
    assert set(summary["headline"]["checks"]) == CHECKS
    soak = summary["results"]["soak"]["kernels"]
    assert set(soak) == KERNELS
    for kernel in soak.values():
        for kind in ("rss", "anon", "file", "shmem", "anonymous"):
            assert {f"{kind}_start", f"{kind}_end", f"{kind}_peak", f"{kind}_growth"} <= set(kernel)
        assert kernel["anon_peak"] > 0 and kernel["file_peak"] > 0
        assert "latency_median_ms" in kernel
        assert {"state_dict_sha256", "param_sum", "last_loss", "steps"} == set(kernel["result"])
    assert "greed_stats" in soak["greed"]
    # greed's counters, read through its comm
    stats = soak["greed"]["greed_stats"]
    assert {"pagedBytes", "cleanupCount", "pagingDirectorySet", "reports"} <= set(stats)
    assert stats["executionCount"] > 0
    assert soak["greed-budget"]["memory_limit"] == SOAK_BUDGET
    housekeeping = summary["results"]["housekeeping"]
    for sweep in ("namespace", "objects"):
        assert housekeeping[sweep]
        for entry in housekeeping[sweep]:
            assert {"cleanup_first_ms", "cleanup_next_ms", "optimize_first_ms"} <= set(entry)
    # the printed table names every headline metric
    for metric in metrics.values():
        assert metric["label"] in stdout


def test_paging_reads_back_what_was_paged(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    paging = json.loads((out / "summary.json").read_text(encoding="utf-8"))["results"]["paging"]
    assert paging["identical"] is True
    assert paging["median"]["page_out_s"] > 0 and paging["median"]["raw_write_s"] > 0
    # the cold reads really came from the disk (the cache was dropped)
    assert paging["median"]["paged_sum_cold_io"] > 0


def test_budget_session(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    budget = json.loads((out / "summary.json").read_text(encoding="utf-8"))["results"]["budget"]
    plain, watchdog = budget["plain"], budget["watchdog"]
    assert plain["python3"]["completed_cells"] == budget["cells"]
    assert plain["greed"]["final_identical_to_python3"] is True
    assert plain["greed"]["outputs_differing_from_python3"] == 0
    # the smoke limit leaves python3 no chance: the watchdog must kill it
    assert watchdog["python3"]["killed"] is True
    if not _kernel_has_budget():
        pytest.skip("the kernel has no memory budget yet (GreedKernel.memory_low_watermark)")
    assert budget["greed_intact"] is True
    assert plain["greed"]["anon_peak_ratio"] <= 1.10


def _kernel_has_budget() -> bool:
    from greed_kernel.kernel import GreedKernel

    return "memory_low_watermark" in GreedKernel.class_trait_names()


def test_report_only_rewrites_from_the_data(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    before = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (out / "soak_rss.png").unlink()
    (out / "budget_rss.png").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--report-only", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert after["results"] == before["results"]
    assert after["headline"] == before["headline"]
    assert (out / "soak_rss.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "budget_rss.png").read_bytes().startswith(b"\x89PNG")


def test_the_trivial_interval_covers_a_known_shift() -> None:
    """The trivial suite's bootstrap interval (pure): a shift of 0.1 ms between kinds
    lies inside it, 0 does not; one process of a kind gives no interval."""
    import random

    from benchmarks.estimates import bootstrap_added_us as _bootstrap_added_us

    rng = random.Random(3)
    rows = [
        {
            "kernel": kernel,
            "process": f"{kernel}#{n}",
            "code": "x = 1",
            "latency_ms": 9.0 + shift + rng.gauss(0.0, 0.05),
        }
        for kernel, shift in (("python3", 0.0), ("greed", 0.1))
        for n in range(4)
        for _ in range(200)
    ]
    low, high = _bootstrap_added_us(rows, "x = 1")
    assert 0.0 < low < 100.0 < high
    # the same rows under the control's names (python3 against python3) give the same
    again = [{**r, "process": r["process"].replace("greed#", "python3-again#")} for r in rows]
    assert _bootstrap_added_us(again, "x = 1", kinds=("python3", "python3-again")) == [low, high]
    assert _bootstrap_added_us(rows, "x + 1") is None  # no cells of that kind
    one = [r for r in rows if r["process"].endswith("#0")]
    assert _bootstrap_added_us(one, None) is None


def test_the_paired_estimate_cancels_the_drift_between_pairs() -> None:
    """The paired estimate (pure): each pair of processes shares the machine's state of
    its time (here a drift of 0.4 ms from pair to pair); the mean of the pairs'
    differences finds greed's 40 us inside a narrow interval that excludes 0, where the
    pooled medians' interval, which the drift widens, does not."""
    import random

    from benchmarks.estimates import bootstrap_added_us as _bootstrap_added_us
    from benchmarks.estimates import paired_added_us as _paired_added_us

    rng = random.Random(5)
    rows = [
        {
            "kernel": kernel,
            "process": f"{kernel}#{n}",
            "code": "x = 1",
            "latency_ms": 5.0 + 0.4 * n + shift + rng.gauss(0.0, 0.3),
        }
        for n in range(16)
        for kernel, shift in (("python3", 0.0), ("greed", 0.04))
        for _ in range(300)
    ]
    paired = _paired_added_us(rows, "x = 1")
    assert paired is not None and paired["pairs"] == 16
    low, high = paired["interval_us"]
    assert 0.0 < low < 40.0 < high
    assert abs(paired["added_percent"] - paired["added_us"] / 10.0 / 8.0) < 0.01  # of 8 ms
    pooled_low, pooled_high = _bootstrap_added_us(rows, "x = 1")
    assert pooled_low < 0.0 and pooled_high - pooled_low > 2 * (high - low)
    # one pair: a mean without an interval; no cells of the code: nothing
    one = _paired_added_us([r for r in rows if r["process"].endswith("#0")], "x = 1")
    assert one is not None and one["pairs"] == 1 and one["interval_us"] is None
    assert _paired_added_us(rows, "x + 1") is None


def test_instruction_counts_are_read_and_compared_to_python3(tmp_path: Path) -> None:
    """The instructions suite (pure): a callgrind dump's totals are read, and each
    variant's count per cell is compared with python3's, code by code."""
    from benchmarks.instructions import counted, summarise, totals

    dump = tmp_path / "greed.123.1"
    dump.write_text(
        "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 0\n"
        "fn=(1) main\n5 10\ntotals: 7400000\n",
        encoding="utf-8",
    )
    assert totals(dump) == 7_400_000
    empty = tmp_path / "empty.1"
    empty.write_text("events: Ir\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no totals"):
        totals(empty)

    rows = [
        {"kernel": kernel, "code": code, "cells": 100, "instructions": 100 * per_cell}
        for kernel, code, per_cell in (
            ("python3", "x = 1", 7_000_000),
            ("python3", "x + 1", 9_000_000),
            ("greed", "x = 1", 7_070_000),
            ("greed", "x + 1", 9_045_000),
        )
    ]
    result = summarise(rows, 100)
    assert "added_by_code" not in result["kernels"]["python3"]
    greed = result["kernels"]["greed"]
    assert greed["added_by_code"] == {"x = 1": 70_000, "x + 1": 45_000}
    assert greed["added_percent_by_code"] == {"x = 1": 1.0, "x + 1": 0.5}
    assert greed["added_percent"] == 1.0  # the larger of the two codes
    assert "main_per_cell" not in greed  # no main thread counted apart

    # one dump under --separate-threads=yes: a file per thread, the main thread's -01
    for thread, n in (("01", 4_000_000), ("02", 3_000_000), ("03", 400_000)):
        (tmp_path / f"greed.123.2-{thread}").write_text(f"events: Ir\ntotals: {n}\n")
    assert counted(tmp_path.glob("greed.123.2-*")) == (7_400_000, 4_000_000)
    assert counted([dump]) == (7_400_000, None)
    main = {("python3", "x = 1"): 4_000_000, ("greed", "x = 1"): 4_049_000}
    rows = [
        {**r, "main_thread_instructions": 100 * main.get((r["kernel"], r["code"]), 0)} for r in rows
    ]
    greed = summarise(rows, 100)["kernels"]["greed"]
    assert greed["main_per_cell"]["x = 1"] == 4_049_000
    assert greed["main_added_by_code"]["x = 1"] == 49_000


def test_strace_tables_are_read() -> None:
    """The syscall counts (pure): strace -c's table, with and without an errors column."""
    from benchmarks.instructions import _strace_table

    table = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 18.00    3.620178          63     57166      6401 futex
 44.40    8.929909         995      8971           epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00   20.114037         138    145538      7001 total
"""
    assert _strace_table(table) == {"futex": 57166, "epoll_wait": 8971, "total": 145538}
    with pytest.raises(ValueError, match="no total"):
        _strace_table("strace: Process 12 attached\n")


def test_the_hot_path_loop_runs_each_variant() -> None:
    """benchmarks.hotpath's loop (what callgrind counts) runs greed attached and
    detached on a real shell; the arithmetic of its estimate is the difference of the
    two runs per cell."""
    from benchmarks.hotpath import per_cell

    for variant in ("attached", "detached"):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.hotpath", "--loop", variant, "5", "x + 1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("Out[") == 55  # WARM + 5 cells, each shown
        assert "greed:" not in done.stderr  # nothing of ours failed
    assert per_cell(1_000, 3_000, 1_000) == 2.0


def test_the_busywork_control_runs(tmp_path: Path) -> None:
    """benchmarks.busywork runs a pair of python3 kernels, one with a busy loop on the
    cell events, and writes the paired estimate for each code."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.busywork"),
            *("--processes", "1", "--cells", "4", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "busywork.json").read_text(encoding="utf-8"))
    assert results["work_us"] == 30.0
    assert {code: p["pairs"] for code, p in results["paired_by_code"].items()} == {
        "x = 1": 1,
        "x + 1": 1,
    }
