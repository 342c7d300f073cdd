"""Cell events in: IPython's shell events and the trees it compiles, to the tracker.

:class:`CellHooks` connects to ``pre_run_cell`` and ``post_run_cell`` and sees every
tree IPython compiles during a user cell. Before the cell's code runs it stamps
the names the cell touches (:mod:`greed_kernel.scope`); when the cell ends it hands
a :class:`CellEnd` to its ``on_end`` callback. This is the hot path: everything
here runs for every cell, so it only scans and stamps.
"""

from __future__ import annotations

import ast
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

from .cellnames import CellNames, merge
from .component import Component
from .scope import scan_tree
from .syntax import scan_tokens
from .tracker import Tracker


@dataclass(frozen=True, slots=True)
class CellEnd:
    """A user cell that ended: its number, how long it ran, and how it failed."""

    number: int
    seconds: float
    error: BaseException | None
    #: the traceback as shown (ipykernel keeps it only until the next cell)
    shown_traceback: list[str]


class CellHooks(Component):
    """Shell events -> tracker stamps, and one :class:`CellEnd` per user cell."""

    def __init__(
        self,
        shell: t.Any,
        tracker: Tracker,
        on_end: Callable[[CellEnd], None],
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shell = shell
        self.tracker = tracker
        self.on_end = on_end
        # the user cell in progress: its ExecutionInfo, start time and scanned names
        self._info: t.Any = None
        self._start = 0.0
        self._number = 0
        self._names: CellNames | None = None
        self._token_fallback = False
        self._interrupted = False  # a KeyboardInterrupt reached pre_run_cell
        self._transform: Callable[[ast.AST], ast.AST] | None = None

    @property
    def running(self) -> bool:
        """A user cell is running (or awaiting)."""
        return self._info is not None

    @property
    def number(self) -> int:
        """The execution number of the cell running, or of the last one."""
        return self._number

    # -- wiring ----------------------------------------------------------------------
    def register(self) -> None:
        """Connect to the shell's cell events and to the trees it compiles."""
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        # We see each tree IPython compiles by wrapping transform_ast rather than joining
        # shell.ast_transformers: any registered transformer makes IPython run
        # ast.fix_missing_locations over every cell, which alone costs more than our
        # scan (measured ~60 us for a 5-line cell, ~5 ms for 500 lines).
        shell_transform = self.shell.transform_ast

        def transform_ast(node: ast.AST) -> ast.AST:
            node = shell_transform(node)
            self.on_tree(node)  # never raises, but for an interrupt before the cell
            return node

        self._transform = transform_ast
        self.shell.transform_ast = transform_ast

    def unregister(self) -> None:
        """Disconnect; the shell compiles and runs as if we had never been there."""
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
            if getattr(info, "silent", False) or not getattr(info, "store_history", False):
                return  # variable inspectors and the like: not an execution, touches nothing
            self._info = info
            # IPython has already counted this cell: its number is one less
            self._number = self.shell.execution_count - 1
            self._start = time.perf_counter()
            self._names = None
        except KeyboardInterrupt:
            # IPython's event manager would print and swallow it: the tree hook
            # stops the cell instead, before any of its code runs
            self._interrupted = True
        except Exception:
            self.log.exception("greed: pre_run_cell failed; the user's cell is unaffected")

    def on_tree(self, tree: ast.AST) -> None:
        """Called with every tree IPython compiles during a user cell (nested ones too).

        A KeyboardInterrupt goes through: the user asked to stop the cell, and python3
        would stop it at this point too."""
        if self._interrupted:  # it reached pre_run_cell: stop the cell here
            self._interrupted = False
            raise KeyboardInterrupt
        if self._info is None:
            return
        try:
            names = scan_tree(tree)
            if not names.parsed:  # too deep for the scanner: post_run_cell reads the tokens
                self._token_fallback = True
                return
            self._names = names if self._names is None else merge(self._names, names)
            # stamp now, before the cell runs: what it touches is in use
            self.tracker.touch(names.touched, self._number, self.clock())
        except Exception:
            self.log.exception("greed: on_tree failed; the user's cell is unaffected")

    def post_run_cell(self, result: t.Any) -> None:
        try:
            self._post_run_cell(result)
        except (Exception, KeyboardInterrupt):
            self.log.exception("greed: post_run_cell failed; the user's cell is unaffected")

    def _post_run_cell(self, result: t.Any) -> None:
        info = self._info
        if info is None or getattr(result, "info", None) is not info:
            return
        self._info = None
        if self._names is None or self._token_fallback:
            # it never compiled (SyntaxError, deep nesting, ...): every token counts
            names = scan_tokens(info.raw_cell or "")
            self.log.debug("greed: cell did not parse; %d names from its tokens", len(names.reads))
            self.tracker.touch(names.touched, self._number, self.clock())
        self._names = None
        self._token_fallback = False
        error = getattr(result, "error_in_exec", None)
        shown = list(getattr(self.shell, "_last_traceback", None) or []) if error else []
        self.on_end(CellEnd(self._number, time.perf_counter() - self._start, error, shown))
