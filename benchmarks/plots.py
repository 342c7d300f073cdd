"""The plots of a run: the soak's memory and latency, the budget session's memory."""

from __future__ import annotations

import statistics
import typing as t
from pathlib import Path

from .kernels import MiB

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
    half = window // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
