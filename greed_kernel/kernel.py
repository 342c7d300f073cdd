"""GreedKernel: an IPythonKernel that keeps long sessions lean.

The kernel only wires: it declares the configuration, builds the components
(tracker, policy, engine, comm channel, magics) and connects them to the
shell's events. The components do the work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import typing as t

from ipykernel.ipkernel import IPythonKernel
from traitlets import Bool, CaselessStrEnum, Float, Integer, List, TraitError, Unicode, validate

from . import __version__

#: Seconds a shutdown request waits for the engine's shutdown (a cell may be running).
SHUTDOWN_WAIT_S = 3.0

#: Greed.js v3.1.0's list of names that are always preserved.
DEFAULT_PRESERVE = [
    "torch",
    "nn",
    "optim",
    "numpy",
    "np",
    "sys",
    "os",
    "math",
    "gc",
    "builtins",
    "model",
    "optimizer",
    "loss_fn",
    "dataset",
    "dataloader",
    "train",
    "test",
    "val",
    "X",
    "y",
    "data",
    "losses",
    "accuracies",
    "epochs",
    "history",
    "results",
]


class GreedKernel(IPythonKernel):
    """An IPython kernel that tracks what each cell uses and frees what nobody needs."""

    implementation = "greed"
    implementation_version = __version__

    # -- tracking and preservation -------------------------------------------------
    preserve = List(
        Unicode(),
        default_value=list(DEFAULT_PRESERVE),
        help="""Names (or glob patterns such as 'ckpt_*') that are always kept.
        The default is Greed.js v3.1.0's list of core modules, ML, data and
        training-state names. Names marked with `%greed preserve` are added to it.""",
    ).tag(config=True)

    recent_window = Float(
        300.0,
        help="Seconds during which a name touched by a cell (directly or through "
        "the user's own functions) is kept no matter what (see also recent_cells).",
    ).tag(config=True)

    recent_cells = Integer(
        20,
        help="A name is recent (kept no matter what) while it was touched within "
        "recent_window seconds and within the last N executions: at a human pace the "
        "seconds decide, at machine pace (nbclient, papermill, a fast stretch of cells) "
        "the count does. With evict='delete' only the seconds count, since a wrong "
        "guess would lose the value. 0: the seconds alone.",
    ).tag(config=True)

    temporary_patterns = List(
        Unicode(),
        default_value=["_temp_*", "_out_*"],
        help="Glob patterns of temporary names that every cleanup deletes "
        "(unless preserved or touched within recent_window).",
    ).tag(config=True)

    evict_min_bytes = Integer(
        1 << 20,
        help="Stale values smaller than this (bytes) are always kept; larger ones "
        "are eligible for eviction (see `evict`).",
    ).tag(config=True)

    # -- triggers --------------------------------------------------------------------
    cleanup_interval = Integer(
        100, help="Run a cleanup after every N user executions (0 disables)."
    ).tag(config=True)

    optimize_interval = Integer(
        50,
        help="Run a tensor/CUDA optimisation after every N user executions (0 disables).",
    ).tag(config=True)

    memory_threshold = Float(
        0.8,
        help="Memory pressure (0..1) above which a cleanup and an optimisation run "
        "(0 disables the pressure trigger). Pressure is the larger of kernel RSS "
        "(with children) over the effective limit and, for each initialised CUDA "
        "device, reserved over total memory.",
    ).tag(config=True)

    memory_limit = Integer(
        0,
        help="The memory budget in bytes. 0 means: the cgroup limit when lower than "
        "physical RAM, else physical RAM. Pressure is the kernel's (and its children's) "
        "RssAnon + RssShmem over this limit: memory the OS cannot reclaim, which is what "
        "gets a kernel killed. Above memory_threshold a cleanup pages out stale values, "
        "then the least recently used ones, until pressure is below memory_low_watermark.",
    ).tag(config=True)

    memory_low_watermark = Float(
        0.7,
        help="Where a memory-pressure cleanup stops paging out (fraction of memory_limit, "
        "at most memory_threshold). The gap between the two is the hysteresis that keeps "
        "the budget from paging at every cell.",
    ).tag(config=True)

    pressure_cooldown = Integer(
        10,
        help="After a pressure-triggered cleanup, do not trigger again within this "
        "many executions unless pressure rose since.",
    ).tag(config=True)

    idle_timeout = Float(
        300.0,
        help="Seconds without an execution after which one cleanup and one "
        "optimisation run (0 disables). Never fires while a cell runs.",
    ).tag(config=True)

    # -- cleanup ---------------------------------------------------------------------
    output_cache_keep = Integer(
        3,
        help="A cleanup releases output-cache entries (Out[N], _N, _, __, ___) older "
        "than the last N executions, unless touched within recent_window. An entry whose "
        "value is at least evict_min_bytes goes sooner: after the Nth cell since its own, "
        "unless a cell since names it (_N, Out) or _, __, ___ still hold it.",
    ).tag(config=True)

    evict = CaselessStrEnum(
        ["page", "off", "delete"],
        default_value="page",
        help="What a cleanup does with stale values of at least evict_min_bytes: "
        "'page' moves the memory of their CPU tensors and numpy arrays (pandas blocks "
        "included) out of RAM in place: the pages are written to a file and that file "
        "is mapped over the same addresses, so every object stays exactly as it was and "
        "is read back from disk on use (other values stay in memory); 'off' keeps them "
        "in memory; 'delete' deletes them (Greed.js's behaviour: the values are lost).",
    ).tag(config=True)

    paging_dir = Unicode(
        "",
        help="Directory for paged-out memory ('~' is expanded). Its file has no name "
        "(O_TMPFILE, or unlinked as soon as it is made): nothing is ever left in it, and the "
        "directory itself is never changed or scanned. Refused, with the reason and the "
        "directory used instead in the log and %greed status: a directory that is missing, "
        "not a directory, read-only, on /proc, sysfs, cgroupfs or another pseudo "
        "filesystem, in RAM (tmpfs, ramfs), on a network or FUSE filesystem, or on a "
        "removable device. Default: the first usable of $TMPDIR (or /tmp), /var/tmp and "
        "~/.cache.",
    ).tag(config=True)

    paging_max_bytes = Integer(
        0,
        help="Most bytes paged out to disk at a time; beyond it stale values stay in "
        "memory. 0: half the free disk at the paging directory, capped at 50 GiB.",
    ).tag(config=True)

    gc_freeze = Bool(
        False,
        help="After each full collection (and after a cell that imported modules) move "
        "the surviving heap to the permanent generation with gc.freeze(), so later "
        "collections cost time proportional to newer objects only. Off by default "
        "because frozen objects' reference cycles are then invisible to every "
        "collection, your own `gc.collect()` included (`del model; gc.collect()` would "
        "not free a model held in a cycle), until `%greed cleanup --full`.",
    ).tag(config=True)

    oom_recovery = Bool(
        True,
        help="After a cell fails with an out-of-memory error (torch.OutOfMemoryError, "
        "MemoryError, or a RuntimeError saying 'out of memory'), release the error's "
        "frames and run an emergency cleanup and optimisation, so the next cell can run "
        "without a restart. A line under the traceback says what was reclaimed.",
    ).tag(config=True)

    guard_threshold = Float(
        0.95,
        help="While a cell runs, the kernel watches its non-reclaimable memory (RssAnon + "
        "RssShmem, its children included) against the limit (memory_limit, else the "
        "cgroup's, else RAM). At this fraction of the limit the cell is stopped with a "
        "MemoryError, before the out-of-memory killer would kill the kernel; the cell's "
        "partial effects stay, as after an interrupt, and the out-of-memory recovery "
        "runs (oom_recovery). 0 disables the guard.",
    ).tag(config=True)

    # -- checkpoints -----------------------------------------------------------------
    checkpoint = CaselessStrEnum(
        ["auto", "manual", "off"],
        default_value="auto",
        help="Session checkpoints, so that variables outlive the kernel: 'auto' brings "
        "this notebook's checkpoint up to date after cells that changed something, once "
        "no cell has ended for half a second (in slices; a cell that starts stops it); "
        "'manual' writes one only on %greed checkpoint; 'off' neither writes nor mentions "
        "them. A new kernel says it found one under its first cell; %greed resume binds "
        "its names. What cannot be pickled (generators, open files, threads) is listed.",
    ).tag(config=True)

    checkpoint_dir = Unicode(
        "",
        help="Directory of the checkpoints ('~' is expanded), one 0700 subdirectory per "
        "notebook. Refused when another user owns it or group or others may write it. "
        "Default: greed/sessions under the Jupyter data directory.",
    ).tag(config=True)

    checkpoint_max_bytes = Integer(
        0,
        help="Most bytes of disk a notebook's checkpoints use: older checkpoints go "
        "first, the latest is always kept, and what does not fit even alone is left out "
        "and named. 0: 20 GiB, at most half the free disk at checkpoint_dir.",
    ).tag(config=True)

    session_name = Unicode(
        "",
        help="Which notebook this kernel belongs to, for its checkpoints and the record "
        "of how its previous kernel died, when JPY_SESSION_NAME (set by jupyter-server to "
        "the notebook's path) is not set. Default: the kernel id of the connection file.",
    ).tag(config=True)

    @validate("memory_threshold", "memory_low_watermark", "guard_threshold")
    def _check_threshold(self, proposal: t.Any) -> float:
        value = proposal["value"]
        if not 0.0 <= value <= 1.0:
            name = proposal["trait"].name
            raise TraitError(f"{name} must be between 0 and 1, got {value!r}")
        return value

    @validate(
        "cleanup_interval",
        "optimize_interval",
        "memory_limit",
        "pressure_cooldown",
        "output_cache_keep",
        "recent_cells",
        "evict_min_bytes",
        "paging_max_bytes",
        "checkpoint_max_bytes",
    )
    def _check_non_negative_int(self, proposal: t.Any) -> int:
        value = proposal["value"]
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must be >= 0, got {value!r}")
        return value

    @validate("recent_window", "idle_timeout")
    def _check_non_negative_float(self, proposal: t.Any) -> float:
        value = proposal["value"]
        if not value >= 0:  # also rejects NaN
            raise TraitError(f"{proposal['trait'].name} must be >= 0, got {value!r}")
        return value

    # -- wiring ----------------------------------------------------------------------
    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        from .engine.greed import Greed
        from .frontends.channel import Channel
        from .frontends.magics import GreedMagics

        identity = self._identity()
        record, previous = self._kernel_record(identity)
        self.greed = Greed(
            self.shell,
            parent=self,
            log=self.log,
            schedule=self._call_later,
            publish=lambda method, params: self.greed_channel.notify(method, params),
            record=record,
            previous=previous,
            identity=identity,
        )
        self.greed_channel = Channel(
            service=self.greed.service,
            log=self.log,
            on_main_thread=lambda fn: self.io_loop.add_callback(fn),
        )
        self.greed.register()
        self.greed_channel.register(self.comm_manager)
        self.shell.register_magics(GreedMagics(self.shell, self.greed.service))

    def _identity(self) -> str | None:
        """Which notebook this kernel belongs to (session/identity.py), or None."""
        from .session.identity import notebook_identity

        connection_file = getattr(self.parent, "connection_file", "") or ""
        return notebook_identity(os.environ, self.session_name, connection_file)

    def _kernel_record(self, identity: str | None) -> tuple[t.Any, t.Any]:
        """This kernel's record in the Jupyter runtime directory, and how the previous
        kernel of the same notebook died, if it did (session/); (None, None) for a
        kernel that cannot tell which notebook it belongs to."""
        if identity is None:
            return None, None
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            from .session.previous import previous, prune
            from .session.record import KernelRecord

            runtime, now = jupyter_runtime_dir(), time.time()
            died = previous(runtime, identity, now=now)
            prune(runtime, now=now)
            record = KernelRecord.create(runtime, identity, fault_handler=True)
            return record, died
        except Exception:
            self.log.exception("greed: the kernel record is unavailable")
            return None, None

    def _call_later(self, delay: float, callback: t.Callable[[], None]) -> object:
        """Run *callback* on the main thread *delay* seconds after the messages this
        request has queued so far (its idle status included) have gone out.

        Called while a request is handled, a ``call_later`` would count from before
        the reply: the main thread could then hold the GIL while the IOPub thread
        still has the idle status to send. So: once the request is done (the next turn
        of the event loop), queue behind everything on the IOPub thread, and from there
        start the timer on the main thread. Returns a handle (never None)."""
        loop = self.io_loop
        iopub = self.iopub_thread

        def timer() -> None:
            loop.add_callback(loop.call_later, delay, callback)

        def behind_the_messages() -> None:
            if iopub is None:
                timer()
            else:
                iopub.schedule(timer)  # runs on the IOPub thread, after the idle status

        loop.add_callback(behind_the_messages)
        return timer

    async def do_shutdown(self, restart: bool) -> t.Any:
        """Shut the engine down, then as IPython does. A request on the control channel
        comes on ipykernel's control thread, and the engine's work in slices runs on the
        main thread: the engine's shutdown is handed to the main thread's loop."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def shut_down() -> None:
            try:
                self.greed.shutdown()
            except Exception:
                self.log.exception("greed: shutting down the engine failed")
            finally:
                done.set_result(None)

        if threading.current_thread() is threading.main_thread():
            shut_down()
        else:
            self.io_loop.add_callback(shut_down)
            try:
                await asyncio.wait_for(asyncio.wrap_future(done), SHUTDOWN_WAIT_S)
            except asyncio.TimeoutError:
                self.log.warning(
                    "greed: the engine did not shut down within %.0f s (a cell is running)",
                    SHUTDOWN_WAIT_S,
                )
        return super().do_shutdown(restart)

    async def do_execute(self, *args: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
        """Run the request as IPython does; then what must be said under the cell
        (before the reply), and the rest scheduled after the reply is sent."""
        greed = self.greed
        greed.begin()
        try:
            return await super().do_execute(*args, **kwargs)
        finally:
            greed.cell_done()

    # -- kernel_info -------------------------------------------------------------------
    @property
    def banner(self) -> str:  # type: ignore[override]
        base = super().banner or ""
        return f"Greed {__version__}: a PyTorch kernel that keeps memory flat.\n{base}"
