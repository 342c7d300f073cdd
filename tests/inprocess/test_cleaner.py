"""Namespace surgery on a real in-process IPython shell: what really frees memory."""

from __future__ import annotations

import gc
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

from greed_kernel.engine import cleaner

pytestmark = pytest.mark.timeout(60)


class Blob:
    """Something a weakref can watch."""


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    sh.reset(new_session=False)
    sh.displayhook.flush()
    yield sh
    sh.reset(new_session=False)


def run(sh, code):
    result = sh.run_cell(code, store_history=True)
    return result


def test_release_outputs_frees_old_results_everywhere_ipython_keeps_them(shell):
    run(shell, "import weakref\nfrom test_cleaner import Blob\nb = Blob()\nw = weakref.ref(b)")
    run(shell, "b")  # displayed: Out[n], _n, _ , last_execution_result
    run(shell, "del b")
    for i in range(4):
        run(shell, f"{i}")
    w = shell.user_ns["w"]
    gc.collect()
    assert w() is not None, "IPython's output cache should still hold the object"
    released = cleaner.release_outputs(shell, keep_last=3)
    assert released
    gc.collect()
    assert w() is None
    assert len(shell.user_ns["Out"]) == 3


def test_release_outputs_clears_underscore_history_and_last_result(shell):
    run(shell, "import weakref\nfrom test_cleaner import Blob\nb = Blob()\nw = weakref.ref(b)")
    run(shell, "b")
    run(shell, "del b")
    w = shell.user_ns["w"]
    assert shell.displayhook._ is not None
    cleaner.release_outputs(shell, keep_last=0)
    gc.collect()
    assert w() is None
    assert shell.user_ns["_"] == "" and shell.user_ns_hidden["_"] == ""


def test_release_outputs_keeps_recent_and_recently_touched(shell):
    for i in range(6):
        run(shell, f"{i} * 10")
    numbers = sorted(shell.user_ns["Out"])
    released = cleaner.release_outputs(shell, keep_last=2, is_recent=lambda n: n == numbers[0])
    assert numbers[0] not in released
    assert sorted(shell.user_ns["Out"]) == [numbers[0], *numbers[-2:]]
    assert f"_{numbers[1]}" not in shell.user_ns


def test_delete_names_removes_output_references_but_not_other_names(shell):
    run(
        shell,
        "import weakref\nfrom test_cleaner import Blob\n_temp_b = Blob()\nw = weakref.ref(_temp_b)",
    )
    run(shell, "_temp_b")  # now also in Out and _N
    run(shell, "model = [1, 2]\n_temp_alias = model")
    deleted = cleaner.delete_names(shell, ["_temp_b", "_temp_alias", "nonexistent"])
    assert deleted == ["_temp_b", "_temp_alias"]
    gc.collect()
    assert shell.user_ns["w"]() is None
    assert shell.user_ns["model"] == [1, 2]


def test_release_last_error_frees_frames(shell):
    run(
        shell,
        "import weakref\nfrom test_cleaner import Blob\n"
        "def boom():\n    local = Blob()\n    global w\n    w = weakref.ref(local)\n"
        "    raise ValueError('x')\n",
    )
    run(shell, "boom()")
    gc.collect()
    assert shell.user_ns["w"]() is not None, "the stored traceback should pin the frame"
    assert cleaner.release_last_error(shell) is True
    gc.collect()
    assert shell.user_ns["w"]() is None
    assert getattr(sys, "last_traceback", None) is None
    assert cleaner.release_last_error(shell) is False
