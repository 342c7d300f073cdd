"""Random cell sequences against the engine, in process, on a real IPython shell.

A hypothesis state machine runs cells on an ``InteractiveShell`` with a Greed
``Greed`` attached the way the kernel attaches it (events, AST transformer,
``%greed`` magic, ``cell_done`` after each cell), with tiny intervals so
that cleanups and optimisations happen every few steps. After every step:

* every non-temporary variable the machine defined still exists, is the same
  object and has the same value (numpy arrays among them are paged out in place
  by the cleanups: eviction is on);
* a temporary (``_temp_*``, ``_out_*``) is either still the same object or
  gone, and once gone it stays gone;
* no cell failed that should not have, and the engine logged no error (each of
  its entry points swallows and logs failures, so a logged error is a bug).
"""

from __future__ import annotations

import copy
import gc
import logging
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from inprocess import Errors, GreedSettings
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from greed_kernel.engine.greed import Greed
from greed_kernel.frontends.magics import GreedMagics
from greed_kernel.kernel import DEFAULT_PRESERVE

pytestmark = pytest.mark.timeout(180)

#: Names from GreedKernel's default preserve list, and ordinary names.
KEPT_NAMES = ("model", "data", "losses", "results")
ORDINARY_NAMES = ("a", "b", "weights", "val_loss")
TEMP_NAMES = ("_temp_0", "_temp_1", "_temp_big", "_out_a", "_out_b")
VARIABLES = KEPT_NAMES + ORDINARY_NAMES
_MISSING = object()

try:
    import numpy as np
except ImportError:  # the array rule is skipped
    np = None


def same_value(a: t.Any, b: t.Any) -> bool:
    if np is not None and isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return bool(a == b)


values = st.lists(st.integers(-1000, 1000), max_size=5)


def engine_settings(paging_dir: Path) -> t.Any:
    """GreedKernel's traits (their defaults), with tiny intervals."""
    return GreedSettings(
        paging_dir=str(paging_dir),
        preserve=list(DEFAULT_PRESERVE),
        recent_window=0.0,
        evict_min_bytes=64 << 10,
        cleanup_interval=2,
        optimize_interval=3,
        memory_threshold=0.0,
        idle_timeout=0.0,
        output_cache_keep=1,
        evict="page",
        # Frozen survivors keep each collection to the objects new since the last one:
        # this process's heap is large (hypothesis, torch from other tests), and a
        # cleanup every two cells would walk all of it. gc_freeze's default (off, as
        # python3) is what tests/kernel/test_differential.py checks; the fixture unfreezes.
        gc_freeze=True,
        oom_recovery=False,
    )


@pytest.fixture(scope="module")
def shell(jupyter_sandbox: t.Any) -> Iterator[InteractiveShell]:
    """One in-process IPython shell (history in memory) for the whole module."""
    created = not InteractiveShell.initialized()
    c = Config()
    c.HistoryManager.hist_file = ":memory:"
    c.InteractiveShell.colors = "nocolor"
    sh = InteractiveShell.instance(config=c)
    yield sh
    gc.unfreeze()  # the engines froze the heap (gc_freeze)
    if created:
        InteractiveShell.clear_instance()


