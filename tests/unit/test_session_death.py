"""The death record across a real death: a small Python child creates its record,
updates it, and dies (SIGKILL, a segfault); then the next reader says why. No kernel:
the child only imports greed_kernel.session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greed_kernel.session.previous import previous

pytestmark = pytest.mark.timeout(60)

NOTEBOOK = "work/train.ipynb"
GiB = 1 << 30
CHILD = """
import ctypes, faulthandler, os, resource, sys, time
from greed_kernel.session.record import KernelRecord

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the segfault
r = KernelRecord.create(sys.argv[1], sys.argv[2], limit=3 << 29, fault_handler=True,
                        cgroup=lambda: None)
assert r is not None and faulthandler.is_enabled()
for cell in range(1, 58):
    r.update(cell=cell, used=cell << 20, peak=cell << 20, sampled_at=time.time())
how = sys.argv[3]
if how == "kill":
    r.update(stopping=True)
    os.kill(os.getpid(), 9)
elif how == "segv":
    ctypes.string_at(0)
elif how == "fork":
    pid = os.fork()
    if pid == 0:
        r.update(cell=999)  # the child leaves the parent's record alone
        r.done()
        os._exit(3 if faulthandler.is_enabled() else 0)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(open(r.path).read().split('"cell":')[1].split(",")[0].strip())
    r.done()
    print(faulthandler.is_enabled())
"""


def die(runtime: Path, how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(runtime), NOTEBOOK, how],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_kernel_killed_by_sigkill(tmp_path: Path) -> None:
    done = die(tmp_path, "kill")
    assert done.returncode == -signal.SIGKILL, done.stderr
    (record,) = (tmp_path / "greed").glob("*.json")
    assert json.loads(record.read_bytes())["cell"] == 57  # the mapping's last stores
    found = previous(str(tmp_path), NOTEBOOK, now=time.time())
    assert found is not None
    assert (found.execution_count, found.in_one_call, found.signal) == (57, True, None)
    assert found.unreclaimable_bytes == 57 << 20 and found.limit_bytes == 3 << 29
    assert found.message.startswith(
        "Greed: the previous kernel of this notebook died at cell 57, probably out of memory"
    )
    assert os.listdir(tmp_path / "greed") == []
    assert previous(str(tmp_path), NOTEBOOK, now=time.time()) is None


def test_a_kernel_killed_by_a_segfault(tmp_path: Path) -> None:
    done = die(tmp_path, "segv")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    found = previous(str(tmp_path), NOTEBOOK, now=time.time())
    assert found is not None
    assert (found.cause, found.signal) == ("signal", 11)
    assert (
        found.message == "Greed: the previous kernel of this notebook died at cell 57 (signal 11)."
    )


def test_a_forked_child_does_not_write_the_sidecar(tmp_path: Path) -> None:
    done = die(tmp_path, "fork")
    assert done.returncode == 0, done.stderr
    # the child had faulthandler off and wrote nothing; the parent's done() turned it off
    assert done.stdout.split() == ["0", "57", "False"]
    assert os.listdir(tmp_path / "greed") == []
