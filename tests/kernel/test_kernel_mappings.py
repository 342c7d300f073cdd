"""The mapping budget in a real kernel: many small paged tensors leave user code the
mappings it has on python3.

Every paged range is a file mapping of its own, with the partial pages between two
buffers left anonymous: a session of small tensors costs about two entries of the
process's memory map per tensor, and Linux refuses new mappings (``mmap``,
``share_memory_``, thread stacks) past ``vm.max_map_count``. Paging may use at most
about a quarter of the headroom that was free when the kernel started (issue 30).

The same cells run on python3 and on greed paging after every cell, one kernel after
the other (each holds the tensors, about 1.3 GiB), and must give the same outputs;
greed's map count, read back after each cell, must stay within that share.
"""

from __future__ import annotations

import importlib.util

import pytest
from differential import EVICT_EVERY_CELL, CellOutcome, outcome

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(300)
# the kernels import torch; this process need not (find_spec: no import at collection)
if importlib.util.find_spec("torch") is None:
    pytest.skip("the session's values are torch tensors", allow_module_level=True)

#: Tensors of 128 KiB (32,768 float32): each one's whole pages are worth paging.
TENSORS = 10_000
ELEMENTS = 32_768
#: Entries of the memory map that are not paging's: what the kernel maps while it runs
#: the cells (libraries loaded on first use, thread stacks, arenas).
SLACK = 256

MAPS = "len(open('/proc/self/maps').readlines())"
CELLS = [
    # before anything of the session: what was free when the kernel started
    f"maps = lambda: {MAPS}\nstart = maps()\n"
    "max_maps = int(open('/proc/sys/vm/max_map_count').read())",
    "import mmap\nimport torch",
    # greed pages the four lists after this cell
    f"L0, L1, L2, L3 = ([torch.ones({ELEMENTS}) for _ in range({TENSORS // 4})] "
    "for _ in range(4))\nbefore = maps()",
    "after = maps()",
    # what python3 can do, user code can do
    "keep = []\ntry:\n    for _ in range(8000):\n        keep.append(mmap.mmap(-1, 4096))\n"
    "except OSError as e:\n    print(type(e).__name__, e.errno)\nprint(len(keep))\ndel keep",
    "shared = torch.ones(1 << 20).share_memory_()\nprint(shared.is_shared(), float(shared.sum()))",
    "print(all(bool((t == 1).all()) for L in (L0, L1, L2, L3) for t in L))\nlater = maps()",
    # the owners gone, their mappings are given back (by the next cell at the latest)
    "del L0, L1, L2, L3",
    "freed = maps()",
]


def session(k: KernelHarness, *, greed: bool) -> tuple[list[CellOutcome], dict[str, int]]:
    """Every cell's outcome, and the map counts the cells recorded."""
    outcomes = [outcome(k.execute(code, timeout=240), greed=greed) for code in CELLS]
    counts = {
        name: int(k.eval(name))
        for name in ("start", "max_maps", "before", "after", "later", "freed")
    }
    return outcomes, counts


def test_many_small_paged_tensors_leave_user_code_its_mappings(jupyter_sandbox: object) -> None:
    with open("/proc/sys/vm/max_map_count") as f:
        max_maps = int(f.read())
    if max_maps // 4 > 2 * TENSORS:
        pytest.skip(
            f"vm.max_map_count is {max_maps}: {TENSORS} tensors cannot reach a quarter of it"
        )
    with KernelHarness(kernel_name="python3") as k:
        expected, _ = session(k, greed=False)
    with KernelHarness(*EVICT_EVERY_CELL) as k:
        got, counts = session(k, greed=True)
        paged = int(k.eval("get_ipython().kernel.greed.store.pager.paged_total"))
    assert got == expected
    assert expected[4].stdout == "8000\n" and expected[5].stdout == "True 1048576.0\n"
    # a quarter of the headroom is enough for most of them: at least a quarter of the bytes
    assert paged >= TENSORS * ELEMENTS, f"greed paged only {paged} bytes"
    share = (counts["max_maps"] - counts["start"]) // 4
    used = max(counts["after"], counts["later"]) - counts["before"]  # after 1 and 4 cleanups
    assert used <= share + SLACK, (
        f"paging made {used} mappings, more than a quarter ({share}) of the "
        f"{counts['max_maps'] - counts['start']} free when the kernel started: {counts}"
    )
    assert counts["freed"] <= counts["before"] + SLACK, (
        f"the tensors freed, {counts['freed'] - counts['before']} mappings are left: {counts}"
    )
