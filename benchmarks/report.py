"""Outputs: CSV series, summary.json with the headline ratios, plots, a text table."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
import sys
import typing as t
from importlib import metadata
from pathlib import Path

import psutil

MiB = 1024 * 1024

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
    "trivial_own_work_us": (
        "Greed's own work before the reply per trivial cell, timed in the kernel (median)",
        "us",
        50.0,
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
    "cleanup_ms": ("Cleanup at ~500k new objects, first run after creating them", "ms", 20.0),
    "cleanup_next_ms": ("Cleanup at ~500k objects, subsequent runs", "ms", 20.0),
    "optimize_ms": ("Optimisation at ~500k new objects, first run", "ms", 30.0),
    "optimize_next_ms": ("Optimisation at ~500k objects, subsequent runs", "ms", 30.0),
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
    "budget_python3_killed": "Budget session, watchdog at the limit: python3 killed",
    "budget_greed_intact": "Budget session, watchdog at the limit: greed finished, blocks intact",
}


# -- machine and versions ----------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def greed_source() -> dict[str, t.Any]:
    """Which greed_kernel the kernels ran: the checkout's HEAD and a hash of the sources."""
    import hashlib
    import subprocess

    package = Path(__file__).resolve().parent.parent / "greed_kernel"
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=package.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return {"git_head": head or None, "sources_sha256": digest.hexdigest()}


