"""The ``%greed`` line magic: see and steer what the kernel keeps and frees.

Every subcommand shows a table as HTML in JupyterLab and as plain text in a
terminal (one display_data with both), returns nothing (so nothing lands in
``Out``), and answers a bad request with one line, never a traceback.
"""

from __future__ import annotations

import html
import shlex
import sys
import time
import typing as t

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from . import __version__
from .engine import type_name
from .sizes import human_bytes

USAGE = """\
Usage: %greed SUBCOMMAND [ARGS]
  vars                  the variables, largest first: size, device, last use, decision
  why NAME              the rule that keeps (or frees) NAME, and when it was last touched
  preserve NAME...      always keep these names
  unpreserve NAME...    stop keeping them (also exempts them from GreedKernel.preserve)
  cleanup [--full]      run a cleanup now (--full also collects the frozen heap)
  optimize              run a tensor/CUDA optimisation now
  paged                 values whose memory is paged out to disk (in place)
  restore NAME... | --all   read paged-out memory back into RAM now
  stats                 the statistics sent to frontends
  status                version, configuration, counters and the last reports"""


class UsageError(Exception):
    """A one-line message for the user."""


def table(headers: list[str], rows: list[list[t.Any]], title: str = "") -> dict[str, str]:
    """A plain-text and an HTML rendering of the same table."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in cells
    ]
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


def _budget_line(b: dict[str, t.Any]) -> str:
    limit = b.get("limitBytes") or 0
    used = b.get("unreclaimableBytes") or 0
    share = f" ({used / limit:.0%})" if limit else ""
    return (
        f"{human_bytes(used)} of {human_bytes(limit)} not reclaimable{share}; "
        f"{human_bytes(b.get('pagedBytes') or 0)} paged out; "
        + ("held" if b.get("held", True) else "NOT held: see %greed status")
    )


def _ago(seconds: float | None, cell: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        when = f"{seconds:.0f} s ago"
    elif seconds < 5400:
        when = f"{seconds / 60:.0f} min ago"
    else:
        when = f"{seconds / 3600:.1f} h ago"
    return f"{when} (cell {cell})"


@magics_class
class GreedMagics(Magics):
    """``%greed``: the kernel's own magic."""

    def __init__(self, shell: t.Any, engine: t.Any, kernel: t.Any) -> None:
        self._ipython_tb = shell.find_line_magic("tb")
        super().__init__(shell)
        self.engine = engine
        self.kernel = kernel

    @line_magic
    def greed(self, line: str) -> None:
        """See and steer what Greed keeps and frees. `%greed help` lists the subcommands."""
        try:
            args = shlex.split(line)
        except ValueError as e:
            print(f"Greed: cannot parse arguments ({e}). Try %greed help.", file=sys.stderr)
            return
        if not args or args[0] in ("help", "-h", "--help"):
            print(USAGE)
            return
        sub, rest = args[0], args[1:]
        handler = getattr(self, f"_do_{sub}", None)
        if handler is None:
            print(f"Greed: unknown subcommand {sub!r}. Try %greed help.", file=sys.stderr)
            return
        try:
            handler(rest)
        except UsageError as e:
            print(f"Greed: {e}", file=sys.stderr)

    @line_magic
    def tb(self, line: str) -> None:
        """IPython's %tb; after Greed released the stored error (to free its frames),
        the traceback as it was shown."""
        if getattr(sys, "last_traceback", None) is not None or not self._shown_traceback():
            self._ipython_tb(line)
            return
        print("\n".join(self._shown_traceback()))
        print(
            "(Greed released this error's frames to free their memory; "
            "the text above is the traceback as it was shown.)",
            file=sys.stderr,
        )

    def _shown_traceback(self) -> list[str]:
        return self.engine.last_traceback_text

    # -- subcommands ---------------------------------------------------------------------
    def _do_vars(self, args: list[str]) -> None:
        rows = self.engine.variables()
        if not rows:
            print("Greed: no user variables yet.")
            return
        display(
            table(
                ["name", "type", "size", "device", "last touched", "decision"],
                [
                    [
                        r["name"],
                        r["type"],
                        human_bytes(r["size"]),
                        r["device"] or "",
                        _ago(r["lastTouchedAgo"], r["lastTouchedCell"]),
                        r["decision"] + (f" ({r['rule']})" if r["rule"] != r["decision"] else ""),
                    ]
                    for r in rows
                ],
                title=f"Greed: {len(rows)} variables",
            ),
            raw=True,
        )

    def _do_why(self, args: list[str]) -> None:
        if len(args) != 1:
            raise UsageError("usage: %greed why NAME")
        name = args[0]
        if name not in self.shell.user_ns:
            raise UsageError(f"no variable named {name!r}")
        decision, size = self.engine.decide(name)
        access = self.engine.tracker.last.get(name)
        ago = None if access is None else time.monotonic() - access.time
        touched = _ago(ago, None if access is None else access.execution)
        paged = self.engine.paged_bytes_of(name)
        print(
            f"{name}: {decision.reason}. Rule: {decision.rule}. "
            f"Last touched: {touched}. Size: {human_bytes(size.nbytes)}"
            + (f" on {size.device}" if size.device else "")
            + "."
            + (
                f" Paged out: {human_bytes(paged)} of its memory is backed by a file and "
                "read back from disk on use."
                if paged
                else ""
            )
        )

    def _do_preserve(self, args: list[str]) -> None:
        names = self._names(args, "preserve")
        self.engine.preserve(names)
        missing = [n for n in names if n not in self.shell.user_ns]
        msg = f"Greed: preserving {', '.join(names)}."
        if missing:
            msg += f" Not defined yet (kept once defined): {', '.join(missing)}."
        print(msg)

    def _do_unpreserve(self, args: list[str]) -> None:
        names = self._names(args, "unpreserve")
        self.engine.unpreserve(names)
        print(f"Greed: no longer preserving {', '.join(names)} (recent use still keeps them).")

    def _do_cleanup(self, args: list[str]) -> None:
        if args not in ([], ["--full"]):
            raise UsageError("usage: %greed cleanup [--full]")
        report = self.engine.cleanup("manual", full=bool(args))
        if report is None:
            raise UsageError("the cleanup failed; see the kernel log")
        paged = (
            f"paged out {human_bytes(report['pagedBytes'])} of {', '.join(report['paged'])}, "
            if report["paged"]
            else ""
        )
        print(
            f"Greed: cleanup deleted {len(report['deleted']) + len(report['evicted'])} names, "
            f"{paged}released {report['outputsReleased']} outputs"
            + (" and the stored error" if report["errorReleased"] else "")
            + f"; RSS {human_bytes(report['rssBefore'])} -> {human_bytes(report['rssAfter'])} "
            f"in {report['durationMs']:.1f} ms."
        )

    def _do_optimize(self, args: list[str]) -> None:
        if args:
            raise UsageError("usage: %greed optimize")
        report = self.engine.optimize("manual")
        if report is None:
            raise UsageError("the optimisation failed; see the kernel log")
        print(
            f"Greed: optimisation cleared {report['gradsCleared']} stale gradients, "
            f"emptied the CUDA cache on {len(report['cudaEmptied'])} devices "
            f"in {report['durationMs']:.1f} ms."
        )

    def _do_paged(self, args: list[str]) -> None:
        if args:
            raise UsageError("usage: %greed paged")
        paged = self.engine.paged_names()
        if not paged:
            print("Greed: nothing is paged out.")
            return
        ns = self.shell.user_ns
        rows = [
            [name, type_name(ns.get(name)), human_bytes(nbytes)]
            for name, nbytes in sorted(paged.items(), key=lambda kv: -kv[1])
        ]
        display(table(["name", "type", "paged out"], rows, title="Greed: paged out"), raw=True)

    _do_spilled = _do_paged  # the old name of the subcommand

    def _do_restore(self, args: list[str]) -> None:
        paged = self.engine.paged_names()
        if args == ["--all"]:
            names = list(paged)
        else:
            names = self._names(args, "restore")
            unknown = [n for n in names if n not in paged]
            if unknown:
                raise UsageError(f"not paged out: {', '.join(unknown)}")
        if not names:
            print("Greed: nothing is paged out.")
            return
        nbytes = self.engine.page_in(names)
        print(f"Greed: read {human_bytes(nbytes)} of {', '.join(names)} back into RAM.")

    def _do_stats(self, args: list[str]) -> None:
        stats = self.engine.snapshot()
        rows = []
        for key, value in stats.items():
            if key == "memoryBudget":
                key, value = "memory:budget", _budget_line(value)
            elif key == "preservedVariables":
                value = ", ".join(value) or "(none)"
            elif key in ("rssBytes", "memoryLimitBytes"):
                value = f"{human_bytes(value)} ({value})"
            elif key in ("avgExecutionTime", "idleTime"):
                value = f"{value:.1f} ms"
            elif key == "memoryPressure":
                value = f"{value:.1%}"
            elif key == "cuda":
                value = (
                    "; ".join(
                        f"cuda:{d['device']} {human_bytes(d['reserved'])} reserved of "
                        f"{human_bytes(d['total'])}"
                        for d in value
                    )
                    or "(not initialised)"
                )
            rows.append([key, value])
        display(table(["stat", "value"], rows, title="Greed stats"), raw=True)

    def _do_status(self, args: list[str]) -> None:
        e, k = self.engine, self.kernel
        n = e.stats.execution_count
        rows = [["version", __version__], ["executions", n]]
        for label, interval in (("cleanup", k.cleanup_interval), ("optimize", k.optimize_interval)):
            due = f"in {interval - n % interval} executions" if interval else "disabled"
            rows.append([f"next periodic {label}", due])
        rows += [["cleanups", e.stats.cleanup_count], ["optimisations", e.stats.optimize_count]]
        rows.append(["paged out now", human_bytes(e.pager.paged_bytes())])
        rows.append(["paging directory", e.pager.where or "(chosen at the first page-out)"])
        refusal = e.budget_refusal
        if refusal is not None:
            rows.append(
                [
                    "memory budget not held",
                    f"since cell {refusal['executionCount']}: {refusal['pressure']:.0%} of "
                    f"{human_bytes(refusal['limitBytes'])}; largest in RAM: "
                    + ", ".join(
                        f"{h['name']} {human_bytes(h['bytes'])}" for h in refusal["holders"]
                    ),
                ]
            )
        budget_reports = [
            r for r in e.stats.reports if r["kind"] == "cleanup" and r["trigger"] == "memory"
        ][-3:]
        for r in budget_reports:
            rows.append(
                [
                    "budget cleanup",
                    f"cell {r['executionCount']}: pressure {r.get('pressureBefore', 0):.0%} -> "
                    f"{r.get('pressureAfter', 0):.0%}, paged {human_bytes(r.get('pagedBytes', 0))}"
                    f" ({', '.join(r.get('paged') or []) or 'nothing'})",
                ]
            )
        for label, text in (
            ("paging notice", e.pager.notice),
            ("paging paused", e.paging_paused),
            ("last paging failure", e.pager.failure),
        ):
            if text:
                rows.append([label, text])
        for key, value in self.kernel.greed_config().items():
            rows.append([f"GreedKernel.{key}", value])
        for report in list(e.stats.reports)[-5:]:
            rows.append(
                [
                    f"last {report['kind']}",
                    f"cell {report['executionCount']} ({report['trigger']}): "
                    f"{report['durationMs']:.1f} ms, freed {human_bytes(report['freedBytes'])}",
                ]
            )
        display(table(["", "value"], rows, title=f"Greed {__version__} status"), raw=True)

    def _names(self, args: list[str], sub: str) -> list[str]:
        if not args:
            raise UsageError(f"usage: %greed {sub} NAME...")
        bad = [a for a in args if not a.isidentifier()]
        if bad:
            raise UsageError(f"not a variable name: {bad[0]!r}")
        return args
