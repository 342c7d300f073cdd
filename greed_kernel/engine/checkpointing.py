"""Checkpointing: when the notebook's checkpoint is brought up to date, and resume.

* **When.** With ``checkpoint="auto"``, a user cell that ends arms one timer (the
  hooks see the ``checkpoint_to_arm`` mark; further cells cost nothing). Once no cell
  has ended for :data:`QUIET_SECONDS`, the checkpoint runs on the main thread, in slices
  of a few ms with the event loop free in between (slices.py). A cell that
  starts meanwhile drops it (what it wrote stays, content addressed), and the timer
  is armed again: no cell waits for a checkpoint, and a checkpoint holds the state
  between two cells. ``%greed checkpoint`` writes one at once, whole.
* **Stretches.** Cells sent back to back (nbclient, papermill) leave no quiet moment.
  Once the namespace has differed from the checkpoint for :data:`OVERDUE_SECONDS`, and
  for long enough that the checkpoint's expected time is at most :data:`OVERDUE_SHARE`
  of that, the checkpoint starts between two cells, and the next cell waits for it
  before its code runs (:meth:`Checkpointing.overdue`).
* **What.** The user's own names (not IPython's, not dunders); names bound to modules
  are imported again. Which names changed comes from the tracker: every name a cell
  touched (directly or through the user's functions) since the last checkpoint.
* **Failures.** A full or read-only disk, a refused directory: logged, shown in
  ``%greed status``, and tried again after a backoff (doubling from
  :data:`RETRY_SECONDS` to :data:`RETRY_MAX_SECONDS`); never a change to a cell.
* **Resume** binds the stored names into the namespace, imports the modules, and
  stamps the names as touched by the resuming cell.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
import types
import typing as t
from collections.abc import Callable, Iterator

from ..memory.sizes import human_bytes
from ..session.blobs import BlobDir, Refused
from ..session.checkpoints import Checkpoints
from ..session.identity import identity_key
from ..session.manifests import Manifest
from .component import Component, Schedule, guarded
from .context import Context
from .slices import Slices

#: Seconds with no cell ending before an automatic checkpoint starts.
QUIET_SECONDS = 0.5
#: The first and the longest wait before trying again after a failure.
RETRY_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0
#: Seconds the namespace may differ from the checkpoint, in a stretch of cells that
#: leaves no quiet moment, before a cell waits for a checkpoint ...
OVERDUE_SECONDS = 300.0
#: ... and at most this share of that time goes to the checkpoint the cell waits for.
OVERDUE_SHARE = 0.01
#: Bytes a checkpoint is expected to hash and write per second, for its expected time:
#: of the memory only swap can take (RssAnon + RssShmem), as if all of it were new.
EXPECTED_BYTES_PER_S = 256 << 20
#: checkpoint_max_bytes=0: this, capped at half the free disk where the directory is.
DEFAULT_MAX_BYTES = 20 << 30


class Checkpointing(Component):
    """The notebook's checkpoints: written after cells, listed, resumed, forgotten."""

    def __init__(
        self,
        context: Context,
        identity: str | None,
        busy: Callable[[], bool],
        schedule: Schedule | None = None,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shell = context.shell
        self.tracker = context.tracker
        self.hooks = context.hooks
        self.stats = context.stats
        self.policy = context.policy
        self.identity = identity
        self.busy = busy
        self.schedule = schedule
        self.problem: str | None = None  # why the last checkpoint failed, if it did
        self.last_ms: float | None = None
        self._checkpoints: Checkpoints | None = None
        self.slices = Slices(
            schedule, busy, lambda: context.stats.execution_count, self.log, on_cell="drop"
        )
        self._steps_at = -1  # execution count when the running checkpoint started
        self._timer: t.Any = None
        self._covered = -1  # execution count the last checkpoint holds
        self._touched_at = 0  # cell number up to which touches are in the last checkpoint
        self._retry = 0.0
        self._retry_at = 0.0
        self._differs_since: float | None = None  # a cell ended after the checkpoint
        self._longest_s = 0.0  # seconds of the longest checkpoint a cell waited for
        self._expected_s = 0.0  # the last expected time of a checkpoint a cell waits for
        self.probe = context.probe
        self.counts = context.stats.counts
        self.counts.checkpoint_to_arm = self.automatic
        if hasattr(self.parent, "observe"):
            self.parent.observe(self._mode_changed, names=["checkpoint"])

    def _mode_changed(self, change: t.Any) -> None:
        self.counts.checkpoint_to_arm = self.automatic and self._timer is None

    def close(self) -> None:
        self.slices.cancel()
        if hasattr(self.parent, "unobserve"):
            self.parent.unobserve(self._mode_changed, names=["checkpoint"])
        if self._checkpoints is not None:
            self._checkpoints.store.close()

    @property
    def automatic(self) -> bool:
        return self.identity is not None and self.options.checkpoint == "auto"

    # -- the directory ------------------------------------------------------------------
    def open(self, create: bool = True) -> Checkpoints | None:
        """The notebook's checkpoints (None where the kernel has no notebook identity,
        or where the directory does not exist and *create* is false). Raises Refused or
        OSError for a directory that cannot be used."""
        if self._checkpoints is None and self.identity is not None:
            root = self.options.checkpoint_dir or default_dir()
            try:
                store = BlobDir(root, identity_key(self.identity), create=create)
            except FileNotFoundError:
                if create:
                    raise
                return None
            self._checkpoints = Checkpoints(store, self.max_bytes(root))
        return self._checkpoints

    def max_bytes(self, root: str) -> int:
        configured = self.options.checkpoint_max_bytes
        if configured:
            return configured
        try:
            free = shutil.disk_usage(os.path.expanduser(root)).free
        except OSError:
            return DEFAULT_MAX_BYTES
        return min(DEFAULT_MAX_BYTES, free // 2)

    # -- automatic ----------------------------------------------------------------------
    @guarded
    def after_cell(self) -> None:
        """After the reply of a user cell: arm the timer (once)."""
        self.counts.checkpoint_to_arm = False
        if self._differs_since is None:
            self._differs_since = self.clock()
        if self.automatic and self._timer is None and self.schedule is not None:
            self._timer = self.schedule(QUIET_SECONDS, self.on_quiet)

    @guarded
    def on_quiet(self) -> None:
        self._timer = None
        if not self.automatic:
            return
        now = self.clock()
        wait = max(QUIET_SECONDS - (now - self.stats.last_end), self._retry_at - now)
        if self.stats.execution_count == self._covered:
            self._differs_since = None
            self.counts.checkpoint_to_arm = True  # nothing ran since: wait for a cell
            return
        if not self.busy() and self._retry_at <= now and self.overdue(now):
            self._start(hold=True)
            return
        if self.busy() or wait > 0:
            self._timer = self.schedule(max(wait, 0.05), self.on_quiet)  # type: ignore[misc]
            return
        self._start()

    def overdue(self, now: float) -> bool:
        """Whether the next cell must wait for a checkpoint: the namespace has differed
        from it for OVERDUE_SECONDS, and for long enough that the checkpoint's expected
        time (the longest one a cell waited for, or the session's memory as if all new)
        is at most OVERDUE_SHARE of that."""
        if self._differs_since is None:
            return False
        if now < self._differs_since + max(OVERDUE_SECONDS, self._expected_s / OVERDUE_SHARE):
            return False
        expected = max(self._longest_s, self.probe.unreclaimable() / EXPECTED_BYTES_PER_S)
        self._expected_s = expected  # read again only once the time is up
        return expected <= OVERDUE_SHARE * (now - self._differs_since)

    def _start(self, hold: bool = False) -> None:
        self.hooks.stamp()
        self._steps_at = self.stats.execution_count
        self.slices.start(
            self._write(hold),
            done=self._done,
            failed=self._failed,
            dropped=self._dropped,
            hold=hold,
        )

    def _done(self) -> None:
        self.counts.checkpoint_to_arm = True

    def _dropped(self) -> None:
        self.after_cell()  # a cell came: try again after it

    def _failed(self, error: BaseException) -> None:
        self._retry = min(max(self._retry * 2, RETRY_SECONDS), RETRY_MAX_SECONDS)
        self._retry_at = self.clock() + self._retry
        self.problem = f"{type(error).__name__}: {error}"
        self.log.warning("greed: checkpoint failed (again in %.0f s): %s", self._retry, error)
        self.after_cell()  # the timer waits for the backoff

    # -- writing ------------------------------------------------------------------------
    def _write(self, held: bool = False) -> Iterator[None]:
        started = time.perf_counter()
        checkpoints = self.open()
        if checkpoints is None:
            return
        values, imports = self._namespace()
        touched = self._touched()
        history = {n: a.execution for n, a in self.tracker.last.items()}
        number = self.hooks.number
        yield from checkpoints.steps(
            values, touched, number, imports=imports, history=history, sources=self._sources()
        )
        self._covered = self._steps_at
        self._touched_at = number
        self._retry, self._retry_at, self.problem = 0.0, 0.0, None
        self._differs_since = None
        seconds = time.perf_counter() - started
        self.last_ms = seconds * 1000.0
        if held:
            self._longest_s = max(self._longest_s, seconds)
            self.log.info("greed: checkpoint in a stretch of cells (%.0f ms)", seconds * 1e3)

    def _touched(self) -> set[str] | None:
        if self._covered < 0:
            return None  # the first checkpoint of this kernel: everything
        since = self._touched_at
        return {n for n, a in self.tracker.last.items() if a.execution > since}

    def _namespace(self) -> tuple[dict[str, t.Any], dict[str, str]]:
        policy = self.policy()
        values: dict[str, t.Any] = {}
        imports: dict[str, str] = {}
        for name, value in list(self.shell.user_ns.items()):
            if isinstance(value, types.ModuleType):
                if not name.startswith("_"):
                    imports[name] = value.__name__
            elif policy.internal_rule(name, value) in (None, "module"):
                values[name] = value  # "module": only named like one (`code = 3`)
        return values, imports

    def _sources(self) -> dict[int, str]:
        cells = self.shell.user_ns.get("In")
        return dict(enumerate(cells)) if isinstance(cells, list) else {}

    def checkpoint(self) -> Manifest | None:
        """Write a checkpoint now, whole; return when it is durable (None: no identity)."""
        self.slices.cancel()
        self.hooks.stamp()
        self._steps_at = self.stats.execution_count
        for _ in self._write():
            pass
        self.counts.checkpoint_to_arm = self.automatic
        return None if self._checkpoints is None else self._checkpoints.last

    # -- reading ------------------------------------------------------------------------
    def checkpoints(self) -> list[Manifest]:
        store = self.open(create=False)
        return [] if store is None else store.list()

    def latest(self) -> Manifest | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def resume(self, wanted: str | None) -> dict[str, t.Any]:
        """Bind the names of checkpoint *wanted* (None: the latest)."""
        started = time.perf_counter()
        try:
            store = self.open(create=False)
            manifests = [] if store is None else store.list()
        except (Refused, OSError) as error:
            raise LookupError(f"Greed will not resume from this directory: {error}") from None
        if store is None or not manifests:
            raise LookupError("this notebook has no checkpoint")
        chosen = manifests[-1] if wanted is None else None
        for m in manifests:
            if m.id == wanted:
                chosen = m
        if chosen is None:
            known = ", ".join(m.id for m in manifests)
            raise LookupError(f"no checkpoint {wanted!r}; this notebook has {known}")
        ns = self.shell.user_ns
        imported, failed = {}, {}
        for name, module in chosen.body["imports"].items():
            try:
                imported[name] = importlib.import_module(module)
            except Exception as error:
                failed[name] = f"import {module} failed: {error}"
        ns.update(imported)
        resumed = store.load(chosen, ns)
        ns.update(resumed.values)
        failed.update(resumed.failed)
        bound = sorted([*imported, *resumed.values])
        self.tracker.touch(bound, self.hooks.number)
        return {
            "checkpoint": chosen.summary(),
            "bound": bound,
            "failed": failed,
            "unstorable": chosen.body["unstorable"],
            "leftOut": chosen.body["left_out"],
            "notes": resumed.notes,
            "replay": chosen.body.get("replay", {}),
            "seconds": time.perf_counter() - started,
        }

    def forget(self) -> int:
        store = self.open(create=False)
        freed = 0 if store is None else store.forget()
        self._covered = -1
        return freed

    def start_notice(self, died: str | None) -> str | None:
        """The line under a new kernel's first cell: how the previous kernel died (if it
        did) and the checkpoint it left (if any), never resuming by itself."""
        latest = None
        if self.identity is not None and self.options.checkpoint != "off":
            try:
                latest = self.latest()
            except (OSError, Refused) as error:
                self.log.warning("greed: cannot read this notebook's checkpoints: %s", error)
        if latest is None:
            return died
        s = latest.summary()
        when = time.strftime("%H:%M", time.localtime(s["time"]))
        line = (
            f"this notebook has a checkpoint from {when} (cell {s['cell']}, "
            f"{human_bytes(s['bytes'])}): %greed resume"
        )
        return f"{died} {line[0].upper()}{line[1:]}" if died else f"Greed: {line}"

    def status(self) -> dict[str, t.Any]:
        latest = None
        try:
            latest = self.latest()
        except (OSError, Refused) as error:
            self.problem = self.problem or str(error)
        return {
            "checkpoint": self.options.checkpoint if self.identity else "off (no notebook)",
            "checkpointLatest": None if latest is None else latest.summary(),
            "checkpointProblem": self.problem,
            "checkpointMs": self.last_ms,
        }


def default_dir() -> str:
    """``greed/sessions`` under the Jupyter data directory."""
    from jupyter_core.paths import jupyter_data_dir

    return os.path.join(jupyter_data_dir(), "greed", "sessions")
