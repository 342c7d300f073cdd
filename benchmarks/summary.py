"""A run's files and tables: the CSV series, summary.json, the headline as a
text table and as summary.md, and the number formats they share."""

from __future__ import annotations

import csv
import json
import typing as t
from pathlib import Path

from .kernels import MiB


def write_csv(path: Path, rows: list[dict[str, t.Any]]) -> None:
    """*rows* as a CSV file (the first row's keys are the columns); nothing if none."""
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, data: t.Any) -> None:
    """*data* as indented JSON."""
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def fmt_interval(bounds: list[float] | None) -> str:
    """' (95% interval A to B us)', or nothing without one."""
    if not bounds:
        return ""
    return f" (95% interval {bounds[0]:+.0f} to {bounds[1]:+.0f} us)"


def fmt_by_code(added: dict[str, float], intervals: dict[str, t.Any] | None) -> str:
    """'x = 1 +12 us (95% interval ...); x + 1 ...': added microseconds per code."""
    return "; ".join(
        f"{code} {us:+.0f} us{fmt_interval((intervals or {}).get(code))}"
        for code, us in added.items()
    )


def fmt_paired(results: dict[str, t.Any], key: str = "paired_by_code") -> str:
    """'x = 1 +40 us (95% interval ...), +0.9%; x + 1 ...' from a paired_by_code."""
    return "; ".join(
        f"{code} {p['added_us']:+.0f} us{fmt_interval(p['interval_us'])}, "
        f"{p['added_percent']:+.2f}% ({p['pairs']} pair{'' if p['pairs'] == 1 else 's'})"
        for code, p in results[key].items()
        if p
    )


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
        rows.append((c["label"], fmt_yes(ok), "yes", "n/a" if ok is None else _met(ok, "MISSED")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_yes(ok: bool | None) -> str:
    """yes, no, or n/a."""
    return "n/a" if ok is None else ("yes" if ok else "no")


def _met(ok: bool, missed: str) -> str:
    return "met" if ok else missed


def _load(values: list[float] | None) -> str:
    return "n/a" if not values else " / ".join(f"{v:.2f}" for v in values)


def fmt_mib(value: float | None, sign: str = "") -> str:
    """Bytes as whole MiB (*sign* "+" shows the sign), or n/a."""
    return "n/a" if value is None else f"{value / MiB:{sign}.0f}"


def fmt_s(value: float | None) -> str:
    """Seconds, to the millisecond, or n/a."""
    return "n/a" if value is None else f"{value:.3f} s"


def fmt_x(value: float | None) -> str:
    """A ratio to two decimals, or n/a."""
    return "n/a" if value is None else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds to one decimal, or n/a."""
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
        out.append(f"| {c['label']} | {fmt_yes(ok)} | yes | {result} |")
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