class CellMachine(RuleBasedStateMachine):
    def __init__(self, shell: InteractiveShell, paging_dir: Path) -> None:
        super().__init__()
        self.shell = shell
        shell.reset(new_session=False)
        self.config = engine_settings(paging_dir)
        self.errors = Errors()
        self.log = logging.getLogger(f"greed-state-machine-{id(self)}")
        self.log.propagate = False
        self.log.addHandler(self.errors)
        self.engine = Greed(shell, parent=self.config, log=self.log)
        # the engine hooks into the shell (events, and transform_ast or ast_transformers);
        # remember the shell's own transform_ast so that teardown can unhook it
        self._own_transform = shell.__dict__.get("transform_ast", _MISSING)
        self.engine.register()
        shell.register_magics(GreedMagics(shell, self.engine.service))
        #: name -> (object, a deep copy of its value when defined)
        self.kept: dict[str, tuple[t.Any, t.Any]] = {}
        #: temporary name -> object, while it may still exist
        self.temps: dict[str, t.Any] = {}
        self.gone: set[str] = set()
        self.counter = 0

    def teardown(self) -> None:
        shell = self.shell
        self.engine.unregister()
        if self._own_transform is _MISSING:
            shell.__dict__.pop("transform_ast", None)
        else:
            shell.transform_ast = self._own_transform
        self.log.removeHandler(self.errors)
        shell.reset(new_session=False)

    # -- plumbing ----------------------------------------------------------------------
    def cell(
        self,
        code: str,
        expect_error: bool = False,
        before_triggers: t.Callable[[t.Any], None] | None = None,
    ) -> t.Any:
        """Run a cell as the kernel does: run_cell, the reply (here: checking the result
        and calling *before_triggers*), then what the engine does after it."""
        self.engine.executing = True
        try:
            result = self.shell.run_cell(code, store_history=True)
        finally:
            self.engine.executing = False
        if expect_error:
            assert not result.success, code
        else:
            assert result.success, (code, result.error_before_exec, result.error_in_exec)
        if before_triggers is not None:
            before_triggers(result)
        self.engine.cell_done()  # no scheduler: the work after the reply runs at once
        return result

    @property
    def ns(self) -> dict[str, t.Any]:
        return self.shell.user_ns

    def keep(self, name: str) -> t.Callable[[t.Any], None]:
        """Record *name* as defined by the machine (before the triggers run)."""

        def record(result: t.Any) -> None:
            obj = self.ns[name]
            self.kept[name] = (obj, copy.deepcopy(obj))

        return record

    def track_temporary(self, name: str) -> t.Callable[[t.Any], None]:
        def record(result: t.Any) -> None:
            self.temps[name] = self.ns[name]
            self.gone.discard(name)

        return record

    def fresh_value(self, items: list[int]) -> list[t.Any]:
        self.counter += 1
        return [self.counter, *items]

    # -- rules -------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        self.cell("import time")

    @rule(name=st.sampled_from(VARIABLES), items=values)
    def define(self, name: str, items: list[int]) -> None:
        self.cell(f"{name} = {self.fresh_value(items)!r}", before_triggers=self.keep(name))

    @rule(name=st.sampled_from(VARIABLES), items=values)
    def define_in_function(self, name: str, items: list[int]) -> None:
        value = self.fresh_value(items)
        self.cell(
            f"def _set_it():\n    global {name}\n    {name} = {value!r}\n_set_it()",
            before_triggers=self.keep(name),
        )

    @precondition(lambda self: np is not None)
    @rule(name=st.sampled_from(VARIABLES), items=values)
    def define_array(self, name: str, items: list[int]) -> None:
        """Big enough to be paged out by the next cleanup (evict is on)."""
        start = self.fresh_value(items)[0]
        self.cell(
            f"import numpy as _np\n{name} = _np.arange({start}, {start} + (1 << 15), "
            "dtype='float64')\ndel _np",
            before_triggers=self.keep(name),
        )

    @precondition(lambda self: self.kept)
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.kept)))
        self.cell(f"print(len({name}), sum(x for x in {name}))")

    @precondition(lambda self: self.kept)
    @rule(data=st.data())
    def display(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.kept)))
        obj = self.kept[name][0]

        def shown(result: t.Any) -> None:
            assert result.result is obj

        self.cell(name, before_triggers=shown)

    @precondition(lambda self: self.kept)
    @rule(data=st.data())
    def display_copy(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.kept)))
        self.cell(f"{name}[:]")

    @precondition(lambda self: self.kept)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.kept)))
        self.cell(f"del {name}")
        del self.kept[name]

    @rule(items=values)
    def raise_in_function(self, items: list[int]) -> None:
        self.cell(
            f"def _fails():\n    held = {self.fresh_value(items)!r}\n    raise ValueError(held)\n"
            "_fails()",
            expect_error=True,
        )

    @rule()
    def syntax_error(self) -> None:
        self.cell("x = (", expect_error=True)

    @rule(name=st.sampled_from(TEMP_NAMES), items=values, show=st.booleans())
    def temporary(self, name: str, items: list[int], show: bool) -> None:
        code = f"{name} = {self.fresh_value(items)!r}" + (f"\n{name}" if show else "")
        self.cell(code, before_triggers=self.track_temporary(name))

    @precondition(lambda self: self.kept)
    @rule(name=st.sampled_from(TEMP_NAMES), data=st.data())
    def temporary_alias(self, name: str, data: st.DataObject) -> None:
        """``_temp = model``: deleting the temporary must not take ``model`` with it."""
        target = data.draw(st.sampled_from(sorted(self.kept)))
        track = self.track_temporary(name)

        def check(result: t.Any) -> None:
            assert self.ns[name] is self.kept[target][0]
            track(result)

        self.cell(f"{name} = {target}", before_triggers=check)

    @rule(command=st.sampled_from(["cleanup", "cleanup --full", "optimize", "vars", "stats"]))
    def magic(self, command: str) -> None:
        self.cell(f"%greed {command}")

    @rule()
    def sleep(self) -> None:
        self.cell("time.sleep(0)")

    @rule()
    def silent_expression(self) -> None:
        """What variable inspectors do: not an execution, must not count."""
        before = self.engine.stats.execution_count
        self.shell.run_cell("len(dir())", store_history=False, silent=True)
        self.engine.cell_done()
        assert self.engine.stats.execution_count == before

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def kept_names_are_intact(self) -> None:
        missing = object()
        for name, (obj, snapshot) in self.kept.items():
            current = self.ns.get(name, missing)
            assert current is not missing, f"{name} was deleted"
            assert current is obj, f"{name} is bound to another object"
            assert same_value(current, snapshot), f"{name} changed: {current!r} != {snapshot!r}"

    @invariant()
    def temporaries_only_disappear(self) -> None:
        missing = object()
        for name, obj in list(self.temps.items()):
            current = self.ns.get(name, missing)
            if current is missing:
                self.gone.add(name)
                del self.temps[name]
            else:
                assert current is obj, f"temporary {name} changed"
        for name in self.gone:
            assert name not in self.ns, f"temporary {name} came back"

    @invariant()
    def engine_logged_no_error(self) -> None:
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]


def test_random_cell_sequences(shell: InteractiveShell, tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: CellMachine(shell, tmp_path / "paging"),
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_cleanups_really_happen(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine's setting does trigger cleanups, and they delete temporaries: without
    this, the invariants above could hold vacuously."""
    machine = CellMachine(shell, tmp_path / "paging")
    try:
        machine.start()
        machine.cell("model = [1]\n_temp_0 = [2]\n_temp_1 = model")
        for _ in range(3):
            machine.cell("pass")
        assert machine.engine.stats.cleanup_count >= 1
        assert machine.engine.stats.optimize_count >= 1
        assert "_temp_0" not in machine.ns
        assert "_temp_1" not in machine.ns
        assert machine.ns["model"] == [1]
        machine.engine_logged_no_error()
        if np is not None:  # and eviction pages arrays out
            machine.define_array("weights", [])
            machine.cell("pass")
            assert machine.engine.service.paged().get("weights", 0) > 0
            machine.kept_names_are_intact()
    finally:
        machine.teardown()
