"""The engine: the components, wired so that data flows one way.

    cell events (hooks) -> tracker -> policy -> housekeeping (triggers decide when)
                                               -> stats -> views -> service -> comm / magics

:class:`Greed` builds the components and owns the moments of a cell: before the reply
(:meth:`Greed.cell_done`) and after it (scheduled). The comm channel and the magics see
only ``Greed.service`` (service.py).
"""

from __future__ import annotations

import logging
import sys
import time
import typing as t
from collections.abc import Callable

from ..analysis.tracker import Tracker
from ..memory.probe import MemoryProbe
from ..memory.torchstate import is_out_of_memory
from .checkpointing import Checkpointing
from .component import Clock, Schedule
from .context import Context
from .events import CellEnd, Events
from .guarding import Guarding
from .hooks import CellHooks
from .housekeeping import Housekeeping, Publish
from .policy import Marks, Policy
from .releases import Releases
from .service import Service
from .slices import Slices
from .stats import Stats
from .store import PagedValues
from .triggers import Triggers
from .views import Views

if t.TYPE_CHECKING:
    from ..session.previous import PreviousKernel
    from ..session.record import KernelRecord

#: Seconds between an execute request's idle status going out and the work after it:
#: the kernel's threads that forward the reply and the idle status to the client need
#: the GIL, which that work holds (the kernel's scheduler counts from when the IOPub
#: thread has sent what the request queued).
AFTER_REPLY_DELAY = 0.002


