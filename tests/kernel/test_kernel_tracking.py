"""Context tracking in a real kernel: what each cell touches, and what does not count."""

from __future__ import annotations

import ast

import pytest

pytestmark = pytest.mark.timeout(120)


def value(k, expr: str):
    return ast.literal_eval(k.eval(expr))


def last_cell(k, name: str) -> int | None:
    """The cell number that last touched *name*, or None (as `%greed why` reads it)."""
    return value(k, f"get_ipython().kernel.greed.service.why({name!r})['lastTouchedCell']")


def executions(k) -> int:
    return value(k, "get_ipython().kernel.greed.service.stats()['executionCount']")


def test_indirect_use_through_session_functions_stamps_globals(kernel):
    kernel.execute("optimizer = object()\nscale = 2\nunrelated = 3")
    kernel.execute(
        "def step():\n    return helper() * scale\ndef helper():\n    optimizer\n    return 1"
    )
    for _ in range(2):
        kernel.execute("pass")
    r = kernel.execute("step()")
    cell = r.reply["execution_count"]
    assert last_cell(kernel, "optimizer") == cell
    assert last_cell(kernel, "scale") == cell
    assert last_cell(kernel, "unrelated") < cell


def test_silent_and_no_history_requests_neither_count_nor_touch(kernel):
    kernel.execute("watched = 1")
    before, stamp = executions(kernel), last_cell(kernel, "watched")
    kernel.execute("watched + 1", silent=True)
    kernel.execute("watched + 2", store_history=False)
    kernel.execute("", user_expressions={"w": "watched"})
    assert executions(kernel) == before
    assert last_cell(kernel, "watched") == stamp


def test_capture_cell_is_one_execution_and_its_body_counts(kernel):
    kernel.execute("inner = 5")
    before = executions(kernel)
    r = kernel.execute("%%capture out\nprint(inner)")
    assert r.status == "ok"
    assert executions(kernel) == before + 1
    assert last_cell(kernel, "inner") == r.reply["execution_count"]


def test_magics_are_tracked_after_transformation(kernel):
    kernel.execute("def f(v):\n    return v\nyy = 1")
    r = kernel.execute("%time xx = f(yy)")
    cell = r.reply["execution_count"]
    assert last_cell(kernel, "yy") == cell and last_cell(kernel, "xx") == cell


def test_output_references_touch_the_output(kernel):
    r = kernel.execute("41 + 1")
    n = r.reply["execution_count"]
    r = kernel.execute(f"Out[{n}] * 2")
    assert last_cell(kernel, f"_{n}") == r.reply["execution_count"]


@pytest.mark.parametrize(
    "code",
    [
        "def broken(:\n    seen_in_syntax_error = 1",
        "x = 1\x00",
        "(" * 5000 + ")" * 5000,
        # IPython takes ~4 s to compile this (23 s for 600,000 items, python3 alike)
        "big_list = [" + "1, " * 150_000 + "]",
        "huge_text = '" + "x" * 5_000_000 + "'\nhuge_text_len = len(huge_text)",
    ],
    ids=["syntax-error", "null-byte", "deep-nesting", "450KB-list", "5MB"],
)
def test_bad_cells_never_break_tracking(kernel, code):
    before = executions(kernel)
    r = kernel.execute(code, timeout=120)
    assert "greed" not in r.stderr.lower()
    assert executions(kernel) == before + 1  # a failed cell still counts
    assert kernel.execute("1 + 1").data == "2"


def test_tokens_of_an_unparsable_cell_count_as_touched(kernel):
    kernel.execute("token_target = 1")
    r = kernel.execute("token_target +* 2")
    assert r.status == "error"
    assert last_cell(kernel, "token_target") == r.reply["execution_count"]


def test_why_names_the_rule_and_the_last_touch(kernel):
    r = kernel.execute("model = 1\nplain = [0] * 10")
    cell = r.reply["execution_count"]
    r = kernel.execute("%greed why model")
    assert "GreedKernel.preserve" in r.stdout and f"cell {cell}" in r.stdout
    r = kernel.execute("%greed why plain")
    assert "recent" in r.stdout and "s ago" in r.stdout
    r = kernel.execute("%greed preserve plain\n%greed why plain")
    assert "marked with %greed preserve" in r.stdout
    r = kernel.execute("%greed why")
    assert r.status == "error" and "usage: %greed why NAME" in r.stderr  # a UsageError
