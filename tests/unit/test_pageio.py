"""The uninterruptible section of paging (greed_kernel/pageio.py): Python code that
runs on the main thread while greed pages (a signal handler, a gc callback, a
tracer) never has a write replaced by older bytes, and a thread that changed since
its judgement aborts the section before anything is copied."""

from __future__ import annotations

import gc
import mmap
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from greed_kernel.memory import pageio, threads
from greed_kernel.memory.paging import Pager
from greed_kernel.memory.sizes import owned_buffers

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.usefixtures("runner_threads_ignored")


MiB = 1 << 20


@pytest.fixture
def pager(tmp_path: Path) -> Pager:
    p = Pager(str(tmp_path))
    yield p
    p.close()


def page_repeatedly(pager: Pager, a: object, rounds: int) -> int:
    """Page *a* out, write to all of it (anonymous again), and again: many windows."""
    paged = 0
    for _ in range(rounds):
        paged += pager.page_out(owned_buffers(a)).bytes
        a[::512] += 0  # type: ignore[index]  # one write a page: paged out again next round
    return paged


def test_a_signal_handlers_writes_during_paging_are_kept(pager: Pager) -> None:
    a = np.zeros(8 * MiB // 8)
    ticks = [0]

    def tick(signum: int, frame: object) -> None:
        a[:] += 1.0
        ticks[0] += 1

    old = signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        paged = page_repeatedly(pager, a, 60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert paged and ticks[0] > 10
    assert (a == ticks[0]).all()


def test_a_gc_callbacks_writes_during_paging_are_kept(pager: Pager) -> None:
    a = np.zeros(8 * MiB // 8)
    runs = [0]

    def collecting(phase: str, info: dict) -> None:
        if phase == "start":
            a[:] += 1.0
            runs[0] += 1

    threshold = gc.get_threshold()
    gc.callbacks.append(collecting)
    gc.set_threshold(1)
    try:
        paged = page_repeatedly(pager, a, 40)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(collecting)
    assert paged and runs[0] > 10
    assert (a == runs[0]).all()


def test_a_profilers_writes_during_paging_are_kept(pager: Pager) -> None:
    a = np.zeros(8 * MiB // 8)
    calls = [0]

    def profile(frame: object, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            a[a.size // 2] += 1.0  # in a whole page, paged each round
            calls[0] += 1

    sys.setprofile(profile)
    try:
        paged = page_repeatedly(pager, a, 10)
    finally:
        sys.setprofile(None)
    assert paged and calls[0] > 100
    assert a[a.size // 2] == calls[0]


def test_the_section_is_aborted_when_a_thread_changed(tmp_path: Path) -> None:
    memory = mmap.mmap(-1, 4 * MiB)  # unmapped at the end: no file of ours is left behind
    a = np.frombuffer(memory, dtype="float64")
    a[:] = np.random.default_rng(7).random(a.size)
    before = a.copy()
    judgement = threads.judge()
    stop = threading.Event()
    late = threading.Thread(target=stop.wait, name="started-after-the-judgement")
    late.start()
    try:
        fd, _ = pageio.open_paging_file(tmp_path)
        guards = pageio.thread_guards(judgement)
        lo = a.ctypes.data
        with pytest.raises(pageio.SectionAborted):
            pageio.copy_out(fd, 4096, [(lo, 2 * MiB)], guards)
        assert gc.isenabled()
        now = threads.judge()
        again = pageio.thread_guards(now)
        assert pageio.copy_out(fd, 4096 + 2 * MiB, [(lo, 2 * MiB)], again) == [True]
        os.close(fd)
    finally:
        stop.set()
        late.join()
    assert (a == before).all()
    del a
    memory.close()


def test_an_audit_hooks_writes_during_paging_are_kept(tmp_path: Path) -> None:
    # an audit hook cannot be removed: in a process of its own
    code = f"""
import sys, numpy as np
from greed_kernel.memory.paging import Pager
from greed_kernel.memory.sizes import owned_buffers
a = np.zeros(1 << 20)
calls = [0]
def hook(event, args):
    a[a.size // 2] += 1.0
    calls[0] += 1
sys.addaudithook(hook)
pager = Pager({str(tmp_path)!r})
paged = 0
for _ in range(10):
    paged += pager.page_out(owned_buffers(a)).bytes
    a[::512] += 0
print(paged > 0, calls[0] > 10, a[a.size // 2] == calls[0])
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["True", "True", "True"]


def test_a_raw_thread_started_after_the_judgement_aborts_the_section(tmp_path: Path) -> None:
    """A thread started with ``_thread`` is not in ``threading._active``: the count of
    ``_thread``'s threads tells it. The new thread counts itself once it runs, so the
    section waits for it to run."""
    import _thread

    memory = mmap.mmap(-1, 4 * MiB)
    a = np.frombuffer(memory, dtype="float64")
    judgement = threads.judge()
    running, hold, done = (_thread.allocate_lock() for _ in range(3))
    running.acquire()
    hold.acquire()
    done.acquire()

    def blocked() -> None:
        running.release()
        with hold:
            pass
        done.release()

    _thread.start_new_thread(blocked, ())
    try:
        assert running.acquire(timeout=30), "the raw thread never ran"
        fd, _ = pageio.open_paging_file(tmp_path)
        with pytest.raises(pageio.SectionAborted):
            pageio.copy_out(fd, 4096, [(a.ctypes.data, 2 * MiB)], pageio.thread_guards(judgement))
        os.close(fd)
    finally:
        hold.release()
        done.acquire()  # the thread has finished its work
    del a
    memory.close()