class Greed:
    """Wires the components, and runs housekeeping at the right moments of a cell.

    A plain class, not a component: it reads no settings itself; *parent* holds them
    (the kernel) for the components."""

    __slots__ = (
        "_attention",
        "_counted",
        "_dropped_by_cells",
        "_due",
        "_guard",
        "_headline",
        "_oom",
        "_record",
        "_waiting",
        "_wake_pending",
        "checkpointing",
        "events",
        "executing",
        "guarding",
        "hooks",
        "housekeeping",
        "log",
        "marks",
        "parent",
        "probe",
        "releases",
        "schedule",
        "service",
        "shell",
        "stats",
        "store",
        "tracker",
        "triggers",
        "views",
    )

    def __init__(
        self,
        shell: t.Any,
        *,
        parent: t.Any,
        log: logging.Logger | None = None,
        clock: Clock = time.monotonic,
        schedule: Schedule | None = None,
        publish: Publish | None = None,
        record: KernelRecord | None = None,
        previous: PreviousKernel | None = None,
        identity: str | None = None,
    ) -> None:
        self.shell = shell
        self.parent = parent
        self.log = log or getattr(parent, "log", None) or logging.getLogger("greed_kernel")
        self.schedule = schedule
        parts = {"parent": parent, "log": self.log, "clock": clock}
        self.marks = Marks()
        self.stats = Stats(clock)
        self.tracker = Tracker(shell.user_ns)
        self.probe = MemoryProbe(limit=parent.memory_limit)
        self.events = events = Events(self.log)
        events.register("cell_failed", self._cell_failed)
        events.register("work_due", self._work_due)
        events.register("cell_started", self._cell_started)
        events.register("notice", self._start_work)  # said under the next cell
        if publish is not None:
            events.register("publish", publish)
        self.hooks = CellHooks(
            shell, self.tracker, self.stats.counts, events, log=self.log, clock=clock
        )
        self.store = PagedValues(shell.user_ns, **parts)
        context = Context(
            shell=shell,
            parent=parent,
            tracker=self.tracker,
            probe=self.probe,
            stats=self.stats,
            marks=self.marks,
            store=self.store,
            hooks=self.hooks,
            events=events,
            policy=self.policy,
            when_no_cell=self.when_no_cell,
        )
        self.views = Views(context, **parts)
        stats = self.stats
        sliced = Slices(
            schedule, self.busy, lambda: stats.execution_count, self.log, on_cell="wait"
        )
        self.housekeeping = Housekeeping(context, self.views, sliced, **parts)
        self.triggers = Triggers(context, self.housekeeping, self.busy, schedule, **parts)
        self.releases = Releases(context, **parts)
        events.register("cell_output", self.releases.output)
        self.guarding = Guarding(context, record, **parts)
        self._guard = self.guarding.guard  # a plain object: the hot path arms it
        self._record = record  # ... and writes the cell's number into it
        self.checkpointing = Checkpointing(context, identity, self.busy, schedule, **parts)
        self._dropped_by_cells = self.checkpointing.slices  # the hot path tells it of cells
        if previous is not None:
            self.guarding.previous = previous
        notice = self.checkpointing.start_notice(previous and previous.message)
        if notice:  # said under the first cell
            self.housekeeping.notices.append(notice)
            self.hooks.tell_at_next_cell()
        events.register("publish", self.guarding.published)
        #: what the comm channel and the magics may ask
        self.service = Service(
            context, self.views, self.housekeeping, self.triggers, self.guarding, self.checkpointing
        )
        self.executing = False  # an execute request is in progress (set by the kernel)
        #: cell_done has something to do: a cell failed, work fell due, requests wait
        self._attention = False
        self._oom = False  # a user cell ran out of memory
        self._headline: str | None = None  # ... and the guard had stopped it: its line
        self._counted = 0  # the cells that had ended at the last cell_done (no scheduler)
        self._waiting: list[Callable[[], None]] = []  # requests that wait for the cell
        self._due = False  # work fell due after a cell and has not run yet
        self._wake_pending = False  # after_reply is scheduled

    # -- wiring ----------------------------------------------------------------------
    def register(self) -> None:
        self.hooks.register()

    def unregister(self) -> None:
        self.hooks.unregister()

    def policy(self) -> Policy:
        return self.marks.policy(self.parent, self.shell.user_ns_hidden, self.hooks.number)

    def busy(self) -> bool:
        """A cell is running or awaiting: nothing may touch the namespace now."""
        return self.executing or self.hooks.running

    # -- the moments of a cell -----------------------------------------------------------
    def _start_work(self) -> None:
        self.hooks.tell_at_next_cell()

    def _cell_started(self) -> None:
        """A user cell begins (its names are not yet in use): the work due after the last
        reply if it has not run yet (the next cell came first), and what it said."""
        if self._due:
            self._run_due()
        notices = self.housekeeping.notices
        if notices:
            self.housekeeping.notices = []
            for line in notices:
                print(line, file=sys.stderr)

    def _cell_failed(self, failure: CellEnd) -> None:
        # the text as shown, for %tb once a cleanup has released the error itself;
        # the rest waits for cell_done, since the reply must report the error: only
        # whether it was out of memory is kept (the error pins the frames to free)
        self.service.traceback = failure.shown_traceback
        self.releases.error(self.hooks.number)
        if is_out_of_memory(failure.error):
            self._oom = self._attention = True
            self._headline = self.guarding.headline(failure.error)

    def _work_due(self) -> None:
        """After a user cell, work fell due (the hooks compared the cell counts with
        the triggers' marks): it runs after the reply, or when the next cell starts."""
        if not self._due:
            self._due = True
            self.hooks.tell_at_next_cell()
        self._attention = True

    def begin(self) -> None:
        """An execute request starts: the guard watches memory until cell_done."""
        if self._dropped_by_cells.work is not None:  # a checkpoint in slices
            self._dropped_by_cells.cell_starts()  # dropped, or finished if overdue
        self.executing = True
        self._guard.arm()

    def cell_done(self) -> None:
        """The execute request's reply is built: what must be under this cell (the
        out-of-memory recovery and its line) now; the rest once the reply and the idle
        status are sent (AFTER_REPLY_DELAY later), or when the next cell starts.

        The hot path: after an ordinary cell (nothing due, nothing failed, no request
        waiting) it disarms the guard, writes the cell's number into this kernel's record
        (the guard's thread, which writes the rest, may not read again before a kill) and
        reads one flag; the cell's names are scanned later (hooks.stamp)."""
        self.executing = False
        self._guard.disarm()
        if self._record is not None:
            self._record.update(cell=self.hooks.number)
        if self._attention or self.schedule is None:
            self._attend()

    def _attend(self) -> None:
        self._attention = False
        if self._oom:
            self._oom = False
            self.hooks.stamp()  # the emergency cleanup reads the stamps
            headline, self._headline = self._headline, None
            self.triggers.cell_ended(True, headline)
        if self.schedule is None:  # no scheduler: what is due runs now, after each cell
            executions = self.stats.execution_count
            self._due = executions != self._counted  # a user cell ended
            self._counted = executions
            self.after_reply()
        elif (self._due or self._waiting) and not self._wake_pending:
            self._wake_pending = True
            self.schedule(AFTER_REPLY_DELAY, self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self.after_reply()

    def _run_due(self) -> None:
        self._due = False
        self.hooks.tell_at_next_cell(False)  # a notice from the work asks again
        self.hooks.stamp()
        # after the last cell that ended, which may be before the one now starting
        if self.releases.run(self.hooks.ended):
            self.housekeeping.full_owed = True  # the error's frames, if they are old
        self.triggers.after_reply()
        if self.stats.counts.checkpoint_to_arm:
            self.checkpointing.after_cell()

    def after_reply(self) -> None:
        """The work that fell due, then the requests that waited for the cell. When a
        next cell has already started, that cell ran the work first (before its code),
        and the requests wait for it to end."""
        if self.busy():
            return  # cell_done of the running cell schedules us again
        if self._due:
            self._run_due()
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            try:
                fn()
            except Exception:
                self.log.exception("greed: a request that waited for the cell failed")

    def when_no_cell(self, fn: Callable[[], None]) -> None:
        """Run *fn* now, or after the cell that is running (or awaiting) ends: comm
        messages come through the event loop, which also runs while an async cell
        awaits, and a cleanup must never run in the middle of the user's cell."""
        if self.busy() or self._waiting or self._wake_pending:
            self._waiting.append(fn)  # in order, after the housekeeping that is due
            self._attention = True  # cell_done schedules them
        else:
            fn()

    def shutdown(self) -> None:
        """Disconnect, stop the guard and mark the record done, and remove the paging
        directory we made, if any."""
        self.unregister()
        self.guarding.close()
        self.triggers.close()
        self.checkpointing.close()
        self.housekeeping.slices.cancel()
        self.store.close()
