"""Spill in a real kernel: memory comes back, values come back, files go away."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

# Everything stale at once: nothing counts as recently used.
ARGS = ("--GreedKernel.recent_window=0", "--GreedKernel.cleanup_interval=0")


def value(k, expr: str):
    """A Python literal evaluated in the kernel (via a silent user expression)."""
    return ast.literal_eval(k.eval(expr))


def rss(k) -> int:
    return int(k.eval("get_ipython().kernel.greed.probe.rss()"))


def test_spill_frees_memory_and_restores_identical_values(new_kernel):
    with new_kernel(*ARGS) as k:
        r = k.execute(
            "import torch, hashlib\n"
            "torch.manual_seed(0)\n"
            "big = torch.randn(4096, 8192)  # 128 MiB\n"
            "digest = hashlib.sha256(big.numpy().tobytes()).hexdigest()\n"
            "def total():\n"
            "    return big.double().sum().item()\n"
            "expected = total()"
        )
        assert r.status == "ok", r
        before = rss(k)
        r = k.execute("%greed cleanup")
        assert r.status == "ok" and "spilled" in r.stdout, r
        assert k.eval("'big' in globals()") == "False"
        after = rss(k)
        assert before - after > 100 << 20, (before, after)
        spill_dir = Path(value(k, "get_ipython().kernel.spill_dir"))
        assert len(list(spill_dir.iterdir())) == 1

        # used through a session function: restored before the cell runs
        r = k.execute("print(total() == expected)")
        assert r.stdout.strip() == "True", r
        r = k.execute("print(hashlib.sha256(big.numpy().tobytes()).hexdigest() == digest)")
        assert r.stdout.strip() == "True", r
        assert list(spill_dir.iterdir()) == []


def test_uses_no_scan_can_see_get_a_clear_message(new_kernel):
    with new_kernel(*ARGS) as k:
        k.execute("import numpy as np\narr = np.ones(1 << 20)")
        k.execute("%greed cleanup")
        r = k.execute("print(globals()['arr'].sum())")
        assert r.status == "error" and r.error["ename"] == "KeyError"
        assert "'arr' had been spilled to disk" in r.stderr and "Run the cell again" in r.stderr
        r = k.execute("print(globals()['arr'].sum())")
        assert r.stdout.strip() == "1048576.0", r
        k.execute("%greed cleanup")
        r = k.execute("print(eval('arr').sum())")
        assert r.status == "error" and r.error["ename"] == "NameError"
        assert "'arr' had been spilled" in r.stderr


def test_magics_list_and_restore_spilled_values(new_kernel):
    with new_kernel(*ARGS) as k:
        k.execute("import torch\na = torch.zeros(1 << 20)\nb = torch.ones(1 << 20)\nalias = b")
        k.execute("%greed cleanup")
        r = k.execute("%greed spilled")
        text = r.outputs[0]["content"]["data"]["text/plain"]
        assert "b, alias" in text and "4.0 MiB" in text, text
        r = k.execute("%greed vars")
        assert "spilled" in r.outputs[0]["content"]["data"]["text/plain"]
        r = k.execute("%greed restore b")
        assert "restored" in r.stdout and k.eval("alias is b") == "True"
        r = k.execute("%greed restore nosuch")
        assert r.status == "ok" and "not spilled: nosuch" in r.stderr and not r.error
        k.execute("%greed restore --all")
        assert k.eval("sorted(get_ipython().kernel.greed.spilled)") == "[]"
        assert k.eval("float(a.sum())") == "0.0"


def test_stats_and_events_carry_spills(new_kernel):
    with new_kernel(*ARGS) as k:
        k.execute("import torch\nx = torch.zeros(1 << 20)")
        k.execute("%greed cleanup")
        stats = value(k, "get_ipython().kernel.greed.snapshot()")
        assert stats["spilled"] == ["x"] and stats["spilledBytes"] == 4 << 20
        report = k.eval("get_ipython().kernel.greed.stats.last_report('cleanup')['spilled']")
        assert report == "['x']"


def test_spill_files_are_removed_at_shutdown(new_kernel):
    with new_kernel(*ARGS) as k:
        k.execute("import torch\nx = torch.zeros(1 << 20)")
        k.execute("%greed cleanup")
        spill_dir = value(k, "get_ipython().kernel.spill_dir")
        assert os.listdir(spill_dir)
        mode = int(k.eval("__import__('os').stat(get_ipython().kernel.spill_dir).st_mode & 0o777"))
        assert mode == 0o700
    assert not os.path.exists(spill_dir)


def test_evict_off_and_delete_modes(new_kernel):
    with new_kernel(*ARGS, "--GreedKernel.evict=off") as k:
        k.execute("import torch\nx = torch.zeros(1 << 20)")
        k.execute("%greed cleanup")
        assert k.eval("'x' in globals()") == "True"
    with new_kernel(*ARGS, "--GreedKernel.evict=delete") as k:
        k.execute("import torch\nx = torch.zeros(1 << 20)\nsmall = 1")
        k.execute("%greed cleanup")
        assert k.eval("'x' in globals()") == "False"
        assert k.eval("small") == "1"


def test_a_value_that_cannot_come_back_is_reported_not_lost(new_kernel):
    with new_kernel(*ARGS) as k:
        k.execute("class Box:\n    pass\nbox = [Box(), bytearray(2 << 20)]")
        k.execute("%greed cleanup")
        assert value(k, "sorted(get_ipython().kernel.greed.spilled)") == ["box"]
        k.execute("del Box")  # the class the pickle refers to is gone
        r = k.execute("print(eval('box'))")
        assert r.status == "error"
        assert "'box' is spilled to disk and could not be loaded back" in r.stderr, r
        assert value(k, "sorted(get_ipython().kernel.greed.spilled)") == ["box"]
        k.execute("class Box:\n    pass")
        r = k.execute("%greed restore box")
        assert "restored box" in r.stdout and value(k, "len(box[1])") == 2 << 20
