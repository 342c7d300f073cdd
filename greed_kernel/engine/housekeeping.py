"""Housekeeping: the work the triggers ask for, and the reports that say what it did.

- :meth:`Housekeeping.cleanup`: temporaries, old outputs, the stored error, stale
  values (paged out in place by default), then garbage collection and malloc_trim;
- :meth:`Housekeeping.optimize`: stale gradients, garbage collection, the CUDA cache;
- :meth:`Housekeeping.collect`: which collection: the whole heap where the kernel is
  idle, memory is short or the user asked, or where the last one was short; else the
  young generations, and the whole heap is owed to the next quiet moment
  (:meth:`Housekeeping.collect_full`, which the triggers run);
- :meth:`Housekeeping.recover_from_oom`: both at once after an out-of-memory error,
  with one line under the cell saying what was reclaimed;
- :meth:`Housekeeping.refuse`: the line and event when the memory budget cannot be held.

Each report is recorded in :class:`~greed_kernel.engine.stats.Stats` and published as an
event (``execution:cleanup``, ``execution:optimize``, ``memory:oom``, ``memory:pressure``).
"""

from __future__ import annotations

import gc
import math
import sys
import time
import typing as t
from collections.abc import Callable, Iterator

from ..memory import torchstate
from ..memory.probe import malloc_trim
from ..memory.sizes import human_bytes, measure
from . import budget, cleaner
from .component import Component, guarded
from .context import Context
from .policy import Policy, Verdict, is_history_name
from .slices import Slices, Stopwatch
from .stats import capped, json_clean

#: ``publish(method, params)``: an event to every open comm.
Publish = t.Callable[[str, dict[str, t.Any]], None]

if t.TYPE_CHECKING:
    from .views import Views
#: Rules whose names are shown as "preserved" (the user's own choices and recent use).
PRESERVED_RULES = frozenset({"marked", "preserved", "recent"})
#: internal_rule() values of names that count as the user's (listed modules do).
USER_RULES = (None, "module")
#: Triggers whose collection walks the whole heap, however long it takes: the kernel is
#: idle, memory is short, or the user asked (and waits for it).
FULL_TRIGGERS = frozenset({"idle", "memory", "oom", "manual"})
#: Any other cleanup or optimisation walks the whole heap only while the last full
#: collection took less than this (seconds): a cell sent meanwhile waits for it.
FULL_COLLECTION_PAUSE = 0.010


