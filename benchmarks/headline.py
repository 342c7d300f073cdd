"""The headline of a run: the metrics with their targets, met or not, and the checks."""

from __future__ import annotations

import math
import typing as t

from .kernels import MiB
from .targets import CHECKS, TARGETS


def _div(a: t.Any, b: t.Any) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


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
        guard = trivial.get("guard") or {}
        if guard.get("added_us_by_code"):
            values["trivial_guard_added_us"] = guard["added_us_by_code"]["x = 1"]
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
    ps = results.get("pause")
    if ps:
        values["pause_delay_ms"] = ps["greed"]["after_work_delay_max_ms"]
        values["pause_delay_python3_ms"] = ps["python3"]["after_work_delay_max_ms"]
    ck = results.get("checkpointing")
    if ck:
        values["checkpoint_overhead_percent"] = ck["overhead"] * 100.0
        values["checkpoint_paired_ratio"] = ck["paired_ratio_median"]
        if ck.get("wait_added") is not None:
            values["checkpoint_wait_percent"] = ck["wait_added"] * 100.0
        checks["checkpoint_identical"] = ck["identical"]
        notes["checkpointing"] = f"{ck['cells']} cells, {ck['checkpoints_listed']} checkpoints"
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
