"""Estimates of the latency greed adds, with their uncertainty.

Two processes of the same kernel differ in median latency by tens of microseconds,
more than what is measured; so the trivial suite runs many processes of each kind
side by side, in pairs (``python3#n`` and ``greed#n``), and these functions turn the
cells' latencies into added microseconds: pooled medians with a two-stage bootstrap
over pairs and cells (:func:`bootstrap_added_us`), the mean over pairs of each pair's
difference (:func:`paired_added_us`), and greed attached against detached in the
same processes (:func:`attached_results`).
"""

from __future__ import annotations

import random
import statistics
import typing as t
from collections.abc import Sequence

#: The codes of the trivial cells, alternately.
TRIVIAL_CODES = ("x = 1", "x + 1")
#: Resamples of the bootstrap that gives the confidence intervals.
BOOTSTRAP_RESAMPLES = 400


def attached_results(rows: Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
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
        code: bootstrap_added_us(by_mode, code) for code in TRIVIAL_CODES
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


def bootstrap_added_us(
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


def paired_added_us(
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
