"""How ``%greed`` shows what the service answers: tables with a plain-text and an
HTML rendering, and the one-line texts of stats, reports and budget refusals."""

from __future__ import annotations

import html
import time
import typing as t

from ..memory.sizes import human_bytes

Row = dict[str, t.Any]


def table(headers: list[str], rows: list[list[t.Any]], title: str = "") -> dict[str, str]:
    """A plain-text and an HTML rendering of the same table."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [title] if title else []
    for r in [headers, ["-" * w for w in widths], *cells]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(v)}</td>" for v in r) + "</tr>"
        for r in cells
    )
    caption = (
        f"<caption style='text-align:left'><b>{html.escape(title)}</b></caption>" if title else ""
    )
    return {
        "text/plain": "\n".join(lines),
        "text/html": f"<table class='greed-table'>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>",
    }


def ago(seconds: float | None, cell: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago (cell {cell})"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago (cell {cell})"
    return f"{seconds / 3600:.1f} h ago (cell {cell})"


def stat(key: str, value: t.Any) -> list[t.Any]:
    """One STATS entry as a ``%greed stats`` row."""
    if key == "memoryBudget":
        limit, used = value.get("limitBytes") or 0, value.get("unreclaimableBytes") or 0
        share = f" ({used / limit:.0%})" if limit else ""
        held = "held" if value.get("held", True) else "NOT held: see %greed status"
        return [
            "memory:budget",
            f"{human_bytes(used)} of {human_bytes(limit)} not reclaimable{share}; "
            f"{human_bytes(value.get('pagedBytes') or 0)} paged out; {held}",
        ]
    if key == "preservedVariables":
        value = ", ".join(value) or "(none)"
    elif key in ("rssBytes", "memoryLimitBytes"):
        value = f"{human_bytes(value)} ({value})"
    elif key in ("avgExecutionTime", "idleTime"):
        value = f"{value:.1f} ms"
    elif key == "memoryPressure":
        value = f"{value:.1%}"
    elif key == "cuda":
        devices = (
            f"cuda:{d['device']} {human_bytes(d['reserved'])} reserved of {human_bytes(d['total'])}"
            for d in value
        )
        value = "; ".join(devices) or "(not initialised)"
    return [key, value]


def due(executions: int | None) -> str:
    return "disabled" if executions is None else f"in {executions} executions"


def refusal(refusal: dict[str, t.Any]) -> str:
    holders = ", ".join(f"{h['name']} {human_bytes(h['bytes'])}" for h in refusal["holders"])
    why = refusal.get("paused") or f"largest in RAM: {holders}"
    return (
        f"since cell {refusal['executionCount']}: {refusal['pressure']:.0%} of "
        f"{human_bytes(refusal['limitBytes'])}; {why}"
    )


def budget_cleanup(r: Row) -> str:
    return (
        f"cell {r['executionCount']}: pressure {r.get('pressureBefore', 0):.0%} -> "
        f"{r.get('pressureAfter', 0):.0%}, paged {human_bytes(r.get('pagedBytes', 0))}"
        f" ({', '.join(r.get('paged') or []) or 'nothing'})"
    )


def report(r: Row) -> str:
    return (
        f"cell {r['executionCount']} ({r['trigger']}): "
        f"{r['durationMs']:.1f} ms, freed {human_bytes(r['freedBytes'])}"
    )


def guard(status: Row) -> str:
    """The memory guard's row of ``%greed status``."""
    if not status["guardThreshold"]:
        return "off (GreedKernel.guard_threshold = 0)"
    stops = status["guardStops"]
    stopped = f"; stopped {stops} cell{'s' if stops != 1 else ''}" if stops else ""
    return (
        f"stops a cell at {human_bytes(status['guardThresholdBytes'])} "
        f"({status['guardThreshold']:.0%} of the limit){stopped}"
    )


#: the status() texts shown when set, with their labels
NOTES = {
    "pagingNotice": "paging notice",
    "pagingPaused": "paging paused",
    "pagingFailure": "last paging failure",
}


# -- checkpoints ---------------------------------------------------------------------------
def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def checkpoint_line(s: dict[str, t.Any]) -> str:
    """``%greed checkpoint``'s answer."""
    text = (
        f"Greed: checkpoint {s['id']} holds cell {s['cell']}: {s['names']} names, "
        f"{human_bytes(s['bytes'])}."
    )
    if s["unstorable"]:
        text += f" Not stored (cannot be pickled): {', '.join(s['unstorable'])}."
    if s["leftOut"]:
        text += f" Left out (checkpoint_max_bytes): {', '.join(s['leftOut'])}."
    return text


def checkpoint_row(s: dict[str, t.Any]) -> list[t.Any]:
    missing = [*s["unstorable"], *(f"{n} (too big)" for n in s["leftOut"])]
    return [s["id"], _clock(s["time"]), s["cell"], human_bytes(s["bytes"]), ", ".join(missing)]


def resumed(done: dict[str, t.Any], replay: bool) -> str:
    """``%greed resume``'s answer."""
    c = done["checkpoint"]
    lines = [
        f"Greed: resumed checkpoint {c['id']} (cell {c['cell']}, {_clock(c['time'])}): "
        f"{len(done['bound'])} names bound in {done['seconds']:.2f} s."
    ]
    if done["failed"]:
        lines.append(
            "Not restored: "
            + "; ".join(f"{n} ({why})" for n, why in sorted(done["failed"].items()))
        )
    for u in done["unstorable"]:
        cell = f", last written by cell {u['cell']}" if u.get("cell") else ""
        lines.append(f"Not stored: {u['name']} ({u['reason']}{cell})")
    if done["unstorable"] and not replay:
        lines.append("%greed resume --replay re-runs those cells (they may have side effects).")
    lines += [f"Left out: {u['name']} (over checkpoint_max_bytes)" for u in done["leftOut"]]
    lines += [f"Note: {note}" for note in done["notes"]]
    return "\n".join(lines)


def checkpoint_status(status: dict[str, t.Any]) -> str:
    """The ``checkpoint`` row of ``%greed status``."""
    text = str(status["checkpoint"])
    latest = status["checkpointLatest"]
    if latest is not None:
        text += f"; latest {latest['id']}: cell {latest['cell']}, {human_bytes(latest['bytes'])}"
        text += f", {_clock(latest['time'])}"
    if status["checkpointProblem"]:
        text += f"; failing, retried with backoff: {status['checkpointProblem']}"
    return text
