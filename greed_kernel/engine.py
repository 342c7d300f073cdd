"""The engine: cell events -> tracker -> policy -> cleaner/optimiser -> stats -> publish.

The kernel feeds it the shell's events; it decides when a cleanup or an
optimisation runs, runs it, records the report and hands events to the
publisher (the comm channel). Every entry point is guarded: a failure in here
is logged and swallowed, and never changes the outcome of the user's cell.
"""

from __future__ import annotations

import ast
import bisect
import functools
import gc
import logging
import sys
import time
import typing as t
from collections.abc import Callable

from . import budget, cleaner, optimizer
from .memory import MemoryProbe, malloc_trim
from .paging import Pager
from .policy import Decision, Policy, Verdict
from .scan import CellNames, merge, scan_tokens, scan_tree
from .sizes import Size, cpu_buffers, human_bytes, measure
from .stats import Stats, capped, json_clean
from .threads import foreign_threads
from .tracker import Tracker

Publish = Callable[[dict[str, t.Any]], None]
Schedule = Callable[[float, Callable[[], None]], t.Any]

#: Rules whose names are shown as "preserved" (the user's own choices and recent use).
PRESERVED_RULES = frozenset({"marked", "preserved", "recent"})
#: internal_rule() values of names that count as the user's (listed modules do).
_USER = (None, "module")