class Housekeeping(Component):
    """Runs cleanups and optimisations on the user's shell; records and publishes them."""

    def __init__(
        self, context: Context, views: Views, slices: Slices | None = None, **kwargs: t.Any
    ) -> None:
        super().__init__(**kwargs)
        #: runs the periodic cleanup in slices (without one: whole, at once)
        self.slices = slices or Slices(None, lambda: False, lambda: 0, self.log, on_cell="wait")
        self.shell = context.shell
        self.tracker = context.tracker
        self.store = context.store
        self.probe = context.probe
        self.stats = context.stats
        self.policy = context.policy
        self.hooks = context.hooks  # a cleanup reads the stamps: it scans what ran first
        self.events = context.events
        self.snapshot = views.snapshot
        self._modules_seen = 0
        self._freeze_owed = False  # a heap freeze waits for the cell to end
        #: seconds the last full collection took (unknown: infinite)
        self.full_collection_s = math.inf
        #: a young collection ran where a full one was due: the next quiet moment runs it
        self.full_owed = False
        self.full_collections = 0  # in this process, by collect_full
        #: lines for the user, said under the next cell (the work ran after a reply)
        self.notices: list[str] = []

    # -- cleanup -----------------------------------------------------------------------
    @guarded
    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        """Temporaries, old outputs, the stored error, stale values; then gc and trim,
        whole, now. A cleanup in slices still running is finished first.

        *full* also collects the frozen heap (``%greed cleanup --full``).
        """
        self.slices.finish()
        steps = self._cleanup(trigger, full)
        while True:
            try:
                next(steps)
            except StopIteration as end:
                return t.cast("dict[str, t.Any]", end.value)

    @guarded
    def cleanup_in_slices(self, trigger: str) -> None:
        """The same cleanup, on the event loop a slice at a time (the periodic one): a
        cell sent meanwhile waits for one page-out of at most REGION_BYTES, not for
        all of them. A cell that runs in between may touch a stale name: it is then
        left in memory. The report goes out when the last slice ends."""
        self.slices.start(self._cleanup(trigger, False, sliced=True))

    def _cleanup(self, trigger: str, full: bool, sliced: bool = False) -> Iterator[bool | None]:
        watch, execution = Stopwatch(), self.stats.execution_count
        self.hooks.stamp()
        rss_before, cuda_before = self.probe.rss(), torchstate.cuda_reserved()
        now = self.clock()
        policy, s = self.policy(), self.options
        last = self.tracker.last
        temporaries, stale, preserved = self._sort_names(policy, now, s.evict != "off")
        deleted = cleaner.delete_names(self.shell, temporaries)
        released = cleaner.release_outputs(
            self.shell,
            s.output_cache_keep,
            is_recent=lambda k: policy.is_recent(last.get(f"_{k}"), now),
        )
        error_released = cleaner.release_last_error(self.shell)
        paged: list[str] = []
        paged_bytes = 0
        evicted: list[str] = []
        budget_fields: dict[str, t.Any] = {}
        if s.evict == "delete":
            evicted = cleaner.delete_names(self.shell, stale)
        elif s.evict == "page":
            try:
                untouched = self._untouched(stale) if sliced else None
                if sliced and stale:  # each page-out (up to 16 MiB) gets a slice of its own
                    yield from watch.paused(alone=True)
                for names, nbytes in self.store.page_stale(stale, last, untouched):
                    paged.extend(n for n in names if n not in paged)
                    paged_bytes += nbytes
                    if sliced:
                        yield from watch.paused(alone=True)
                if trigger == "memory":
                    budget_fields = self.store.hold_budget(
                        paged, policy, last, self.hooks.number, self.probe.pressure
                    )
                    paged_bytes += budget_fields.pop("pagedBytes")
            except Exception:  # the rest of the cleanup still runs
                self.log.exception("greed: paging failed; stale values stay in memory")
        if full:
            gc.unfreeze()  # after the error's release, so its frames are collected too
        generation, collected = self.collect(trigger)
        if sliced:
            yield from watch.paused(alone=True)  # the trim can take 10 ms on a big heap
        trimmed = malloc_trim()
        self.tracker.forget_missing()
        report = self._report(
            "cleanup",
            trigger,
            watch.seconds(),
            rss_before,
            cuda_before,
            execution=execution,
            deleted=deleted,
            evicted=evicted,
            outputsReleased=len(released),
            errorReleased=error_released,
            paged=paged,
            pagedBytes=paged_bytes,
            gcCollected=collected,
            gcGeneration=generation,
            mallocTrim=trimmed,
            preserved=preserved,
            **budget_fields,
        )
        self.log.info(
            "greed: cleanup (%s) deleted %d, released %d outputs%s in %.1f ms",
            trigger,
            len(deleted) + len(evicted),
            len(released),
            ", the stored error" if error_released else "",
            report["durationMs"],
        )
        return report

    def _untouched(self, names: list[str]) -> Callable[[str], bool]:
        """For a cleanup in slices: whether a stale name is still as it was judged (no
        cell since touched it). Stamps what ran since first, and keeps no value alive."""
        last, stamps = self.tracker.last, {n: self.tracker.last.get(n) for n in names}
        seen = [self.stats.execution_count]

        def untouched(name: str) -> bool:
            if self.stats.execution_count != seen[0]:
                seen[0] = self.stats.execution_count
                self.hooks.stamp()
            return last.get(name) == stamps[name]

        return untouched

    def _sort_names(
        self, policy: Policy, now: float, evicting: bool
    ) -> tuple[list[str], list[str], list[str]]:
        """Temporaries, stale names and preserved names of the namespace."""
        last = self.tracker.last
        temporaries: list[str] = []
        stale: list[str] = []
        preserved: list[str] = []
        for name, value in list(self.shell.user_ns.items()):
            if is_history_name(name):  # kept by rule 3, never listed: skip them cheaply
                continue
            size = _sizer(value, policy.evict_min_bytes) if evicting else None
            verdict, rule, _ = policy.classify(name, value, last.get(name), now, size)
            if verdict is Verdict.CLEAN:
                temporaries.append(name)
            elif verdict is Verdict.STALE:
                stale.append(name)
            elif rule in PRESERVED_RULES and policy.internal_rule(name, value) in USER_RULES:
                preserved.append(name)
        return temporaries, stale, preserved

    # -- optimisation ------------------------------------------------------------------
    @guarded
    def optimize(self, trigger: str, collect: bool = True) -> dict[str, t.Any] | None:
        """Stale gradients, a full collection, the CUDA cache.

        *collect* False: a cleanup has just run its own full collection (they were
        due together); one collection is enough, and costs a whole heap walk.
        """
        start = time.perf_counter()
        rss_before, cuda_before = self.probe.rss(), torchstate.cuda_reserved()
        grads = torchstate.clear_stale_grads(list(self.shell.user_ns.values()))
        generation, collected = self.collect(trigger) if collect else (None, 0)
        devices = torchstate.empty_cuda_cache()
        return self._report(
            "optimize",
            trigger,
            time.perf_counter() - start,
            rss_before,
            cuda_before,
            gradsCleared=grads,
            gcCollected=collected,
            gcGeneration=generation,
            cudaEmptied=devices,
        )

    def collect(self, trigger: str) -> tuple[int, int]:
        """The cleanup's garbage collection: (generation, objects collected). The whole
        heap for FULL_TRIGGERS and while a full collection takes less than
        FULL_COLLECTION_PAUSE; else generations 0 and 1 (objects made since the last
        few collections: microseconds), and the whole heap is owed (``full_owed``)."""
        if trigger in FULL_TRIGGERS or self.full_collection_s < FULL_COLLECTION_PAUSE:
            return 2, self.collect_full()
        self.full_owed = True
        return 1, gc.collect(1)

    def collect_full(self) -> int:
        """A collection of the whole heap, timed; then the heap freeze (gc_freeze)."""
        start = time.perf_counter()
        collected = gc.collect(2)
        self.full_collection_s = time.perf_counter() - start
        self.full_owed = False
        self.full_collections += 1
        self.freeze_heap()
        return collected

    def freeze_heap(self) -> None:
        """With GreedKernel.gc_freeze (off by default): move the objects that survived
        a full collection to the permanent generation, so the next collection only
        looks at newer ones.

        Called after a full collection and after a cell that imported modules. Never
        while a cell runs (then after it), an error is stored or a full collection is
        owed (then after that collection). Frozen objects are still freed by reference
        counting, but cycles among them are then invisible to every collection, the
        user's own ``gc.collect()`` included, until ``%greed cleanup --full``: that is
        why it is off by default.
        """
        # Frozen while it runs, a cell's ExecutionResult would hold its error and frames
        # in a frozen cycle. A stored error's frames become garbage once released, and
        # old garbage waits for the full collection owed.
        if not self.options.gc_freeze:
            return
        if self.hooks.running:
            self._freeze_owed = True
        elif not self.full_owed and not cleaner.error_stored(self.shell):
            gc.freeze()
            self._freeze_owed = False
            self._modules_seen = len(sys.modules)

    def imports_to_freeze(self) -> bool:
        """gc_freeze is on and the heap is to be frozen: the last cell imported modules
        (they live for good), or a freeze waited for the cell to end."""
        return self.options.gc_freeze and (
            self._freeze_owed or len(sys.modules) != self._modules_seen
        )

    def _report(
        self,
        kind: str,
        trigger: str,
        seconds: float,
        rss_before: int,
        cuda_before: list[dict[str, int]],
        execution: int | None = None,
        **fields: t.Any,
    ) -> dict[str, t.Any]:
        """The report, recorded and published; *execution*: the cells that had ended
        when the work began (a cleanup in slices ends later)."""
        rss_after = self.probe.rss()
        report: dict[str, t.Any] = {
            "kind": kind,
            "trigger": trigger,
            "executionCount": self.stats.execution_count if execution is None else execution,
            "time": time.time(),
            "durationMs": seconds * 1000.0,
            "rssBefore": rss_before,
            "rssAfter": rss_after,
            "freedBytes": max(0, rss_before - rss_after),
            "cudaBefore": cuda_before,
            "cudaAfter": torchstate.cuda_reserved(),
        }
        for key, value in fields.items():
            if isinstance(value, list) and value and isinstance(value[0], str):
                report[key], report[key + "Omitted"] = capped(value)
            else:
                report[key] = value
        report = json_clean(report)
        self.stats.record_report(report)
        self.emit(f"execution:{kind}", {"stats": self.snapshot(), "report": report})
        return report

    # -- out of memory -----------------------------------------------------------------
    @guarded
    def recover_from_oom(self, headline: str | None = None) -> dict[str, t.Any] | None:
        """The emergency cleanup after an out-of-memory error, and one line saying what
        it reclaimed (measured), or, after the guard stopped the cell, the *headline*
        saying so. The error's frames go first: they pin the tensors."""
        rss_before, cuda_before = self.probe.rss(), torchstate.cuda_reserved()
        self.cleanup("oom")
        self.optimize("oom", collect=False)
        malloc_trim()
        rss_after, cuda_after = self.probe.rss(), torchstate.cuda_reserved()
        after = {d["device"]: d["reserved"] for d in cuda_after}
        gpu = [
            (d["device"], d["reserved"] - after.get(d["device"], 0))
            for d in cuda_before
            if d["reserved"] > after.get(d["device"], 0)
        ]
        ram = max(0, rss_before - rss_after)
        parts = [f"{human_bytes(freed)} on cuda:{dev}" for dev, freed in gpu]
        parts.append(f"{human_bytes(ram)} of RAM")
        intact = (
            "your variables are intact"
            if self.options.evict != "delete"
            else "stale variables were deleted (GreedKernel.evict = 'delete')"
        )
        line = f"Greed: reclaimed {' and '.join(parts)}; {intact}. Try again with a smaller batch."
        print(line if headline is None else f"{headline}; {intact}.", file=sys.stderr)
        report = json_clean(
            {
                "kind": "oom",
                "executionCount": self.stats.execution_count,
                "rssBefore": rss_before,
                "rssAfter": rss_after,
                "ramFreedBytes": ram,
                "cudaBefore": cuda_before,
                "cudaAfter": cuda_after,
                "cudaFreed": [{"device": d, "bytes": b} for d, b in gpu],
            }
        )
        self.emit("memory:oom", {"stats": self.snapshot(), "report": report})
        return report

    # -- the budget --------------------------------------------------------------------
    def refuse(self, pressure: float) -> None:
        """The budget cannot be held: what holds the memory, once per episode (the line
        under the next cell, and a memory:pressure event with the holders now)."""
        first = self.stats.budget_refusal is None
        rows = budget.holders(self.shell.user_ns, self.policy(), self.store.bytes_of)
        limit = self.probe.effective_limit()
        self.stats.budget_refusal = {
            "executionCount": self.stats.execution_count,
            "pressure": pressure,
            "limitBytes": limit,
            "holders": rows,
            "paused": self.store.paused,
        }
        self.log.warning("greed: memory budget not held at %.2f: %s", pressure, rows)
        if first:
            self.notices.append(budget.refusal_line(pressure, limit, rows, self.store.paused))
            self.events.trigger("notice")
            self.emit("memory:pressure", {"holders": json_clean(rows), "stats": self.snapshot()})

    def emit(self, method: str, params: dict[str, t.Any]) -> None:
        try:
            self.events.trigger("publish", method, params)
        except Exception:
            self.log.exception("greed: publishing %s failed", method)


def _sizer(value: t.Any, enough: int) -> Callable[[], int]:
    """The size as far as the verdict needs it: a big container's walk stops at
    *enough* (the cleanup's cost stays independent of what the values hold)."""
    return lambda: measure(value, enough=enough).nbytes
