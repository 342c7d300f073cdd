"""The headline metrics and checks of a benchmark run, with their targets."""

from __future__ import annotations

#: The headline metrics; each is met when its value is <= its target (None: no
#: target, the value is reported only). RssAnon is private anonymous memory (what
#: paging moves out); total RSS adds RssFile (file pages mapped in, paged memory
#: once read back included) and RssShmem; "anonymous RSS" in the budget rows is
#: RssAnon + RssShmem, what the memory budget counts.
TARGETS: dict[str, tuple[str, str, float | None]] = {  # key: (label, unit, target)
    "anon_growth_ratio": ("RssAnon growth over the soak, greed / python3", "x", 0.10),
    "rss_growth_ratio": ("Total RSS growth over the soak, greed / python3", "x", 0.10),
    "anon_peak_ratio": ("Peak RssAnon in the soak, greed / python3", "x", 0.25),
    "peak_rss_ratio": ("Peak total RSS in the soak, greed / python3", "x", 0.25),
    "latency_ratio": ("Median soak cell latency, greed / python3", "x", 1.03),
    "latency_paired_ratio": ("Median per-cell latency ratio (paired), greed / python3", "x", 1.03),
    "latency_drift": ("Greed soak latency, last 50 / first 50 cells", "x", 1.05),
    "latency_drift_relative": ("The same, divided by python3's last 50 / first 50", "x", 1.05),
    "anon_growth_ratio_paced": ("RssAnon growth, greed (paced) / python3", "x", 0.10),
    "rss_growth_ratio_paced": ("Total RSS growth, greed (paced) / python3", "x", 0.10),
    "anon_peak_ratio_paced": ("Peak RssAnon, greed (paced) / python3", "x", 0.25),
    "peak_rss_ratio_paced": ("Peak total RSS, greed (paced) / python3", "x", 0.25),
    "latency_ratio_paced": ("Median soak cell latency, greed (paced) / python3", "x", 1.03),
    "latency_paired_ratio_paced": ("Median per-cell latency ratio (paired), paced", "x", 1.03),
    "latency_drift_paced": ("Greed (paced) soak latency, last 50 / first 50", "x", 1.05),
    "budget_soak_anon_ratio": (
        "Soak under memory_limit (greed-budget): peak anonymous RSS / limit",
        "x",
        1.10,
    ),
    "latency_paired_ratio_budget": ("Median per-cell latency ratio (paired), budget", "x", None),
    "trivial_added_us": ("Added time per `x = 1` cell (median difference)", "us", 50.0),
    "trivial_added_percent": (
        "Added time per trivial cell, in % of python3's median (the larger of `x = 1`, `x + 1`)",
        "%",
        1.0,
    ),
    "trivial_paired_added_us": (
        "Added time per `x = 1` cell, paired: mean over pairs of processes of greed's "
        "median minus python3's",
        "us",
        50.0,
    ),
    "trivial_paired_added_percent": (
        "The same in % of python3's medians (the larger of `x = 1`, `x + 1`)",
        "%",
        1.0,
    ),
    "trivial_control_paired_added_us": (
        "The same, paired, with python3 on both sides (a control), `x = 1`",
        "us",
        None,
    ),
    "trivial_modules_paired_added_us": (
        "The same, paired, a python3 kernel that only imported greed's modules, `x = 1`",
        "us",
        None,
    ),
    "trivial_control_added_us": (
        "The same between processes with python3 on both sides (a control), `x = 1`",
        "us",
        None,
    ),
    "trivial_modules_added_us": (
        "The same, a python3 kernel that only imported greed's modules in greed's place, `x = 1`",
        "us",
        None,
    ),
    "trivial_attached_added_us": (
        "The same, greed attached vs detached on alternate cells of the same kernels",
        "us",
        50.0,
    ),
    "trivial_attached_added_percent": (
        "The same in % of the detached cells' median (the larger of the two codes)",
        "%",
        1.0,
    ),
    "trivial_attached_cpu_us": (
        "The same, main thread's CPU time in the execute handler per `x = 1` cell",
        "us",
        None,
    ),
    "trivial_guard_added_us": (
        "The same, the memory guard on vs off on alternate cells of the same greed kernels",
        "us",
        None,
    ),
    "trivial_handler_added_us": (
        "Added time in the kernel's execute handler per trivial cell (median difference)",
        "us",
        50.0,
    ),
    "instructions_detached_percent": (
        "Instructions per trivial cell (callgrind), greed's process with greed detached "
        "vs python3 (the larger of the two codes, either sign)",
        "%",
        None,
    ),
    "instructions_added": (
        "Instructions greed adds per `x = 1` cell vs python3 (callgrind, periodic work off)",
        "instr",
        None,
    ),
    "instructions_main_added": (
        "Instructions greed adds per `x = 1` cell vs python3, the kernel's main thread only",
        "instr",
        None,
    ),
    "instructions_added_percent": (
        "The same in % of python3's instructions (the larger of the two codes)",
        "%",
        None,
    ),
    "syscalls_detached_percent": (
        "System calls per `x = 1` cell (strace), greed's process with greed detached vs python3",
        "%",
        None,
    ),
    "syscalls_added_percent": (
        "System calls per `x = 1` cell (strace), greed attached vs python3",
        "%",
        None,
    ),
    "startup_ratio": ("Start-up time, greed / python3 (median)", "x", 1.1),
    "pause_delay_ms": (
        "Delay of a back-to-back cell across greed's periodic cleanup or optimisation, "
        "torch + ~500k objects (the worst such cell)",
        "ms",
        20.0,
    ),
    "pause_delay_python3_ms": ("The same cells on python3 (a control)", "ms", None),
    "checkpoint_overhead_percent": (
        "Automatic checkpoints at a person's pace (0.8 s between cells): total cell time, "
        "greed checkpoint=auto over checkpoint=off, minus 1",
        "%",
        2.5,
    ),
    "checkpoint_wait_percent": (
        "The same, the part resolved here: the cells' wait before the kernel began them "
        "(a slice running), auto minus off, over off's total cell time",
        "%",
        2.5,
    ),
    "checkpoint_paired_ratio": (
        "The same, median ratio of the same cells, auto / off",
        "x",
        None,
    ),
    "cleanup_ms": (
        "Cleanup asked for (%greed cleanup: the whole heap) at ~500k new objects, first run",
        "ms",
        None,
    ),
    "cleanup_next_ms": ("The same, subsequent runs", "ms", None),
    "optimize_ms": ("Optimisation asked for at ~500k new objects, first run", "ms", None),
    "optimize_next_ms": ("The same, subsequent runs", "ms", None),
    "paging_write_ratio": ("Paging a tensor out (page_out) / raw write + fdatasync", "x", 2.0),
    "paging_read_ratio_warm": (
        "First use after paging / raw read of the same bytes (page cache warm)",
        "x",
        2.0,
    ),
    "paging_read_ratio_cold": (
        "First use after paging / raw read (cold: pages dropped from the cache)",
        "x",
        2.0,
    ),
    "budget_anon_ratio": (
        "Budget session: greed's peak anonymous RSS after a cell / memory_limit",
        "x",
        1.10,
    ),
    "budget_wall_ratio": ("Budget session wall time, greed / python3", "x", None),
}
#: Yes/no checks shown with the headline.
CHECKS = {
    "identical_result": "Final training state bit-identical, greed vs python3",
    "identical_result_paced": "Final training state bit-identical, greed (paced) vs python3",
    "identical_result_budget": "Final training state bit-identical, greed (budget) vs python3",
    "state_preserved": "model, optimizer, data, losses present in greed at the end",
    "expected_statuses": "Every soak cell replied as expected (ok / error) in every kernel",
    "paging_identical": "Paged tensors read back bit-identical",
    "budget_identical": "Budget session: every block's checksum equals python3's",
    "checkpoint_identical": "Checkpointing suite: final training state equal on all three kernels",
    "budget_python3_killed": "Budget session, watchdog at the limit: python3 killed",
    "budget_greed_intact": "Budget session, watchdog at the limit: greed finished, blocks intact",
}