def guarded(fn: Callable[..., t.Any]) -> Callable[..., t.Any]:
    """Log and swallow any failure (KeyboardInterrupt included) of an engine hook.

    Hooks that run before the user's code (pre_run_cell, on_tree) let a
    KeyboardInterrupt through instead: the user asked to stop the cell, and
    python3 would stop it at that point too.
    """

    @functools.wraps(fn)
    def wrapper(self: Engine, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return fn(self, *args, **kwargs)
        except KeyboardInterrupt:
            if fn.__name__ == "pre_run_cell":
                # IPython's event manager would print and swallow it: the tree hook
                # stops the cell instead, before any of its code runs
                self._interrupted = True
                return None
            if fn.__name__ == "on_tree":
                raise
            self.log.exception("greed: %s interrupted; the user's cell is unaffected", fn.__name__)
            return None
        except Exception:
            self.log.exception("greed: %s failed; the user's cell is unaffected", fn.__name__)
            return None

    return wrapper


class Config(t.Protocol):
    """The settings the engine reads (GreedKernel's traits)."""

    preserve: list[str]
    recent_window: float
    temporary_patterns: list[str]
    evict_min_bytes: int
    cleanup_interval: int
    optimize_interval: int
    memory_threshold: float
    memory_low_watermark: float
    memory_limit: int
    pressure_cooldown: int
    idle_timeout: float
    output_cache_keep: int
    evict: str
    gc_freeze: bool
    oom_recovery: bool
    spill_max_bytes: int

    spill_dir: str


class Engine:
    """Tracks cells, triggers and runs cleanups and optimisations, keeps the stats."""

    def __init__(
        self,
        shell: t.Any,
        config: Config,
        *,
        publish: Publish | None = None,
        schedule: Schedule | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.shell = shell
        self.config = config
        self.log = log or logging.getLogger(__name__)
        self.publish: Publish = publish or (lambda event: None)
        self.schedule = schedule
        self.pager = Pager(config.spill_dir, config.spill_max_bytes, log=self.log)
        #: name -> (id of its value, bytes paged) as of the cleanup that paged it
        self.paged: dict[str, tuple[int, int]] = {}
        self.paging_paused = ""  # why the last cleanup did not page, when it could not
        self.tracker = Tracker(shell.user_ns)
        self.probe = MemoryProbe(limit=config.memory_limit)
        self.stats = Stats()
        self.marked: set[str] = set()
        self.unmarked: set[str] = set()
        # the user cell in progress: its ExecutionInfo, start time and scanned names
        self._cell_info: t.Any = None
        self._cell_start = 0.0
        self._cell_number = 0
        self._cell_names: CellNames | None = None
        self._token_fallback = False
        self._ran_user_cell = False
        self._oom = False
        self._modules_seen = 0
        self.last_traceback_text: list[str] = []
        self.executing = False
        self._idle_timer: t.Any = None
        self._idle_done = False
        self._pressure_at: tuple[int, float] | None = None  # (execution, pressure) of last trigger
        #: The budget episode in progress (pressure above memory_threshold) that could not
        #: be held, as %greed status shows it; None once pressure is back below the watermark.
        self.budget_refusal: dict[str, t.Any] | None = None
        self._interrupted = False  # a KeyboardInterrupt reached pre_run_cell
        self._after_cell: list[Callable[[], None]] = []  # requests that waited for the cell

    # -- wiring ----------------------------------------------------------------------
    def register(self) -> None:
        """Connect to the shell's cell events and to the trees it compiles."""
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        # We see each tree IPython compiles by wrapping transform_ast rather than joining
        # shell.ast_transformers: any registered transformer makes IPython run
        # ast.fix_missing_locations over every cell, which alone costs more than our
        # scan (measured ~60 us for a 5-line cell, ~5 ms for 500 lines).
        ipython_transform = self.shell.transform_ast

        def transform_ast(node: ast.AST) -> ast.AST:
            node = ipython_transform(node)
            self.on_tree(node)  # guarded: never raises
            return node

        self.shell.transform_ast = transform_ast

    def policy(self) -> Policy:
        c = self.config
        return Policy(
            preserve=c.preserve,
            temporary_patterns=c.temporary_patterns,
            recent_window=c.recent_window,
            evict_min_bytes=c.evict_min_bytes,
            marked=self.marked,
            unmarked=self.unmarked,
            hidden=self.shell.user_ns_hidden,
        )

    # -- cell events (the hot path) --------------------------------------------------
    @guarded
    def pre_run_cell(self, info: t.Any) -> None:
        if self._cell_info is not None:
            return  # a nested run_cell (%%capture, %run -i ...): part of the outer cell
        if getattr(info, "silent", False) or not getattr(info, "store_history", False):
            return  # variable inspectors and the like: not an execution, touches nothing
        self._cell_info = info
        # IPython has already counted this cell: its number is one less
        self._cell_number = self.shell.execution_count - 1
        self._cell_start = time.perf_counter()
        self._cell_names = None

    @guarded
    def on_tree(self, tree: ast.AST) -> None:
        """Called with every tree IPython compiles during a user cell (nested ones too)."""
        if self._interrupted:  # it reached pre_run_cell: stop the cell here
            self._interrupted = False
            raise KeyboardInterrupt
        if self._cell_info is None:
            return
        names = scan_tree(tree)
        if not names.parsed:  # too deep for the scanner: post_run_cell reads the tokens
            self._token_fallback = True
            return
        self._cell_names = names if self._cell_names is None else merge(self._cell_names, names)
        # stamp now, before the cell runs: what it touches is in use
        self.tracker.touch(names.touched, self._cell_number)

    @guarded
    def post_run_cell(self, result: t.Any) -> None:
        info = self._cell_info
        if info is None or getattr(result, "info", None) is not info:
            return
        self._cell_info = None
        if self._cell_names is None or self._token_fallback:
            # it never compiled (SyntaxError, deep nesting, ...): every token counts
            names = scan_tokens(info.raw_cell or "")
            self.log.debug("greed: cell did not parse; %d names from its tokens", len(names.reads))
            self.tracker.touch(names.touched, self._cell_number)
        self._cell_names = None
        self._token_fallback = False
        self.stats.record_execution(time.perf_counter() - self._cell_start)
        error = getattr(result, "error_in_exec", None)
        if error is not None:
            # the text as shown (ipykernel keeps it only until the next cell), for %tb
            # once a cleanup has released the error itself
            self.last_traceback_text = list(getattr(self.shell, "_last_traceback", None) or [])
        # Recovery waits for after_execute: the reply must still report this error.
        self._oom = is_out_of_memory(error)
        self._ran_user_cell = True

    @guarded
    def after_execute(self) -> None:
        """After an execute request's reply is built: the triggers."""
        if not self._ran_user_cell:
            self._run_waiting()
            return
        self._ran_user_cell = False
        c = self.config
        n = self.stats.execution_count
        self._idle_done = False
        if self._oom:
            self._oom = False
            if c.oom_recovery:
                self.recover_from_oom()
        if c.gc_freeze and len(sys.modules) != self._modules_seen:
            self.freeze_heap()  # the cell imported modules: they live as long as the kernel
        cleaned = bool(c.cleanup_interval and n % c.cleanup_interval == 0)
        if cleaned:
            self.cleanup("periodic")
        if c.optimize_interval and n % c.optimize_interval == 0:
            self.optimize("periodic", collect=not cleaned)
        self.check_pressure()
        self.arm_idle_timer()
        self._run_waiting()

    def when_no_cell(self, fn: Callable[[], None]) -> None:
        """Run *fn* now, or after the cell that is running (or awaiting) ends.

        Comm requests come through the event loop, which also runs while an async
        cell awaits: a cleanup must never run in the middle of the user's cell.
        """
        if self.executing or self._cell_info is not None:
            self._after_cell.append(fn)
        else:
            fn()

    def _run_waiting(self) -> None:
        waiting, self._after_cell = self._after_cell, []
        for fn in waiting:
            try:
                fn()
            except Exception:
                self.log.exception("greed: a request that waited for the cell failed")

    # -- triggers ----------------------------------------------------------------------
    def check_pressure(self) -> None:
        """The memory budget, after every cell: above memory_threshold, a cleanup that
        pages out stale values, then the least recently used ones, down to
        memory_low_watermark; if that cannot be done, say so once per episode."""
        c = self.config
        self.probe.limit = c.memory_limit
        pressure = self.probe.pressure()
        self.stats.memory_pressure = pressure
        if pressure <= self._low_watermark():
            self.budget_refusal = None  # the episode is over
        if not c.memory_threshold or pressure <= c.memory_threshold:
            return
        n = self.stats.execution_count
        last = self._pressure_at
        if (
            self.budget_refusal is not None
            and last is not None
            and n - last[0] < c.pressure_cooldown
            and pressure <= last[1] + 0.01
        ):
            return  # nothing could be paged last time, and nothing grew since
        self._pressure_at = (n, pressure)
        self.log.info("greed: memory pressure %.2f above %.2f", pressure, c.memory_threshold)
        self.emit({"event": "memory:pressure", "stats": self.snapshot()})
        self.cleanup("memory")
        self.optimize("memory", collect=False)
        pressure = self.probe.pressure()
        self.stats.memory_pressure = pressure
        if pressure > c.memory_threshold:
            self._refuse(pressure)

    def _low_watermark(self) -> float:
        c = self.config
        return min(c.memory_low_watermark, c.memory_threshold or 1.0)

    def _refuse(self, pressure: float) -> None:
        """The budget cannot be held: what holds the memory, once per episode."""
        first = self.budget_refusal is None
        rows = budget.holders(self.shell.user_ns, self.policy(), self._paged_bytes_of_value)
        limit = self.probe.effective_limit()
        self.budget_refusal = {
            "executionCount": self.stats.execution_count,
            "pressure": pressure,
            "limitBytes": limit,
            "holders": rows,
        }
        self.log.warning("greed: memory budget not held at %.2f: %s", pressure, rows)
        if first:
            print(budget.refusal_line(pressure, limit, rows), file=sys.stderr)
            self.emit(
                {
                    "event": "memory:pressure",
                    "holders": json_clean(rows),
                    "stats": self.snapshot(),
                }
            )

    def arm_idle_timer(self) -> None:
        timeout = self.config.idle_timeout
        if timeout and self.schedule is not None and self._idle_timer is None:
            self._idle_timer = self.schedule(timeout, self.on_idle)

    @guarded
    def on_idle(self) -> None:
        self._idle_timer = None
        timeout = self.config.idle_timeout
        if not timeout or self._idle_done:
            return
        idle = time.monotonic() - self.stats.last_end
        if self.executing or self._cell_info is not None or idle < timeout:
            # a cell is running (or awaiting), or one ran since: wait for the rest
            self._idle_timer = self.schedule(max(timeout - idle, 0.05), self.on_idle)
            return
        self._idle_done = True
        self.cleanup("idle")
        self.optimize("idle", collect=False)
        self.check_pressure()

    # -- the work ----------------------------------------------------------------------
    @guarded
    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        """Temporaries, old outputs, the stored error, stale values; then gc and trim.

        *full* also collects the frozen heap (``%greed cleanup --full``).
        """
        start = time.perf_counter()
        rss_before, cuda_before = self.probe.rss(), optimizer.cuda_reserved()
        now = time.monotonic()
        policy, c = self.policy(), self.config
        last = self.tracker.last
        evicting = c.evict != "off"
        temporaries, stale, preserved = self._sort_names(policy, now, evicting)
        deleted = cleaner.delete_names(self.shell, temporaries)
        released = cleaner.release_outputs(
            self.shell,
            c.output_cache_keep,
            is_recent=lambda k: policy.is_recent(last.get(f"_{k}"), now),
        )
        error_released = cleaner.release_last_error(self.shell)
        paged: list[str] = []
        paged_bytes = 0
        evicted: list[str] = []
        budget_fields: dict[str, t.Any] = {}
        if c.evict == "delete":
            evicted = cleaner.delete_names(self.shell, stale)
        elif c.evict in ("page", "spill"):
            try:
                if stale:
                    paged, paged_bytes = self._page_stale(stale)
                if trigger == "memory":
                    budget_fields = self._hold_budget(paged)
                    paged_bytes += budget_fields.pop("bytes")
            except Exception:  # the rest of the cleanup still runs
                self.log.exception("greed: paging failed; stale values stay in memory")
        if full:
            gc.unfreeze()  # after the error's release, so its frames are collected too
        collected = gc.collect(2)
        self.freeze_heap()
        trimmed = malloc_trim()
        self.tracker.forget_missing()
        report = self._report(
            "cleanup",
            trigger,
            start,
            rss_before,
            cuda_before,
            deleted=deleted,
            evicted=evicted,
            outputsReleased=len(released),
            errorReleased=error_released,
            paged=paged,
            pagedBytes=paged_bytes,
            gcCollected=collected,
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

    def _sort_names(
        self, policy: Policy, now: float, evicting: bool
    ) -> tuple[list[str], list[str], list[str]]:
        """Temporaries, stale names and preserved names of the namespace."""
        last = self.tracker.last
        temporaries: list[str] = []
        stale: list[str] = []
        preserved: list[str] = []
        for name, value in list(self.shell.user_ns.items()):
            size = _sizer(value) if evicting else None
            verdict, rule, _ = policy.classify(name, value, last.get(name), now, size)
            if verdict is Verdict.CLEAN:
                temporaries.append(name)
            elif verdict is Verdict.STALE:
                stale.append(name)
            elif rule in PRESERVED_RULES and policy.internal_rule(name, value) in _USER:
                preserved.append(name)
        return temporaries, stale, preserved

    @guarded
    def optimize(self, trigger: str, collect: bool = True) -> dict[str, t.Any] | None:
        """Stale gradients, a full collection, the CUDA cache.

        *collect* False: a cleanup has just run its own full collection (they were
        due together); one collection is enough, and costs a whole heap walk.
        """
        start = time.perf_counter()
        rss_before, cuda_before = self.probe.rss(), optimizer.cuda_reserved()
        grads = optimizer.clear_stale_grads(list(self.shell.user_ns.values()))
        collected = gc.collect(2) if collect else 0
        self.freeze_heap()
        devices = optimizer.empty_cuda_cache()
        return self._report(
            "optimize",
            trigger,
            start,
            rss_before,
            cuda_before,
            gradsCleared=grads,
            gcCollected=collected,
            cudaEmptied=devices,
        )

    def _report(
        self,
        kind: str,
        trigger: str,
        start: float,
        rss_before: int,
        cuda_before: list[dict[str, int]],
        **fields: t.Any,
    ) -> dict[str, t.Any]:
        rss_after = self.probe.rss()
        report: dict[str, t.Any] = {
            "kind": kind,
            "trigger": trigger,
            "executionCount": self.stats.execution_count,
            "time": time.time(),
            "durationMs": (time.perf_counter() - start) * 1000.0,
            "rssBefore": rss_before,
            "rssAfter": rss_after,
            "freedBytes": max(0, rss_before - rss_after),
            "cudaBefore": cuda_before,
            "cudaAfter": optimizer.cuda_reserved(),
        }
        for key, value in fields.items():
            if isinstance(value, list) and value and isinstance(value[0], str):
                report[key], report[key + "Omitted"] = capped(value)
            else:
                report[key] = value
        report = json_clean(report)
        self.stats.record_report(report)
        self.emit({"event": f"execution:{kind}", "stats": self.snapshot(), "report": report})
        return report

    def freeze_heap(self) -> None:
        """With GreedKernel.gc_freeze (off by default): move the objects that survived
        a full collection to the permanent generation, so the next collection only
        looks at newer ones.

        Called after a full collection and after a cell that imported modules.
        Never while an error is stored. Frozen objects are still freed by reference
        counting, but cycles among them are then invisible to every collection,
        the user's own ``gc.collect()`` included, until ``%greed cleanup --full``:
        that is why it is off by default.
        """
        # A stored error's frames would become frozen garbage once a cleanup releases
        # them: while one is held, wait for the cleanup (which releases it first).
        if self.config.gc_freeze and not cleaner.error_stored(self.shell):
            gc.freeze()
            self._modules_seen = len(sys.modules)

    # -- paging ----------------------------------------------------------------------
    def _page_stale(self, stale: list[str]) -> tuple[list[str], int]:
        """Page out the CPU memory of the stale values, in place (see paging.py)."""
        if not self._may_page():
            return [], 0
        ns, seen = self.shell.user_ns, set()
        found = {name: cpu_buffers(ns[name], seen=seen) for name in stale if name in ns}
        result = self.pager.page_out(b for bufs in found.values() for b in bufs)
        if result.skipped:
            self.log.debug("greed: left in RAM: %s", result.skipped)
        if not result.regions:
            return [], 0
        starts = [lo for lo, _ in result.regions]
        paged: list[str] = []
        for name, bufs in found.items():
            nbytes = sum(_overlap(result.regions, starts, ptr, n) for ptr, n in bufs)
            if nbytes:
                paged.append(name)
                self.paged[name] = (id(ns[name]), nbytes)
        self.log.info(
            "greed: paged out %s of %s in %.0f ms",
            human_bytes(result.bytes),
            ", ".join(paged),
            result.seconds * 1000,
        )
        return paged, result.bytes

    def _may_page(self) -> bool:
        busy = foreign_threads()
        if busy:
            # another thread may be writing to these buffers between our copy and the
            # remap: its write would be lost. Leave everything in RAM.
            self.paging_paused = f"paging waits: thread {busy[0]!r} is running"
            self.log.info("greed: %s", self.paging_paused)
            return False
        self.paging_paused = ""
        self.pager.max_bytes = self.config.spill_max_bytes
        return True

    def _hold_budget(self, paged: list[str]) -> dict[str, t.Any]:
        """Page out least recently used values (recent ones too) until pressure is
        below the low watermark; the report's budget fields."""
        before = self.probe.pressure()
        target = self._low_watermark()
        names: list[str] = []
        nbytes = 0
        if before > target and self._may_page():
            order = budget.lru_order(
                self.shell.user_ns, self.tracker.last, self.policy(), self._cell_number
            )
            ns = self.shell.user_ns

            def page_out(buffers: list[tuple[int, int]]) -> int:
                return self.pager.page_out(buffers).bytes

            names, nbytes = budget.page_until(ns, order, page_out, self.probe.pressure, target)
            for name in names:
                self.paged[name] = (id(ns[name]), self.pager.paged_in(cpu_buffers(ns[name])))
                if name not in paged:
                    paged.append(name)
        after = self.probe.pressure()
        self.log.info(
            "greed: memory budget: pressure %.2f -> %.2f, paged %s (%s)",
            before,
            after,
            ", ".join(names) or "nothing more",
            human_bytes(nbytes),
        )
        return {"pressureBefore": before, "pressureAfter": after, "bytes": nbytes}

    def _paged_bytes_of_value(self, value: t.Any) -> int:
        return self.pager.paged_in(cpu_buffers(value))

    def paged_names(self) -> dict[str, int]:
        """Names whose value had memory paged out, still bound to that value."""
        ns = self.shell.user_ns
        for name, (oid, _) in list(self.paged.items()):
            if name not in ns or id(ns[name]) != oid:
                del self.paged[name]
        return {name: nbytes for name, (_, nbytes) in self.paged.items()}

    def paged_bytes_of(self, name: str) -> int:
        """Bytes of *name*'s value that lie in paged-out memory now."""
        value = self.shell.user_ns.get(name)
        return self._paged_bytes_of_value(value) if value is not None else 0

    def page_in(self, names: t.Iterable[str]) -> int:
        """Read the paged memory of these names back into RAM now (``%greed restore``)."""
        ns, seen, nbytes = self.shell.user_ns, set(), 0
        for name in names:
            if name in ns:
                nbytes += self.pager.page_in(cpu_buffers(ns[name], seen=seen))
        return nbytes

    def shutdown(self) -> None:
        """Remove the paging directory we made, if any (kernel shutdown or restart)."""
        self.pager.close()

    # -- out of memory -----------------------------------------------------------------------
    @guarded
    def recover_from_oom(self) -> dict[str, t.Any] | None:
        """The emergency cleanup after an out-of-memory error, and one line saying what
        it reclaimed (measured). The error's frames go first: they pin the tensors."""
        rss_before, cuda_before = self.probe.rss(), optimizer.cuda_reserved()
        self.cleanup("oom")
        self.optimize("oom", collect=False)
        malloc_trim()
        rss_after, cuda_after = self.probe.rss(), optimizer.cuda_reserved()
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
            if self.config.evict != "delete"
            else "stale variables were deleted (GreedKernel.evict = 'delete')"
        )
        print(
            f"Greed: reclaimed {' and '.join(parts)}; {intact}. Try again with a smaller batch.",
            file=sys.stderr,
        )
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
        self.emit({"event": "memory:oom", "stats": self.snapshot(), "report": report})
        return report

    # -- marks -------------------------------------------------------------------------------
    def preserve(self, names: t.Iterable[str]) -> None:
        """Mark names as always kept (``%greed preserve``)."""
        for name in names:
            self.marked.add(name)
            self.unmarked.discard(name)

    def unpreserve(self, names: t.Iterable[str]) -> None:
        """Undo a mark, and exempt the names from ``GreedKernel.preserve``."""
        for name in names:
            self.marked.discard(name)
            self.unmarked.add(name)

    # -- views ---------------------------------------------------------------------------
    def decide(self, name: str, policy: Policy | None = None) -> tuple[Decision, Size]:
        value = self.shell.user_ns[name]
        size = measure(value)
        policy = policy or self.policy()
        now = time.monotonic()
        return policy.decide(name, value, self.tracker.last.get(name), now, size.nbytes), size

    def variables(self) -> list[dict[str, t.Any]]:
        """The user's variables with size, device, last access and decision, largest first."""
        policy, now, rows = self.policy(), time.monotonic(), []
        paged = self.paged_names()
        for name in list(self.shell.user_ns):
            try:
                decision, size = self.decide(name, policy)
            except Exception:
                self.log.debug("greed: could not describe %r", name, exc_info=True)
                continue
            if policy.internal_rule(name, self.shell.user_ns.get(name)) is not None:
                continue
            access = self.tracker.last.get(name)
            rows.append(
                {
                    "name": name,
                    "type": type_name(self.shell.user_ns.get(name)),
                    "size": size.nbytes,
                    "device": size.device,
                    "lastTouchedAgo": None if access is None else now - access.time,
                    "lastTouchedCell": None if access is None else access.execution,
                    "decision": decision.verdict.value,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "pagedBytes": paged.get(name, 0),
                    # deprecated alias of pagedBytes > 0 (values are never taken away now)
                    "spilled": name in paged,
                }
            )
        rows.sort(key=lambda r: (-r["size"], r["name"]))
        return rows

    def preserved_names(self) -> list[str]:
        """Names kept right now because they are marked, listed or recently touched."""
        policy, now, last = self.policy(), time.monotonic(), self.tracker.last
        ns = self.shell.user_ns
        return [
            name
            for name in list(ns)
            if (policy.is_listed(name) or policy.is_recent(last.get(name), now))
            and policy.internal_rule(name, ns.get(name)) in _USER
        ]

    def snapshot(self) -> dict[str, t.Any]:
        """The STATS dict (see the README's comm contract)."""
        return self.stats.snapshot(
            preserved=self.preserved_names(),
            rss=self.probe.rss(),
            limit=self.probe.effective_limit(),
            cuda=[_as_dict(d) for d in self.probe.cuda()],
            extra=self._paging_stats(),
        )

    def _paging_stats(self) -> dict[str, t.Any]:
        names, omitted = capped(self.paged_names())
        paged_bytes = self.pager.paged_bytes()
        c = self.config
        return {
            "memoryBudget": {
                "limitBytes": self.probe.effective_limit(),
                "unreclaimableBytes": self.probe.unreclaimable(),
                "pagedBytes": paged_bytes,
                "threshold": c.memory_threshold,
                "lowWatermark": self._low_watermark(),
                "held": self.budget_refusal is None,
            },
            "paged": names,
            "pagedOmitted": omitted,
            "pagedBytes": paged_bytes,
            "pagingDirectory": self.pager.where,
            "pagingNotice": self.pager.notice or self.paging_paused or self.pager.failure,
        }

    def emit(self, event: dict[str, t.Any]) -> None:
        try:
            self.publish(event)
        except Exception:
            self.log.exception("greed: publishing %s failed", event.get("event"))


def is_out_of_memory(error: BaseException | None) -> bool:
    """torch.OutOfMemoryError (CUDA's too), MemoryError, or a RuntimeError saying so."""
    if error is None:
        return False
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(error, oom):
        return True
    if isinstance(error, RuntimeError):
        try:
            return "out of memory" in str(error).lower()
        except Exception:  # a hostile __str__
            return False
    return False


def _overlap(regions: list[tuple[int, int]], starts: list[int], ptr: int, nbytes: int) -> int:
    """Bytes of [ptr, ptr + nbytes) inside the sorted, disjoint *regions*."""
    total = 0
    i = max(bisect.bisect_right(starts, ptr) - 1, 0)
    end = ptr + nbytes
    while i < len(regions) and regions[i][0] < end:
        lo, hi = regions[i]
        total += max(0, min(hi, end) - max(lo, ptr))
        i += 1
    return total


def type_name(obj: t.Any) -> str:
    """``module.Qualname`` of a value's type (just ``Qualname`` for builtins and cells)."""
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


def _sizer(value: t.Any) -> Callable[[], int]:
    return lambda: measure(value).nbytes


def _as_dict(device: t.Any) -> dict[str, t.Any]:
    return {k: getattr(device, k) for k in ("device", "allocated", "reserved", "total")}