def environment() -> dict[str, t.Any]:
    """The machine and the versions the numbers were taken with."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "machine": {
            "cores": os.cpu_count(),
            "ram_bytes": psutil.virtual_memory().total,
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "ipykernel": _version("ipykernel"),
            "IPython": _version("ipython"),
            "torch": _version("torch"),
            "jupyter_client": _version("jupyter_client"),
            "matplotlib": _version("matplotlib"),
            "greed_kernel": _version("greed-kernel") or _greed_version(),
        },
        "loadavg": load,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": _argv(),
    }


def _argv() -> list[str]:
    """The command line, without the path this checkout happens to live at."""
    first = Path(sys.argv[0]) if sys.argv else Path()
    if first.name == "__main__.py":
        head = f"-m {first.parent.name}"
    elif first.suffix == ".py":
        head = f"-m {first.parent.name}.{first.stem}"
    else:
        head = first.name
    return [head, *sys.argv[1:]]


def _greed_version() -> str | None:
    try:
        from greed_kernel import __version__

        return __version__
    except Exception:
        return None


# -- headline ---------------------------------------------------------------------------
def _div(a: t.Any, b: t.Any) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def _interval(bounds: list[float] | None) -> str:
    """' (95% interval A to B us)', or nothing without one."""
    if not bounds:
        return ""
    return f" (95% interval {bounds[0]:+.0f} to {bounds[1]:+.0f} us)"


def _by_code(added: dict[str, float], intervals: dict[str, t.Any] | None) -> str:
    """'x = 1 +12 us (95% interval ...); x + 1 ...': added microseconds per code."""
    return "; ".join(
        f"{code} {us:+.0f} us{_interval((intervals or {}).get(code))}" for code, us in added.items()
    )


def _paired(results: dict[str, t.Any], key: str = "paired_by_code") -> str:
    """'x = 1 +40 us (95% interval ...), +0.9%; x + 1 ...' from a paired_by_code."""
    return "; ".join(
        f"{code} {p['added_us']:+.0f} us{_interval(p['interval_us'])}, "
        f"{p['added_percent']:+.2f}% ({p['pairs']} pair{'' if p['pairs'] == 1 else 's'})"
        for code, p in results[key].items()
        if p
    )


def _near(entries: list[dict[str, t.Any]], target: int) -> dict[str, t.Any] | None:
    """The sweep entry whose size is nearest to ``target`` (on a log scale)."""
    if not entries:
        return None
    return min(entries, key=lambda e: abs(math.log(max(e["size"], 1) / target)))


def headline(results: dict[str, t.Any]) -> dict[str, t.Any]:
    """The headline values, their targets and whether each is met."""
    values: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    checks: dict[str, bool | None] = {}
    soak = results.get("soak")
    if soak:
        ks = soak["kernels"]
        p3 = ks["python3"]
        variants = (("greed", ""), ("greed-paced", "_paced"), ("greed-budget", "_budget"))
        for label, suffix in variants:
            g = ks.get(label)
            if g is None:
                continue
            if suffix != "_budget":
                values["anon_growth_ratio" + suffix] = _div(
                    g.get("anon_growth"), p3.get("anon_growth")
                )
                values["rss_growth_ratio" + suffix] = _div(g["rss_growth"], p3["rss_growth"])
                values["anon_peak_ratio" + suffix] = _div(g.get("anon_peak"), p3.get("anon_peak"))
                values["peak_rss_ratio" + suffix] = _div(g["rss_peak"], p3["rss_peak"])
                values["latency_ratio" + suffix] = _div(
                    g["latency_median_ms"], p3["latency_median_ms"]
                )
                values["latency_drift" + suffix] = _div(
                    g["latency_last_window_ms"], g["latency_first_window_ms"]
                )
            else:
                values["budget_soak_anon_ratio"] = _div(
                    g.get("anonymous_peak"), g.get("memory_limit")
                )
            values["latency_paired_ratio" + suffix] = g.get("latency_paired_ratio_median")
            if not suffix:  # python3 ran the same cells at the same time: its drift is the load's
                values["latency_drift_relative"] = _div(
                    values["latency_drift"],
                    _div(p3["latency_last_window_ms"], p3["latency_first_window_ms"]),
                )
            checks["identical_result" + suffix] = g["identical_to_python3"]
        checks["state_preserved"] = ks["greed"]["state_ok"]
        checks["expected_statuses"] = all(k["status_mismatches"] == 0 for k in ks.values())
        if ks.get("greed-paced"):
            notes["paced"] = " ".join(ks["greed-paced"]["args"])
        if ks.get("greed-budget"):
            notes["budget_soak"] = " ".join(ks["greed-budget"]["args"])
    trivial = results.get("trivial")
    if trivial:
        values["trivial_added_us"] = trivial["added_us_by_code"]["x = 1"]
        values["trivial_added_percent"] = trivial["added_percent"]
        if trivial.get("greed_args"):
            notes["trivial"] = "greed kernels: " + " ".join(trivial["greed_args"])
        paired = trivial.get("paired_by_code") or {}
        if paired.get("x = 1"):
            values["trivial_paired_added_us"] = paired["x = 1"]["added_us"]
            values["trivial_paired_added_percent"] = max(
                p["added_percent"] for p in paired.values() if p
            )
        values["trivial_handler_added_us"] = trivial["handler_added_us"]
        values["trivial_own_work_us"] = trivial["own_work_us"]
        control = trivial.get("control") or {}
        if control.get("added_us_by_code"):
            values["trivial_control_added_us"] = control["added_us_by_code"]["x = 1"]
        if (control.get("paired_by_code") or {}).get("x = 1"):
            values["trivial_control_paired_added_us"] = control["paired_by_code"]["x = 1"][
                "added_us"
            ]
        modules = trivial.get("modules_control") or {}
        if modules.get("added_us_by_code"):
            values["trivial_modules_added_us"] = modules["added_us_by_code"]["x = 1"]
        if (modules.get("paired_by_code") or {}).get("x = 1"):
            values["trivial_modules_paired_added_us"] = modules["paired_by_code"]["x = 1"][
                "added_us"
            ]
        attached = trivial.get("attached") or {}
        if attached.get("added_us_by_code"):
            values["trivial_attached_added_us"] = attached["added_us_by_code"]["x = 1"]
            values["trivial_attached_added_percent"] = attached["added_percent"]
        if attached.get("cpu_added_us_by_code"):
            values["trivial_attached_cpu_us"] = attached["cpu_added_us_by_code"]["x = 1"]
    ins = results.get("instructions")
    if ins and ins.get("skipped"):
        notes["instructions"] = f"instructions suite skipped: {ins['skipped']}"
    elif ins:
        ks = ins["kernels"]
        if "greed-detached" in ks:
            values["instructions_detached_percent"] = max(
                ks["greed-detached"]["added_percent_by_code"].values(), key=abs
            )
        if "greed" in ks:
            values["instructions_added"] = ks["greed"]["added_by_code"]["x = 1"]
            values["instructions_added_percent"] = ks["greed"]["added_percent"]
            if (ks["greed"].get("main_added_by_code") or {}).get("x = 1") is not None:
                values["instructions_main_added"] = ks["greed"]["main_added_by_code"]["x = 1"]
    sc = (ins or {}).get("syscalls") or {}
    if sc.get("skipped"):
        notes["syscalls"] = f"syscall counts skipped: {sc['skipped']}"
    elif sc:
        values["syscalls_detached_percent"] = sc["added_percent"].get("greed-detached")
        values["syscalls_added_percent"] = sc["added_percent"].get("greed")
    start = results.get("startup")
    if start:
        values["startup_ratio"] = start["ratio"]
    hk = results.get("housekeeping")
    if hk:
        e = _near(hk["objects"], 500_000)
        if e is not None:
            values["cleanup_ms"] = e["cleanup_first_ms"]
            values["cleanup_next_ms"] = e["cleanup_next_ms"]
            values["optimize_ms"] = e["optimize_first_ms"]
            values["optimize_next_ms"] = e["optimize_next_ms"]
            notes["objects"] = f"{e['size']:,} objects created"
    pg = results.get("paging")
    if pg:
        values["paging_write_ratio"] = pg["write_ratio"]
        values["paging_read_ratio_warm"] = pg["read_ratio_warm"]
        values["paging_read_ratio_cold"] = pg["read_ratio_cold"]
        checks["paging_identical"] = pg["identical"]
        notes["paging"] = f"{pg['mib']} MiB, median of {pg['reps']}"
    bd = results.get("budget")
    if bd:
        plain, dog = bd["plain"], bd["watchdog"]
        values["budget_anon_ratio"] = plain["greed"]["anon_peak_ratio"]
        values["budget_wall_ratio"] = bd["wall_ratio"]
        checks["budget_identical"] = plain["greed"]["final_identical_to_python3"] is True
        checks["budget_python3_killed"] = dog["python3"]["killed"]
        checks["budget_greed_intact"] = bd["greed_intact"]
        notes["budget"] = (
            f"{bd['blocks']} blocks of {bd['block_bytes'] / MiB:g} MiB, "
            f"memory_limit {bd['limit'] / MiB:.0f} MiB"
        )
    rows = {}
    for key, (label, unit, target) in TARGETS.items():
        if key not in values:
            continue
        value = values[key]
        rows[key] = {
            "label": label,
            "value": value,
            "unit": unit,
            "target": target,
            "op": "<=" if target is not None else "",
            "met": None if value is None or target is None else value <= target,
        }
    return {
        "metrics": rows,
        "checks": {k: {"label": CHECKS[k], "ok": v} for k, v in checks.items()},
        "notes": notes,
    }


# -- files ------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict[str, t.Any]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, data: t.Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


_COLORS = {
    "python3": "#d62728",
    "greed": "#1f77b4",
    "greed-paced": "#2ca02c",
    "greed-budget": "#9467bd",
}


def plot_soak(out: Path, rows: list[dict[str, t.Any]], results: dict[str, t.Any]) -> list[Path]:
    """soak_rss.png and soak_latency.png (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["kernels"])
    series = {label: [r for r in rows if r["kernel"] == label] for label in labels}
    title = f"Soak: {results['cells']:,}-cell PyTorch notebook (seed {results['seed']})"
    written = []

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6.4), dpi=90, sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for label in labels:
        rs = series[label]
        k = results["kernels"][label]
        base = k.get("memory_after_setup") or {"anon": k["rss_after_setup"], "file": 0}
        xs = [0] + [r["cell"] for r in rs]
        color = _COLORS.get(label)
        top.plot(
            xs,
            [base["anon"] / MiB] + [r["rss_anon_bytes"] / MiB for r in rs],
            label=_legend(label, results),
            color=color,
            lw=1.4,
        )
        bottom.plot(
            xs, [base["file"] / MiB] + [r["rss_file_bytes"] / MiB for r in rs], color=color, lw=1.2
        )
        if k.get("memory_limit"):
            top.axhline(k["memory_limit"] / MiB, color=color, ls="--", lw=0.9)
            top.annotate(
                f"{label}'s memory_limit",
                (xs[-1], k["memory_limit"] / MiB),
                fontsize=7,
                color=color,
                ha="right",
                va="bottom",
            )
    top.set_ylabel("RssAnon (MiB)")
    top.set_title(title + "; kernel and its children", fontsize=10)
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_ylabel("RssFile (MiB)")
    bottom.set_xlabel("execution number (soak cell)")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "soak_rss.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=90)
    for label in labels:
        rs = series[label]
        xs = [r["cell"] for r in rs]
        ys = [r["latency_ms"] for r in rs]
        color = _COLORS.get(label)
        ax.scatter(xs, ys, s=2, alpha=0.25, color=color, linewidths=0)
        ax.plot(xs, _rolling_median(ys, 49), color=color, lw=1.4, label=_legend(label, results))
    ax.set_yscale("log")
    ax.set_xlabel("execution number (soak cell)")
    ax.set_ylabel("cell latency (ms): request sent to idle")
    ax.set_title(title + "; dots: cells, lines: rolling median of 49", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = out / "soak_latency.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


_BUDGET_COLORS = {"python3": "#d62728", "greed": "#1f77b4"}


def plot_budget(out: Path, rows: list[dict[str, t.Any]], results: dict[str, t.Any]) -> Path:
    """budget_rss.png: anonymous RSS after each cell of the budget session."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = results["limit"] / MiB
    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=90)
    for label, color in _BUDGET_COLORS.items():
        rs = [r for r in rows if r["session"] == "plain" and r["kernel"] == label]
        xs = [r["cell"] for r in rs]
        anon = [(r["rss_anon_bytes"] + r["rss_shmem_bytes"]) / MiB for r in rs]
        ax.plot(xs, anon, color=color, lw=1.5, marker=".", ms=3, label=f"{label}: RssAnon+RssShmem")
        if label == "greed":
            ax.plot(
                xs,
                [r["rss_file_bytes"] / MiB for r in rs],
                color=color,
                lw=1.0,
                ls=":",
                label="greed: RssFile (libraries; paged memory once read back)",
            )
            paged = [(x, a) for x, a, r in zip(xs, anon, rs, strict=True) if r["trigger"]]
            if paged:
                ax.scatter(
                    *zip(*paged, strict=True),
                    s=45,
                    facecolors="none",
                    zorder=3,
                    edgecolors=color,
                    label="greed: a budget cleanup ran after the cell",
                )
    ax.axhline(limit, color="black", lw=1.0, label=f"memory_limit {limit:.0f} MiB")
    ax.axhline(limit * 1.1, color="black", lw=0.8, ls="--", label="limit + 10%")
    p3 = results["plain"]["python3"]
    first = p3.get("first_cell_over_limit")
    if first is not None:
        ax.axvline(first, color=_BUDGET_COLORS["python3"], lw=0.8, ls="--")
        ax.annotate(
            f" python3 over the limit\n after cell {first}: an OOM killer stops it",
            (first, limit * 0.3),
            fontsize=8,
            color=_BUDGET_COLORS["python3"],
        )
    killed = results["watchdog"]["python3"]
    if killed.get("killed"):
        ax.annotate(
            f" watchdog run: python3 killed in cell {killed.get('killed_at_cell')}",
            (killed.get("killed_at_cell"), limit * 0.05),
            fontsize=8,
            color=_BUDGET_COLORS["python3"],
        )
    ax.set_xlabel("cell (cell i creates block i and reads blocks i-1, i-2; last: checks all)")
    ax.set_ylabel("anonymous RSS after the cell (MiB)")
    ax.set_title(
        f"Memory budget: {results['blocks']} blocks of {results['block_bytes'] / MiB:g} MiB, "
        "kernel and its children",
        fontsize=10,
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = out / "budget_rss.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _legend(label: str, results: dict[str, t.Any]) -> str:
    args = results["kernels"][label].get("args") or []
    if label == "python3":
        return "python3 (stock ipykernel)"
    if not args:
        return f"{label} (default traits)"
    shown = ", ".join(
        _arg(a.removeprefix("--GreedKernel.")) for a in args if "memory_limit" not in a
    )
    if any("memory_limit" in a for a in args):
        limit = results["kernels"][label].get("memory_limit") or 0
        shown = ", ".join(filter(None, [shown, f"memory_limit {limit / MiB:.0f} MiB"]))
    return f"{label} ({shown} s)" if "recent_window" in shown else f"{label} ({shown})"


def _arg(arg: str) -> str:
    return arg.replace("=", " = ")


def _rolling_median(values: list[float], window: int) -> list[float]:
    import statistics

    half = window // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


# -- text -------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.3f} ms" if abs(value) < 1 else f"{value:.1f} ms"
    if unit == "instr":
        return f"{value:+,.0f}"
    if unit in ("us", "%"):
        return f"{value:.0f} us" if unit == "us" else f"{value:.2f}%"
    return f"{value:.3f}"


def _target(m: dict[str, t.Any]) -> str:
    if m["target"] is None:
        return "(reported)"
    unit = {"ms": " ms", "us": " us", "%": "%"}.get(m["unit"], "")
    return f"<= {m['target']:g}{unit}"


def table(head: dict[str, t.Any]) -> str:
    """The headline as a plain-text table: measured, target, met or missed."""
    lines = []
    rows = [("Metric", "Measured", "Target", "Result")]
    for m in head["metrics"].values():
        result = "n/a" if m["met"] is None else ("met" if m["met"] else "MISSED")
        target = _target(m)
        rows.append((m["label"], _fmt(m["value"], m["unit"]), target, result))
    for c in head["checks"].values():
        ok = c["ok"]
        rows.append((c["label"], _yes(ok), "yes", "n/a" if ok is None else _met(ok, "MISSED")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(results: dict[str, t.Any]) -> str:
    """The numbers behind the headline, as plain text."""
    out: list[str] = []
    soak = results.get("soak")
    if soak:
        out.append(
            f"Soak: {soak['cells']:,} cells (seed {soak['seed']}), {soak['wall_s']:.0f} s for "
            f"all kernels together ({soak['kernel_cells_per_s'] or 0:.1f} cells/s per kernel)"
        )
        for label, k in soak["kernels"].items():
            line = (
                f"  {label:<12} RssAnon {_mib(k.get('anon_start'))} -> {_mib(k.get('anon_end'))} "
                f"MiB (growth {_mib(k.get('anon_growth'), '+')}, peak {_mib(k.get('anon_peak'))})"
                f"; RssFile {_mib(k.get('file_start'))} -> {_mib(k.get('file_end'))} (peak "
                f"{_mib(k.get('file_peak'))}); RssShmem peak {_mib(k.get('shmem_peak'))}; total "
                f"RSS {k['rss_start'] / MiB:.0f} -> {k['rss_end'] / MiB:.0f} (growth "
                f"{k['rss_growth'] / MiB:+.0f}, peak {k['rss_peak'] / MiB:.0f})"
            )
            if k.get("memory_limit"):
                line += (
                    f"; memory_limit {k['memory_limit'] / MiB:.0f} MiB, peak RssAnon+RssShmem "
                    f"{_mib(k.get('anonymous_peak'))} MiB"
                )
            out.append(line)
            line = (
                f"  {'':<12} latency median {k['latency_median_ms']:.1f} ms, p90 "
                f"{k['latency_p90_ms']:.1f}, max {k['latency_max_ms']:.0f}; first/last "
                f"{k['latency_window']} {k['latency_first_window_ms']:.1f}/"
                f"{k['latency_last_window_ms']:.1f} ms; errors {k['errors']} "
                f"(unexpected {k['status_mismatches']})"
            )
            if "latency_paired_diff_median_ms" in k and label != "python3":
                line += f"; paired diff {k['latency_paired_diff_median_ms']:+.2f} ms"
            out.append(line)
            g = k.get("greed_stats")
            if g and "failed" not in g:
                extra = ""
                if "recent_window_cells" in k:
                    extra = (
                        f"; recent_window {k['recent_window_s']:g} s = about "
                        f"{k['recent_window_cells']:.0f} cells at this pace"
                    )
                out.append(
                    f"  {'':<12} {g['cleanupCount']} cleanups, {g['optimizeCount']} "
                    f"optimisations (last ones: cleanup median {_ms(g['cleanup_median_ms'])}, "
                    f"max {_ms(g['cleanup_max_ms'])}; optimise median "
                    f"{_ms(g['optimize_median_ms'])}, max {_ms(g['optimize_max_ms'])}); paged "
                    f"out at the end {(g.get('pagedBytes') or 0) / MiB:.0f} MiB of "
                    f"{g.get('pagedNames', 0)} names, "
                    f"{(g.get('pagedTotal') or 0) / MiB:.0f} MiB paged out in all" + extra
                )
    trivial = results.get("trivial")
    if trivial:
        p3, gr = trivial["kernels"]["python3"], trivial["kernels"]["greed"]
        out.append(
            f"Trivial cells: {trivial['cells']:,} on each of {trivial['processes']} processes "
            f"of each kernel; median python3 {p3['median_ms']:.3f} ms, greed "
            f"{gr['median_ms']:.3f} ms; added: median {trivial['added_ms_median'] * 1000:+.0f} "
            f"us{_interval(trivial.get('added_us_interval'))} "
            f"(by code at most {trivial['added_percent']:+.2f}%), mean "
            f"{trivial['added_ms_mean'] * 1000:+.0f} "
            "us (the mean includes greed's periodic cleanups)"
            + (
                f"; greed kernels started with {' '.join(trivial['greed_args'])}"
                if trivial.get("greed_args")
                else ""
            )
        )
        out.append(
            "  by cell: "
            + _by_code(trivial["added_us_by_code"], trivial.get("added_us_interval_by_code"))
        )
        if trivial.get("paired_by_code"):
            out.append("  paired (mean over pairs of processes): " + _paired(trivial))
        control = trivial.get("control") or {}
        if control.get("added_us_by_code"):
            out.append(
                f"  control, python3 against python3 in the same design ({control['processes']} "
                "pairs of processes): "
                + _by_code(control["added_us_by_code"], control["added_us_interval_by_code"])
                + (f"; paired: {_paired(control)}" if control.get("paired_by_code") else "")
            )
        modules = trivial.get("modules_control") or {}
        if modules.get("added_us_by_code"):
            out.append(
                "  control, python3 against python3 that imported greed's modules (nothing "
                f"of greed running; {modules['processes']} pairs of processes): "
                + _by_code(modules["added_us_by_code"], modules["added_us_interval_by_code"])
                + (f"; paired: {_paired(modules)}" if modules.get("paired_by_code") else "")
            )
        attached = trivial.get("attached") or {}
        if attached.get("added_us_by_code"):
            out.append(
                f"  greed attached / detached on alternate cells of the same greed kernels "
                f"({attached['cells']:,} cells): added "
                + _by_code(attached["added_us_by_code"], attached["added_us_interval_by_code"])
                + f" (at most {attached['added_percent']:+.2f}%)"
                + (
                    "; in the execute handler "
                    + "; ".join(
                        f"{code} {v:+.0f} us wall, "
                        f"{attached['cpu_added_us_by_code'][code]:+.0f} us CPU"
                        for code, v in attached["handler_added_us_by_code"].items()
                    )
                    if attached.get("handler_added_us_by_code")
                    else ""
                )
            )
        if trivial.get("own_work_us") is not None:
            by_call = trivial.get("own_work_by_call_us") or {}
            out.append(
                f"  greed's own work before the reply, timed in the kernel (the timers "
                f"included): {trivial['own_work_us']:.0f} us per cell"
                + (
                    " (medians by call: "
                    + ", ".join(f"{name} {v:.1f} us" for name, v in by_call.items())
                    + "; transform_ast with IPython's own inside it)"
                    if by_call
                    else ""
                )
            )
        out.append(
            f"  in the kernel's execute handler: python3 {p3['handler_median_us']:.0f} us, "
            f"greed {gr['handler_median_us']:.0f} us, added {trivial['handler_added_us']:+.0f} "
            "us"
            + (
                f" (paired: {_paired(trivial, 'handler_paired_by_code')})"
                if trivial.get("handler_paired_by_code")
                else ""
            )
            + "; medians of single processes (client side, ms): "
            + ", ".join(
                f"{name} {v:.3f}" for k in (p3, gr) for name, v in k["median_by_process_ms"].items()
            )
        )
    ins = results.get("instructions")
    if ins and ins.get("skipped"):
        out.append(f"Instructions per trivial cell: skipped ({ins['skipped']})")
    elif ins:
        out.append(
            f"Instructions per trivial cell (callgrind, all threads, user space; "
            f"{ins['cells']} cells of each code per kernel, after a warm-up):"
        )
        for label, k in ins["kernels"].items():
            line = f"  {label:<15} " + "; ".join(
                f"{code} {n:,}" for code, n in k["per_cell"].items()
            )
            if "added_by_code" in k:
                line += (
                    " (added "
                    + ", ".join(
                        f"{n:+,} = {k['added_percent_by_code'][code]:+.2f}%"
                        for code, n in k["added_by_code"].items()
                    )
                    + ")"
                )
            if k.get("main_per_cell"):
                line += "; main thread " + "; ".join(
                    f"{code} {n:,}" for code, n in k["main_per_cell"].items()
                )
                if k.get("main_added_by_code"):
                    line += (
                        " (added "
                        + ", ".join(f"{n:+,}" for n in k["main_added_by_code"].values())
                        + ")"
                    )
            out.append(line)
        sc = ins.get("syscalls") or {}
        if sc.get("skipped"):
            out.append(f"System calls per `x = 1` cell: skipped ({sc['skipped']})")
        elif sc:
            parts = []
            for label, n in sc["per_cell"].items():
                added = sc["added_percent"].get(label)
                parts.append(
                    f"{label} {n:.1f} (futex {sc['futex_per_cell'][label]:.1f}"
                    + ("" if added is None else f"; {added:+.2f}%")
                    + ")"
                )
            out.append(
                f"System calls per `x = 1` cell (strace -c -f, all threads; {sc['cells']} "
                "cells, the kernels side by side): " + ", ".join(parts)
            )
    hk = results.get("housekeeping")
    if hk:
        out.append(
            f"Cleanup / optimisation (median ms; first: {hk['first_reps']} runs on new objects, "
            f"next: {hk['reps']} runs after):"
        )
        out.append(
            "  (gc_freeze is off by default now: every cleanup and optimisation does a full "
            "gc.collect(2), first and next runs alike)"
        )
        out.append("  sweep      size       gc objects  cleanup first/next  optimise first/next")
        for sweep in ("namespace", "objects"):
            for e in hk[sweep]:
                out.append(
                    f"  {sweep:<10} {e['size']:<10,} {e['tracked_objects']:<11,} "
                    f"{e['cleanup_first_ms']:>8.1f} / {e['cleanup_next_ms']:<8.1f}  "
                    f"{e['optimize_first_ms']:>8.1f} / {e['optimize_next_ms']:.1f}"
                )
    pg = results.get("paging")
    if pg:
        m = pg["median"]
        out.append(
            f"Paging ({pg['mib']} MiB tensor, median of {pg['reps']}, in a fresh process; "
            f"paging directory on {pg['directory_filesystem']}): page_out "
            f"{_s(m['page_out_s'])} vs raw write + fdatasync {_s(m['raw_write_s'])} "
            f"(ratio {_x(pg['write_ratio'])}); first use (sum) after paging, warm page cache "
            f"{_s(m['paged_sum_warm_s'])} vs raw read {_s(m['raw_read_warm_s'])} (ratio "
            f"{_x(pg['read_ratio_warm'])}) vs the same sum on resident memory "
            f"{_s(m['resident_sum_s'])}; cold (pages dropped, {_mib(m['paged_sum_cold_io'])} "
            f"MiB read from disk) {_s(m['paged_sum_cold_s'])} vs raw read "
            f"{_s(m['raw_read_cold_s'])} (ratio {_x(pg['read_ratio_cold'])}); "
            f"bit-identical: {'yes' if pg['identical'] else 'NO'}"
        )
    bd = results.get("budget")
    if bd:
        out.append(
            f"Memory budget: {bd['blocks']} blocks of {bd['block_bytes'] / MiB:g} MiB, "
            f"{bd['cells']} cells, greed --GreedKernel.memory_limit={bd['limit']} "
            f"({bd['limit'] / MiB:.0f} MiB; {bd.get('limit_source', 'fixed')}); anonymous RSS "
            "= RssAnon + RssShmem of the kernel and its children, after each cell"
        )
        for session in ("plain", "watchdog"):
            for label, r in bd[session].items():
                line = (
                    f"  {session:<8} {label:<8} "
                    + (
                        f"killed in cell {r.get('killed_at_cell')} at "
                        f"{_mib(r.get('killed_anon'))} MiB; "
                        if r["killed"]
                        else f"all {r['completed_cells']} cells; "
                    )
                    + f"peak anonymous RSS after a cell {_mib(r['anon_peak_after_cell'])} MiB "
                    f"({_x(r['anon_peak_ratio'])} of the limit), first over the limit after "
                    f"cell {r['first_cell_over_limit']}; wall {r['wall_s']:.1f} s; "
                    f"budget cleanups {r['memory_cleanups']}; final checksums equal python3's: "
                    f"{_yes(r['final_identical_to_python3'])}; outputs differing "
                    f"{r['outputs_differing_from_python3']}"
                )
                if r.get("watchdog_peak") is not None:
                    line += f"; watchdog saw at most {_mib(r['watchdog_peak'])} MiB"
                out.append(line)
        out.append(f"  wall time ratio greed / python3 (plain session): {_x(bd['wall_ratio'])}")
    start = results.get("startup")
    if start:
        ks = start["kernels"]
        out.append(
            f"Start-up (median of {start['reps']}): python3 {ks['python3']['median_s']:.2f} s, "
            f"greed {ks['greed']['median_s']:.2f} s"
        )
    return "\n".join(out)


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def _met(ok: bool, missed: str) -> str:
    return "met" if ok else missed


def _load(values: list[float] | None) -> str:
    return "n/a" if not values else " / ".join(f"{v:.2f}" for v in values)


def _mib(value: float | None, sign: str = "") -> str:
    return "n/a" if value is None else f"{value / MiB:{sign}.0f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def markdown(head: dict[str, t.Any], env: dict[str, t.Any], note: str, detail: str = "") -> str:
    """summary.md: the headline table with the machine and versions."""
    m, v = env["machine"], env["versions"]
    out = [
        "# Greed vs the stock python3 kernel",
        "",
        note,
        "",
        "| Metric | Measured | Target | Result |",
        "| --- | --- | --- | --- |",
    ]
    for r in head["metrics"].values():
        result = "n/a" if r["met"] is None else ("met" if r["met"] else "**missed**")
        target = _target(r)
        out.append(f"| {r['label']} | {_fmt(r['value'], r['unit'])} | {target} | {result} |")
    for c in head["checks"].values():
        ok = c["ok"]
        result = "n/a" if ok is None else _met(ok, "**missed**")
        out.append(f"| {c['label']} | {_yes(ok)} | yes | {result} |")
    out += [
        "",
        f"Machine: {m['cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB RAM, {m['cpu_model']}; "
        f"load average (1, 5, 15 min) at the start {_load(env.get('loadavg_start'))}, "
        f"at the end {_load(env.get('loadavg'))}.",
        "",
        "Versions: "
        + ", ".join(f"{name} {ver}" for name, ver in v.items() if ver is not None)
        + ".",
        "",
    ]
    if detail:
        out += ["```text", detail, "```", ""]
    return "\n".join(out)
