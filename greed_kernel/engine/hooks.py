"""Cell events in: IPython's shell events and the trees it compiles, to the tracker.

:class:`CellHooks` connects to ``pre_run_cell`` and ``post_run_cell`` and sees every
tree IPython compiles during a user cell. This is the hot path: while the cell runs
it only keeps the trees (a list append). When the cell ends it counts and times it
(:class:`~greed_kernel.engine.stats.CellCounts`) and triggers an engine event only when
the cell failed (``cell_failed``, with a :class:`CellEnd`), put a result in the output
cache (``cell_output``) or work fell due (``work_due``; see events.py).
:meth:`CellHooks.stamp`, which the engine calls after a reply once some cells are
waiting (or before anything reads the stamps), scans the trees (analysis.scope) and
stamps the names each cell touched with the cell's own number and start time. A cell
run again (the same source) is not scanned again: the names of recent sources are
remembered, and its tree is not kept (freed where python3 frees it). An ordinary cell
touches few objects, calls only the shell's events of ours, and keeps nothing more.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import time
import typing as t
from collections.abc import Callable

from ..analysis.cellnames import CellNames, merge
from ..analysis.scope import scan_tree
from ..analysis.syntax import scan_tokens
from ..analysis.tracker import Tracker
from .component import Clock
from .events import CellEnd, Events
from .stats import CellCounts

#: Cells whose names wait to be scanned before the engine has them scanned after a
#: reply (readers of the stamps scan what waits first).
STAMP_BATCH = 32
#: ... or fewer cells, once their source adds up to this many characters (their trees
#: are kept until then).
STAMP_BATCH_CHARS = 100_000
#: Sources run again (their names known) wait too, without a tree, each by its last run
#: only: at most this many.
STAMP_MAX_CELLS = 1024
#: The names of this many recent sources are kept: a cell run again is not scanned again
#: (its tree is its source's while the shell has no transformers of the user's).
SCANNED_SOURCES = 256
#: ... each of at most this many characters (a longer source is not looked up: its key
#: would be hashed in every cell).
SCANNED_SOURCE_CHARS = 10_000
#: The shell's transformers that could make a source's tree differ from run to run.
_TRANSFORMERS = ("ast_transformers", "input_transformers_post")

#: Types of cell results too small ever to be released early (cell_output is not said).
_SMALL_RESULTS = frozenset({type(None), bool, int, float, complex})


class Known:
    """A source scanned before: its names, and its last run while that waits to be
    stamped. The hooks find it when a cell starts (one dictionary look-up) and, when the
    cell ends, write its number and start time here: no look-up, no new object."""

    __slots__ = ("names", "number", "source", "started", "waiting")

    def __init__(self, source: str, names: CellNames) -> None:
        self.source = source
        self.names = names
        self.number = 0
        self.started = 0.0
        self.waiting = False  # in CellHooks.reruns


class Compiled(t.NamedTuple):
    """What a user cell compiled, to be scanned after its reply."""

    number: int
    started: float  # the clock's time when the cell began
    trees: list[ast.AST]
    source: str  # for the token fallback, when a tree is missing or too deep
    #: the names of its first tree, when the same source was scanned before (then
    #: *trees* holds only the trees compiled after it, by magics: usually none)
    names: CellNames | None
    #: the shell had no transformers of the user's when it ran: its tree is its source's
    plain: bool


class CellHooks:
    """Shell events -> cell counts and tracker stamps, and the engine events
    ``cell_failed`` when a user cell raised, ``work_due`` when work fell due after one (a
    mark of *counts* reached, or cells wait to be scanned), and ``cell_started`` when a
    user cell starts after :meth:`tell_at_next_cell`.

    A plain class with slots, not a component: it reads no settings, and its methods
    run in every cell."""

    __slots__ = (
        "_ast_transformers",
        "_info",
        "_interrupted",
        "_known",
        "_number",
        "_plain",
        "_post_transformers",
        "_skip",
        "_started",
        "_transform",
        "_trees",
        "_unscanned",
        "_unstamped_chars",
        "clock",
        "counts",
        "events",
        "log",
        "reruns",
        "scanned",
        "shell",
        "start_work",
        "tracker",
        "unstamped",
    )

    def __init__(
        self,
        shell: t.Any,
        tracker: Tracker,
        counts: CellCounts,
        events: Events,
        *,
        log: logging.Logger | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.shell = shell
        self.tracker = tracker
        self.counts = counts
        self.events = events
        self.log = log or logging.getLogger(__name__)
        self.clock = clock
        #: trigger cell_started when the next user cell starts (tell_at_next_cell)
        self.start_work = False
        # the user cell in progress: its ExecutionInfo and start time (the clock's)
        self._info: t.Any = None
        self._started = 0.0
        self._number = 0
        # the trees it compiled, but for the first one of a source scanned before: a
        # list handed over with the cell when it has trees, else kept for the next
        self._trees: list[ast.AST] = []
        self._plain = True  # no transformer of the user's when it started
        self._known: Known | None = None  # its source was scanned before: its names
        self._skip = False  # ... and its first tree is still to come (not to be kept)
        self._interrupted = False  # a KeyboardInterrupt reached pre_run_cell
        self._transform: Callable[[ast.AST], ast.AST] | None = None
        #: cells whose names are not stamped yet, oldest first: (number, started, trees,
        #: source, names, plain), tuples on the hot path (see Compiled)
        self.unstamped: list[tuple[int, float, list[ast.AST], str, CellNames | None, bool]] = []
        self._unscanned = 0  # of them, cells to scan
        self._unstamped_chars = 0  # ... and their characters
        #: sources run again since the last stamps, each once, with its last run (a
        #: cell run again writes over it: what waits is as large as the sources are many)
        self.reruns: list[Known] = []
        # the shell's lists of the user's transformers, read in every cell: the lists
        # themselves, not the traits (the traits are observed for a new list)
        self._ast_transformers: list[t.Any] = []
        self._post_transformers: list[t.Any] = []
        #: recently scanned sources and their names (see SCANNED_SOURCES), oldest first
        self.scanned: dict[str, Known] = {}

    @property
    def running(self) -> bool:
        """A user cell is running (or awaiting)."""
        return self._info is not None

    @property
    def number(self) -> int:
        """The execution number of the cell running, or of the last one."""
        if self._info is not None:
            return self.shell.execution_count - 1  # IPython counted it before it ran
        return self._number

    @property
    def ended(self) -> int:
        return self._number  # the number of the last user cell that ended (0: none)

    def tell_at_next_cell(self, tell: bool = True) -> None:
        """Trigger ``cell_started`` when the next user cell starts (or no longer)."""
        self.start_work = tell

    # -- wiring ----------------------------------------------------------------------
    def register(self) -> None:
        """Connect to the shell's cell events and to the trees it compiles."""
        shell = self.shell
        self._ast_transformers = shell.ast_transformers
        self._post_transformers = shell.input_transformers_post
        shell.observe(self._new_transformers, names=list(_TRANSFORMERS))
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        # We see each tree IPython compiles by wrapping transform_ast rather than joining
        # shell.ast_transformers: any registered transformer makes IPython run
        # ast.fix_missing_locations over every cell, which alone costs more than our scan.
        shell_transform = shell.transform_ast
        on_tree = self.on_tree
        hooks = self

        def transform_ast(node: ast.AST) -> ast.AST:
            node = shell_transform(node)
            if hooks._skip:  # the first tree of a source scanned before: not kept
                hooks._skip = False
            else:
                on_tree(node)  # never raises, but for an interrupt before the cell
            return node

        self._transform = transform_ast
        shell.transform_ast = transform_ast

    def _new_transformers(self, change: t.Any) -> None:
        if change["name"] == "ast_transformers":
            self._ast_transformers = change["new"]
        else:
            self._post_transformers = change["new"]

    def unregister(self) -> None:
        """Disconnect; the shell compiles and runs as if we had never been there."""
        with contextlib.suppress(ValueError):  # not observed (unregistered twice)
            self.shell.unobserve(self._new_transformers, names=list(_TRANSFORMERS))
        for event, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            if callback in self.shell.events.callbacks.get(event, ()):
                self.shell.events.unregister(event, callback)
        if self._transform is not None and self.shell.__dict__.get("transform_ast") is (
            self._transform
        ):
            del self.shell.__dict__["transform_ast"]  # the class's method shows again
        self._transform = None

    # -- the hot path ------------------------------------------------------------------
    def pre_run_cell(self, info: t.Any) -> None:
        try:
            if self._info is not None:
                return  # a nested run_cell (%%capture, %run -i ...): part of the outer cell
            if info.silent or not info.store_history:
                return  # variable inspectors and the like: not an execution, touches nothing
            self._info = info
            self._started = self.clock()
            # no transformer of the user's: the cell's first tree is its source's, and
            # a source scanned before has its names already
            plain = self._plain = not (self._ast_transformers or self._post_transformers)
            known = None
            if plain:
                source = info.raw_cell
                if source and len(source) <= SCANNED_SOURCE_CHARS:
                    known = self.scanned.get(source)
            self._known = known
            self._skip = known is not None
            if self.start_work:
                self.start_work = False
                self.events.trigger("cell_started")
        except KeyboardInterrupt:
            # IPython's event manager would print and swallow it: the tree hook
            # stops the cell instead, before any of its code runs
            self._skip = False
            self._interrupted = True
        except Exception:
            self.log.exception("greed: pre_run_cell failed; the user's cell is unaffected")

    def on_tree(self, tree: ast.AST) -> None:
        """Called with every tree IPython compiles during a user cell (nested ones too).

        A KeyboardInterrupt that reached pre_run_cell goes through here: the user
        asked to stop the cell, and python3 would stop it at this point too."""
        if self._interrupted:  # it reached pre_run_cell: stop the cell here
            self._interrupted = False
            raise KeyboardInterrupt
        if self._info is not None:
            self._trees.append(tree)  # scanned after the reply (stamp)

    def post_run_cell(self, result: t.Any) -> None:
        try:
            info = self._info
            if info is None or result.info is not info:
                return
            self._info = None
            now = self.clock()
            started = self._started
            self._number = number = result.execution_count
            source = info.raw_cell or ""
            trees = self._trees
            known = None if self._skip else self._known  # None: its first tree never came
            self._skip = False
            if known is not None and not trees:  # only its last run is stamped
                known.number = number
                known.started = started
                due = False
                if not known.waiting:
                    known.waiting = True
                    self.reruns.append(known)
                    due = len(self.reruns) >= STAMP_MAX_CELLS
            else:
                plain = self._plain and not (self._ast_transformers or self._post_transformers)
                names = None if known is None else known.names
                self.unstamped.append((number, started, trees, source, names, plain))
                self._trees = []
                self._unscanned += 1
                self._unstamped_chars += len(source)
                due = self._unscanned >= STAMP_BATCH or self._unstamped_chars >= STAMP_BATCH_CHARS
            counts = self.counts
            counts.executions = executions = counts.executions + 1
            counts.seconds = total = counts.seconds + (now - started)
            counts.last_end = now
            counts.source = source
            error = result.error_in_exec
            if error is not None:
                shown = list(getattr(self.shell, "_last_traceback", None) or [])
                self.events.trigger("cell_failed", CellEnd(error, shown))
            elif type(result.result) not in _SMALL_RESULTS:
                self.events.trigger("cell_output", number)
            if (
                due
                or executions >= counts.due_executions
                or number >= counts.release_at
                or total >= counts.due_seconds
                or counts.idle_to_arm
                or counts.checkpoint_to_arm
                or (counts.freeze_check is not None and counts.freeze_check())
            ):
                self.events.trigger("work_due")
        except (Exception, KeyboardInterrupt):
            self.log.exception("greed: post_run_cell failed; the user's cell is unaffected")

    # -- after the reply ---------------------------------------------------------------
    def stamp(self, running: bool = False) -> None:
        """Scan what the ended cells compiled and stamp the names they touched. Called
        after the reply, and before anything reads the stamps (a cleanup, a view);
        *running*: the running cell's trees so far too (``%greed why`` in that cell)."""
        waiting, self.unstamped = self.unstamped, []
        reruns, self.reruns = self.reruns, []
        self._unscanned = self._unstamped_chars = 0
        pending = [Compiled(*cell) for cell in waiting]
        if reruns:
            for known in reruns:
                known.waiting = False
                pending.append(
                    Compiled(known.number, known.started, [], known.source, known.names, True)
                )
            pending.sort(key=lambda cell: cell.number)
        if running and self._info is not None:
            known = None if self._skip else self._known
            if self._trees or known is not None:
                trees = list(self._trees)
                names = None if known is None else known.names
                pending.append(Compiled(self.number, self._started, trees, "", names, False))
        # a source run again later in the batch stamps the same names after this run
        stamped: set[int] = set()
        newest_first: list[Compiled] = []
        for cell in reversed(pending):
            if cell.names is not None and not cell.trees:
                if id(cell.names) in stamped:
                    continue
                stamped.add(id(cell.names))
            newest_first.append(cell)
        for cell in reversed(newest_first):
            try:
                self._stamp(cell)
            except Exception:
                self.log.exception("greed: scanning cell %d failed", cell.number)

    def _stamp(self, cell: Compiled) -> None:
        names = cell.names
        if names is None or cell.trees:
            names = self._scan(cell)
        self.tracker.touch(names.touched, cell.number, cell.started)

    def _scan(self, cell: Compiled) -> CellNames:
        """The names of the cell's trees (and of its known first tree, if any)."""
        remember = cell.names is None and cell.plain and len(cell.trees) == 1 and bool(cell.source)
        if remember:
            known = self.scanned.get(cell.source)  # run before in the same batch
            if known is not None:
                return known.names
        names: CellNames | None = cell.names
        fallback = not cell.trees
        for tree in cell.trees:
            found = scan_tree(tree)
            if not found.parsed:  # too deep for the scanner: every token counts
                fallback = True
                break
            names = found if names is None else merge(names, found)
        if fallback or names is None:
            # it never compiled (SyntaxError, deep nesting, ...): every token counts
            names = scan_tokens(cell.source)
            self.log.debug("greed: cell did not parse; %d names from its tokens", len(names.reads))
        elif remember:
            self._remember(cell.source, names)
        return names

    def _remember(self, source: str, names: CellNames) -> None:
        if len(source) > SCANNED_SOURCE_CHARS:
            return
        scanned = self.scanned
        if len(scanned) >= SCANNED_SOURCES:
            del scanned[next(iter(scanned))]  # the oldest
        scanned[source] = Known(source, names)
