"""Greed's own figures, read through its public ``greed`` comm.

The suites never reach into the kernel's objects: what greed reports about itself
(its counters, its last reports, a cleanup's or an optimisation's report) comes from
the comm's JSON-RPC methods (``greed_kernel/frontends/protocol.schema.json``),
through :class:`~greed_kernel.frontends.client.GreedClient` on the benchmark's own
kernel client. The client reads IOPub only while it waits for an answer, between
cells; :meth:`~benchmarks.harness.Kernel.run` reads only the messages of its own
request, so the two share the kernel client. Every method name of the comm that the
benchmarks use is in this module.
"""

from __future__ import annotations

import typing as t

from .harness import Kernel
from .kernels import median

#: The counters of the comm's stats kept in the results.
SNAPSHOT_KEYS = (
    "executionCount",
    "cleanupCount",
    "optimizeCount",
    "pagedBytes",
    "pagingNotice",
    "rssBytes",
)
#: The fields of each report kept in the results.
REPORT_KEYS = (
    "kind",
    "trigger",
    "executionCount",
    "durationMs",
    "freedBytes",
    "gcCollected",
    "pagedBytes",
    "pressureBefore",
    "pressureAfter",
    "outputsReleased",
    "gradsCleared",
)


class Comm:
    """A ``greed`` comm opened on *kernel*'s client; close it (or use ``with``)."""

    def __init__(self, kernel: Kernel, timeout: float = 120.0) -> None:
        from greed_kernel.frontends.client import GreedClient

        self.client = GreedClient(kernel.kc, timeout=timeout)

    def stats(self) -> dict[str, t.Any]:
        """The kernel's stats now (the comm's ``stats``)."""
        return self.client.stats()

    def history(self) -> list[dict[str, t.Any]]:
        """The last reports, oldest first (the comm's ``history``; at most 20)."""
        return self.client.history()

    def run(self, op: str) -> dict[str, t.Any]:
        """Run a cleanup or an optimisation now (trigger ``manual``); its report."""
        if op == "cleanup":
            return self.client.cleanup()
        if op == "optimize":
            return self.client.optimize()
        raise ValueError(f"not an operation of the comm: {op!r}")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Comm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def greed_stats(kernel: Kernel) -> dict[str, t.Any]:
    """Greed's own counters, and its last reports (at most 20, the kernel keeps no more).

    ``pagedBytes`` is what is paged out now (mapped from greed's files); ``pagedNames``
    the names paged now. The comm does not say how many bytes were ever paged out, so
    that figure is not reported.
    """
    try:
        with Comm(kernel) as comm:
            snap, reports = comm.stats(), comm.history()
    except Exception as e:
        return {"failed": str(e)}
    reports = [{k: r.get(k) for k in REPORT_KEYS} for r in reports]
    out: dict[str, t.Any] = {key: snap.get(key) for key in SNAPSHOT_KEYS}
    out["pagedNames"] = len(snap.get("paged") or []) + (snap.get("pagedOmitted") or 0)
    # whether a paging directory was chosen (the path itself is this machine's business)
    out["pagingDirectorySet"] = bool(snap.get("pagingDirectory"))
    for kind in ("cleanup", "optimize"):
        ms = [r["durationMs"] for r in reports if r["kind"] == kind and r["trigger"] == "periodic"]
        out[f"{kind}_reports_seen"] = len(ms)
        out[f"{kind}_median_ms"] = median(ms)
        out[f"{kind}_max_ms"] = max(ms) if ms else None
    memory = [r for r in reports if r["kind"] == "cleanup" and r["trigger"] == "memory"]
    out["memory_cleanups_seen"] = len(memory)
    out["memory_cleanup_median_ms"] = median([r["durationMs"] for r in memory])
    out["reports"] = reports
    return out


def budget_cleanup(comm: Comm) -> dict[str, t.Any]:
    """The last cell's budget cleanup, if greed ran one after it: its trigger, the
    pressure before and after, the bytes paged out and its duration ({} if none)."""
    try:
        execution = comm.stats().get("executionCount")
        cleanups = [r for r in comm.history() if r.get("kind") == "cleanup"]
    except Exception:
        return {}
    last = cleanups[-1] if cleanups else {}
    if last.get("trigger") != "memory" or last.get("executionCount") != execution:
        return {}
    return {
        "trigger": "memory",
        "pressure_before": last.get("pressureBefore"),
        "pressure_after": last.get("pressureAfter"),
        "paged_bytes": last.get("pagedBytes"),
        "cleanup_ms": last.get("durationMs"),
    }
