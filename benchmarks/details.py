"""The numbers behind a run's headline, as plain text (summary.md and the console)."""

from __future__ import annotations

import typing as t

from .kernels import MiB
from .summary import (
    fmt_by_code,
    fmt_interval,
    fmt_mib,
    fmt_ms,
    fmt_paired,
    fmt_s,
    fmt_x,
    fmt_yes,
)


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
                f"  {label:<12} RssAnon {fmt_mib(k.get('anon_start'))} -> "
                f"{fmt_mib(k.get('anon_end'))} MiB (growth {fmt_mib(k.get('anon_growth'), '+')}, "
                f"peak {fmt_mib(k.get('anon_peak'))}); RssFile {fmt_mib(k.get('file_start'))} -> "
                f"{fmt_mib(k.get('file_end'))} (peak {fmt_mib(k.get('file_peak'))}); RssShmem "
                f"peak {fmt_mib(k.get('shmem_peak'))}; total "
                f"RSS {k['rss_start'] / MiB:.0f} -> {k['rss_end'] / MiB:.0f} (growth "
                f"{k['rss_growth'] / MiB:+.0f}, peak {k['rss_peak'] / MiB:.0f})"
            )
            if k.get("memory_limit"):
                line += (
                    f"; memory_limit {k['memory_limit'] / MiB:.0f} MiB, peak RssAnon+RssShmem "
                    f"{fmt_mib(k.get('anonymous_peak'))} MiB"
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
                    f"optimisations (last ones: cleanup median {fmt_ms(g['cleanup_median_ms'])}, "
                    f"max {fmt_ms(g['cleanup_max_ms'])}; optimise median "
                    f"{fmt_ms(g['optimize_median_ms'])}, max {fmt_ms(g['optimize_max_ms'])}); "
                    f"paged out at the end {(g.get('pagedBytes') or 0) / MiB:.0f} MiB of "
                    f"{g.get('pagedNames', 0)} names" + extra
                )
    trivial = results.get("trivial")
    if trivial:
        p3, gr = trivial["kernels"]["python3"], trivial["kernels"]["greed"]
        out.append(
            f"Trivial cells: {trivial['cells']:,} on each of {trivial['processes']} processes "
            f"of each kernel; median python3 {p3['median_ms']:.3f} ms, greed "
            f"{gr['median_ms']:.3f} ms; added: median {trivial['added_ms_median'] * 1000:+.0f} "
            f"us{fmt_interval(trivial.get('added_us_interval'))} "
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
            + fmt_by_code(trivial["added_us_by_code"], trivial.get("added_us_interval_by_code"))
        )
        if trivial.get("paired_by_code"):
            out.append("  paired (mean over pairs of processes): " + fmt_paired(trivial))
        control = trivial.get("control") or {}
        if control.get("added_us_by_code"):
            out.append(
                f"  control, python3 against python3 in the same design ({control['processes']} "
                "pairs of processes): "
                + fmt_by_code(control["added_us_by_code"], control["added_us_interval_by_code"])
                + (f"; paired: {fmt_paired(control)}" if control.get("paired_by_code") else "")
            )
        modules = trivial.get("modules_control") or {}
        if modules.get("added_us_by_code"):
            out.append(
                "  control, python3 against python3 that imported greed's modules (nothing "
                f"of greed running; {modules['processes']} pairs of processes): "
                + fmt_by_code(modules["added_us_by_code"], modules["added_us_interval_by_code"])
                + (f"; paired: {fmt_paired(modules)}" if modules.get("paired_by_code") else "")
            )
        for key, what in (
            ("attached", "greed attached / detached"),
            ("guard", "the memory guard on / off"),
        ):
            out.extend(_toggled(trivial.get(key) or {}, what))
        out.append(
            f"  in the kernel's execute handler: python3 {p3['handler_median_us']:.0f} us, "
            f"greed {gr['handler_median_us']:.0f} us, added {trivial['handler_added_us']:+.0f} "
            "us"
            + (
                f" (paired: {fmt_paired(trivial, 'handler_paired_by_code')})"
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
            "  (asked for on the comm, as %greed cleanup is: a full gc.collect(2), first and "
            "next runs alike; the periodic ones collect the young generations, see pause)"
        )
        out.append("  sweep      size       gc objects  cleanup first/next  optimise first/next")
        for sweep in ("namespace", "objects"):
            for e in hk[sweep]:
                out.append(
                    f"  {sweep:<10} {e['size']:<10,} {e['tracked_objects']:<11,} "
                    f"{e['cleanup_first_ms']:>8.1f} / {e['cleanup_next_ms']:<8.1f}  "
                    f"{e['optimize_first_ms']:>8.1f} / {e['optimize_next_ms']:.1f}"
                )
    ps = results.get("pause")
    if ps:
        out.append(
            f"Pause: {ps['rounds']} x {ps['cells']} back-to-back `x = 1` cells per kernel, torch "
            f"and {ps['objects']:,} objects (gc objects: python3 {ps['python3_gc_objects']:,}, "
            f"greed {ps['greed_gc_objects']:,}); delay = latency - the block's median"
        )
        for label in ("python3", "greed"):
            k = ps[label]
            out.append(
                f"  {label:<8} median {k['median_ms']:.2f} ms; cells after greed's periodic work: "
                + ", ".join(f"{v:+.1f}" for v in k["after_work_delay_ms"])
                + f" ms (worst {k['after_work_delay_max_ms']:+.1f}); worst cell "
                f"{k['max_delay_ms']:+.1f} ms"
            )
        periodic = [r for r in ps["greed_reports"] if r["trigger"] == "periodic"]
        if periodic:
            out.append(
                "  greed's periodic work (kind, ms, gc generation): "
                + ", ".join(
                    f"{r['kind']} {r['duration_ms']:.1f} ({r['gc_generation']})" for r in periodic
                )
            )
    pg = results.get("paging")
    if pg:
        m = pg["median"]
        out.append(
            f"Paging ({pg['mib']} MiB tensor, median of {pg['reps']}, in a fresh process; "
            f"paging directory on {pg['directory_filesystem']}): page_out "
            f"{fmt_s(m['page_out_s'])} vs raw write + fdatasync {fmt_s(m['raw_write_s'])} "
            f"(ratio {fmt_x(pg['write_ratio'])}); first use (sum) after paging, warm page cache "
            f"{fmt_s(m['paged_sum_warm_s'])} vs raw read {fmt_s(m['raw_read_warm_s'])} (ratio "
            f"{fmt_x(pg['read_ratio_warm'])}) vs the same sum on resident memory "
            f"{fmt_s(m['resident_sum_s'])}; cold (pages dropped, {fmt_mib(m['paged_sum_cold_io'])} "
            f"MiB read from disk) {fmt_s(m['paged_sum_cold_s'])} vs raw read "
            f"{fmt_s(m['raw_read_cold_s'])} (ratio {fmt_x(pg['read_ratio_cold'])}); "
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
                        f"{fmt_mib(r.get('killed_anon'))} MiB; "
                        if r["killed"]
                        else f"all {r['completed_cells']} cells; "
                    )
                    + f"peak anonymous RSS after a cell {fmt_mib(r['anon_peak_after_cell'])} MiB "
                    f"({fmt_x(r['anon_peak_ratio'])} of the limit), first over the limit after "
                    f"cell {r['first_cell_over_limit']}; wall {r['wall_s']:.1f} s; "
                    f"budget cleanups {r['memory_cleanups']}; final checksums equal python3's: "
                    f"{fmt_yes(r['final_identical_to_python3'])}; outputs differing "
                    f"{r['outputs_differing_from_python3']}"
                )
                if r.get("watchdog_peak") is not None:
                    line += f"; watchdog saw at most {fmt_mib(r['watchdog_peak'])} MiB"
                out.append(line)
        out.append(f"  wall time ratio greed / python3 (plain session): {fmt_x(bd['wall_ratio'])}")
    start = results.get("startup")
    if start:
        ks = start["kernels"]
        out.append(
            f"Start-up (median of {start['reps']}): python3 {ks['python3']['median_s']:.2f} s, "
            f"greed {ks['greed']['median_s']:.2f} s"
        )
    return "\n".join(out)


def _toggled(toggled: dict[str, t.Any], what: str) -> list[str]:
    """The line of one toggle of the trivial suite (``what`` on / off on alternate
    cells of the same greed kernels); none where it did not run."""
    if not toggled.get("added_us_by_code"):
        return []
    handler = toggled.get("handler_added_us_by_code")
    return [
        f"  {what} on alternate cells of the same greed kernels "
        f"({toggled['cells']:,} cells): added "
        + fmt_by_code(toggled["added_us_by_code"], toggled["added_us_interval_by_code"])
        + f" (at most {toggled['added_percent']:+.2f}%)"
        + (
            "; in the execute handler "
            + "; ".join(
                f"{code} {v:+.0f} us wall, {toggled['cpu_added_us_by_code'][code]:+.0f} us CPU"
                for code, v in handler.items()
            )
            if handler
            else ""
        )
    ]
