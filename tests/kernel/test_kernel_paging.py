"""In-place paging in a real kernel: RAM freed, bytes and objects unchanged, and
what the magics, stats and events say about it."""

from __future__ import annotations

import ast
import importlib.util
import os
import typing as t

import pytest

from greed_kernel.frontends.client import GreedClient

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(180)
# the kernels import torch; this process need not (find_spec: no import at collection)
if importlib.util.find_spec("torch") is None:
    pytest.skip("paging a tensor needs torch", allow_module_level=True)

EVICT_NOW = (
    "--GreedKernel.cleanup_interval=0",
    "--GreedKernel.optimize_interval=0",
    "--GreedKernel.recent_window=0",
    "--GreedKernel.idle_timeout=0",
)
MEM = "{k: int(v.split()[0]) * 1024 for k, v in (l.split(':', 1) for l in open('/proc/self/status')) if k in ('RssAnon', 'RssFile')}"  # noqa: E501


def value(k: KernelHarness, expr: str) -> t.Any:
    return ast.literal_eval(k.eval(expr))


def ok(k: KernelHarness, code: str) -> t.Any:
    result = k.execute(code)
    assert result.status == "ok" and result.error is None, result
    return result


def shown(result: t.Any) -> str:
    """The text/plain of the display_data outputs (the magics' tables)."""
    shown = [m["content"]["data"] for m in result.outputs if m["msg_type"] == "display_data"]
    return "".join(d["text/plain"] for d in shown)


def test_paging_frees_anonymous_memory_and_keeps_every_byte(new_kernel: t.Any, tmp_path) -> None:
    with new_kernel(*EVICT_NOW, f"--GreedKernel.paging_dir={tmp_path}") as k:
        ok(
            k,
            "import hashlib, torch, weakref\n"
            "big = torch.randn(1 << 25)  # 128 MiB\n"
            "ref, ident = weakref.ref(big), id(big)\n"
            # not big.numpy(): memory shared with numpy has no known owner, and is not paged
            "digest = lambda: big.view(torch.int32).sum(dtype=torch.int64).item()\n"
            "before = digest()",
        )
        anon = value(k, MEM)["RssAnon"]
        r = ok(k, "%greed cleanup")
        assert "paged out 128 MiB of big" in r.stdout, r
        after = value(k, MEM)
        assert anon - after["RssAnon"] > 100 << 20, (anon, after)
        assert os.listdir(tmp_path) == []  # the file has no name
        assert value(k, "(digest() == before, id(big) == ident, ref() is big)") == (
            True,
            True,
            True,
        )
        # reading brought the pages in as file-backed memory, not anonymous memory
        now = value(k, MEM)
        assert now["RssFile"] - after["RssFile"] > 100 << 20
        assert now["RssAnon"] - after["RssAnon"] < 16 << 20


def test_magics_stats_and_events_tell_what_is_paged(new_kernel: t.Any) -> None:
    with new_kernel(*EVICT_NOW) as k:
        greed = GreedClient(k.kc)
        try:
            ok(k, "import numpy as np\nframes = np.ones((1 << 22,))\nsmall = [1, 2]")
            report = greed.cleanup()
            assert report["paged"] == ["frames"] and report["pagedBytes"] >= 31 << 20
            stats = greed.stats()
            assert stats["paged"] == ["frames"] and stats["pagedBytes"] >= 31 << 20
            row = next(v for v in greed.vars() if v["name"] == "frames")
            assert row["pagedBytes"] >= 31 << 20 and "spilled" not in row
        finally:
            greed.close()
        r = ok(k, "%greed paged")
        text = shown(r)
        assert "frames" in text and "32 MiB" in text and "small" not in text
        r = ok(k, "%greed why frames")
        assert "Paged out: 32 MiB of its memory is backed by a file" in r.stdout
        r = ok(k, "%greed status")
        assert "paged out now" in shown(r)
        r = k.execute("%greed restore small")  # IPython's UsageError: one line, no traceback
        assert r.status == "error" and "UsageError: not paged out: small" in r.stderr
        r = ok(k, "%greed restore frames")
        assert "read 32 MiB of frames back into RAM" in r.stdout
        assert value(k, "float(frames.sum())") == float(1 << 22)
        r = ok(k, "frames = None\n%greed paged")
        assert "nothing is paged out" in r.stdout


def test_a_running_user_thread_pauses_paging(new_kernel: t.Any) -> None:
    with new_kernel(*EVICT_NOW) as k:
        ok(
            k,
            "import numpy as np, threading\nkeep = np.ones(1 << 22)\nstop = threading.Event()\n"
            "def spin():\n    while not stop.is_set():\n        sum(range(100))\n"
            "worker = threading.Thread(target=spin, name='writer')\nworker.start()",
        )
        r = ok(k, "%greed cleanup\n%greed status")
        assert "paged out" not in r.stdout
        assert "thread 'writer' (running in" in shown(r)
        r = ok(k, "stop.set()\nworker.join()\n%greed cleanup")
        assert "paged out 32 MiB of keep" in r.stdout
