"""The same cells on python3 and on greed evicting after every cell: identical outputs.

The corpus (tests/diff_corpus.py) covers every way a value could be lost or
changed by eviction; Hypothesis then generates programs of definitions,
rebinding (conditional and failing), aliases, in-place writes, views,
containers, gradients with backward and step in separate cells, generators,
closures, ``globals()``, ``del`` and ``%reset_selective``. ``make test`` runs a
quick pass; ``make fuzz`` sets GREED_FUZZ_EXAMPLES for a longer one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest
from diff_corpus import PROGRAMS
from differential import Differential
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HAS_TORCH = importlib.util.find_spec("torch") is not None
EXAMPLES = int(os.environ.get("GREED_FUZZ_EXAMPLES", "8"))

pytestmark = pytest.mark.timeout(max(600, EXAMPLES * 20))


@pytest.fixture(scope="module")
def diff(jupyter_sandbox: object) -> Iterator[Differential]:
    with Differential() as d:
        yield d


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_corpus_program_behaves_as_on_python3(diff: Differential, name: str) -> None:
    needs_torch, cells = PROGRAMS[name]
    if needs_torch and not HAS_TORCH:
        pytest.skip("needs torch, which this interpreter's venv does not have")
    assert diff.run(cells) == []


def test_the_corpus_really_paged(diff: Differential) -> None:
    """A differential run means something only if greed paged memory out in it."""
    assert diff.run([f"probe = np.random.rand({1 << 20})", "probe.sum() > 0"]) == []
    assert diff.paged_total() > 0


# -- generated programs -----------------------------------------------------------------
NAMES = ("p", "q", "r")
SIZES = (1 << 14, 1 << 17)


def _maker(lib: str, size: int) -> str:
    if lib == "torch":
        return f"torch.randn({size})"
    return f"np.random.rand({size})"


def cell_templates(libs: tuple[str, ...]) -> st.SearchStrategy[str]:
    name = st.sampled_from(NAMES)
    size = st.sampled_from(SIZES)
    lib = st.sampled_from(libs)
    define = st.builds(lambda n, lb, s: f"{n} = {_maker(lb, s)}", name, lib, size)
    alias = st.builds(lambda a, b: f"{a} = {b}", name, name)
    cond = st.builds(
        lambda n, c, lb: f"if {c}:\n    {n} = {_maker(lb, 1 << 14)}",
        name,
        st.sampled_from(["False", "True"]),
        lib,
    )
    failing = st.builds(lambda n: f"{n} = np.load('/nonexistent/{n}.npy')", name)
    mutate = st.builds(
        lambda n, op: f"{n}{op}", name, st.sampled_from([" += 1", "[0] = 7", " *= 2"])
    )
    view = st.builds(lambda a, b: f"{a} = {b}[3:9000]", name, name)
    container = st.builds(lambda a, b: f"box = [{a}, {{'k': {b}}}]", name, name)
    show = st.builds(lambda n: f"print(cs({n}))", name)
    show_box = st.just("print([cs(v) for v in box[:1]], cs(box[1]['k']) if len(box) > 1 else 0)")
    gen = st.builds(lambda n: f"it = (float(v) for v in {n}[:4])\nprint(next(it))", name) | st.just(
        "print(next(it, 'done'))"
    )
    closure = st.builds(lambda n: f"fn = lambda: cs({n})", name) | st.just("print(fn())")
    glob = st.just("print(sorted(k for k in globals() if k in ('p', 'q', 'r', 'box')))")
    delete = st.builds(lambda n: f"del {n}", name)
    reset = st.builds(lambda n: f"%reset_selective -f ^{n}$", name)
    options = [
        define,
        define,
        alias,
        cond,
        failing,
        mutate,
        view,
        container,
        show,
        show,
        show_box,
        gen,
        closure,
        glob,
        delete,
        reset,
    ]
    if "torch" in libs:
        options += [
            st.just("w = torch.randn(4096, requires_grad=True)\nloss = (w * w).sum()"),
            st.just("loss.backward()\nprint(cs(w.grad))"),
            st.just("with torch.no_grad():\n    w -= 0.1 * w.grad\nprint(cs(w))"),
        ]
    return st.one_of(*options)


PROGRAM = st.lists(cell_templates(("numpy", "torch") if HAS_TORCH else ("numpy",)), max_size=10)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(cells=PROGRAM)
def test_generated_programs_behave_as_on_python3(diff: Differential, cells: list[str]) -> None:
    assert diff.run(cells) == []
