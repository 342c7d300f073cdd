"""The memory budget in real kernels: a session that grows past the limit.

Each cell creates a block, the next two cells read it back, a last cell checks
every block. A watchdog thread in the test reads the kernel's anonymous memory
(RssAnon + RssShmem, which only swap could take away) every few milliseconds
and kills the kernel with SIGKILL when it passes the limit, as an OOM killer
or a cgroup would. python3 dies; greed pages its least recently used blocks out
and finishes with every block intact.

The limit is set at run time, relative to the kernel's memory after importing
torch, so that the same session means the same thing on any machine.

Under a real cgroup (Linux, root, a writable memory controller), the kernel starts
inside a 1.5 GiB limit as in a container, finds the limit itself, and a session of
48 blocks of 64 MiB (twice the limit) must finish with every block intact, also
after an ``asyncio.to_thread`` call has left an idle executor thread alive. Going
over the limit there is an OOM kill (SIGKILL), counted by the cgroup.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import threading
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from cgroups import cgroup_specs, memory_cgroup, run_until_dead

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(300)
# the kernels import torch; this process need not (find_spec: no import at collection)
if importlib.util.find_spec("torch") is None:
    pytest.skip("the session's blocks are torch tensors", allow_module_level=True)

MiB = 1 << 20
BLOCK = 16 * MiB
BLOCKS = 40  # 640 MiB in all
HEADROOM = 320 * MiB  # the budget: the kernel after `import torch`, plus this
SETUP = "import torch\nblocks = []"
UNRECLAIMABLE = (
    "sum(int(l.split()[1]) for l in open('/proc/self/status') "
    "if l.startswith(('RssAnon:', 'RssShmem:'))) * 1024"
)


def kernel_pid(k: KernelHarness) -> int:
    return int(k.km.provisioner.process.pid)  # type: ignore[union-attr]


def unreclaimable(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return sum(
            int(line.split()[1]) * 1024 for line in f if line.startswith(("RssAnon:", "RssShmem:"))
        )


@contextlib.contextmanager
def watchdog(pid: int, limit: int) -> Iterator[dict[str, t.Any]]:
    """Kill *pid* once its anonymous memory passes *limit*; report the peak seen."""
    seen: dict[str, t.Any] = {"peak": 0, "killed": False}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            try:
                now = unreclaimable(pid)
            except OSError:
                return
            seen["peak"] = max(seen["peak"], now)
            if now > limit:
                seen["killed"] = True
                os.kill(pid, signal.SIGKILL)
                return

    thread = threading.Thread(target=watch, name="oom-watchdog", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def cells() -> Iterator[str]:
    for i in range(BLOCKS):
        code = f"blocks.append(torch.full(({BLOCK // 4},), {i}.0))"
        for back in (1, 2):
            if i >= back:
                code += f"\n_ = float(blocks[{i - back}].sum())"
        yield code


def run_session(k: KernelHarness, greed: bool) -> tuple[dict[str, t.Any], list[str]]:
    assert k.execute(SETUP).status == "ok"
    limit = int(k.eval(UNRECLAIMABLE)) + HEADROOM
    if greed:
        assert k.execute(f"get_ipython().kernel.memory_limit = {limit}").status == "ok"
    outcomes: list[str] = []
    with watchdog(kernel_pid(k), limit) as seen:
        for code in cells():
            outcomes.append(execute_unless_killed(k, code, seen).status)
            if seen["killed"]:
                break
        else:
            check = "print([float(b[0]) for b in blocks])"
            outcomes.append(execute_unless_killed(k, check, seen).stdout.strip())
    seen["limit"] = limit
    return seen, outcomes


#: cells the memory guard stopped in a greed kernel
GUARD_STOPS = "get_ipython().kernel.greed.guarding.guard.stopped"


class Died:
    status = stdout = "died"


def execute_unless_killed(k: KernelHarness, code: str, seen: dict[str, t.Any]) -> t.Any:
    """Run a cell; give up as soon as the watchdog has killed the kernel."""
    msg_id = k.submit(code)
    deadline = time.monotonic() + 120
    while True:
        try:
            return k.collect(msg_id, timeout=1)
        except TimeoutError:
            if seen["killed"]:
                return Died()
            if time.monotonic() > deadline:
                raise


def test_python3_is_killed_where_greed_holds_its_budget(jupyter_sandbox: object) -> None:
    with KernelHarness(kernel_name="python3") as k:
        seen, _ = run_session(k, greed=False)
    assert seen["killed"], f"python3 never passed the limit: peak {seen['peak'] / MiB:.0f} MiB"

    with KernelHarness("--GreedKernel.recent_window=300") as k:
        seen, outcomes = run_session(k, greed=True)
        assert not seen["killed"], (
            f"greed passed its budget: {seen['peak'] / MiB:.0f} of {seen['limit'] / MiB:.0f} MiB"
        )
        assert outcomes[:-1] == ["ok"] * BLOCKS
        assert outcomes[-1] == str([float(i) for i in range(BLOCKS)])
        status = k.execute("%greed status")
        text = status.outputs[0]["content"]["data"]["text/plain"]
        assert "budget cleanup" in text and "paged" in text, text
        assert k.eval(GUARD_STOPS) == "0"  # a session the budget holds: never stopped


# -- under a real cgroup ---------------------------------------------------------------
CGROUP_LIMIT = 1536 * MiB
CGROUP_BLOCK = 64 * MiB
CGROUP_BLOCKS = 48  # 3 GiB in all: twice the limit
CHECK = "print([float(b[0]) for b in blocks])"
TO_THREAD = "import asyncio\nawait asyncio.to_thread(sum, [1, 2])"


def cgroup_cells(first: str) -> list[str]:
    size = CGROUP_BLOCK // 4
    blocks = [f"blocks.append(torch.full(({size},), {i}.0))" for i in range(CGROUP_BLOCKS)]
    return [*([first] if first else []), "import torch\nblocks = []", *blocks, CHECK]


def session_in_cgroup(
    sandbox: t.Any, directory: Path, kernel: str, first: str
) -> tuple[list[t.Any], int]:
    """The session's results in *kernel* started in a fresh 1.5 GiB cgroup, and the
    OOM kills the cgroup counted."""
    with memory_cgroup(CGROUP_LIMIT) as cgroup:
        specs = cgroup_specs(directory, cgroup, sandbox.spec_dir)
        with KernelHarness(kernel_name=f"{kernel}-cgroup", kernel_spec_manager=specs) as k:
            if kernel == "greed":
                limit = int(k.eval("get_ipython().kernel.greed.probe.effective_limit()"))
                assert limit == CGROUP_LIMIT, "the kernel did not find the cgroup's limit"
            results = run_until_dead(k, cgroup_cells(first))
            if kernel == "greed" and results[-1] != "died":
                assert k.eval(GUARD_STOPS) == "0"  # the budget held: the guard never fired
        return results, cgroup.oom_kills()


@pytest.mark.parametrize("first", ["", TO_THREAD], ids=["plain", "after-to-thread"])
def test_greed_survives_a_real_cgroup_limit(
    jupyter_sandbox: t.Any, tmp_path: Path, first: str
) -> None:
    """48 x 64 MiB under a 1.5 GiB cgroup: python3 is OOM-killed; greed pages its way
    through, with or without an idle executor thread (issue 30: that thread stopped
    paging, and greed was OOM-killed like python3)."""
    if not first:  # the session really is beyond the limit
        results, kills = session_in_cgroup(jupyter_sandbox, tmp_path / "p", "python3", first)
        assert results[-1] == "died" and kills >= 1, results
    results, kills = session_in_cgroup(jupyter_sandbox, tmp_path / "g", "greed", first)
    cells = cgroup_cells(first)
    if results[-1] == "died":
        n = len(results) - 1
        raise AssertionError(
            f"greed died in cell {n + 1} of {len(cells)} ({cells[n]!r}), OOM kills: {kills}"
        )
    assert [r.status for r in results] == ["ok"] * len(cells), results
    assert results[-1].stdout.strip() == str([float(i) for i in range(CGROUP_BLOCKS)])
    assert kills == 0
