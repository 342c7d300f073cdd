"""Which threads may write while greed pages (greed_kernel/threads.py), on real threads.

Each scenario starts threads that stand in one way of waiting (or of running), and
the judgement of each such thread is checked; every scenario releases and joins its
threads, even when it fails.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import ctypes
import itertools
import multiprocessing
import operator
import queue
import selectors
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool
from time import sleep

import pytest

from greed_kernel.memory import pageio, threads
from greed_kernel.memory.threads import Judgement, judge

Scenario = Callable[[], contextlib.AbstractContextManager[list[threading.Thread]]]
DEADLINE = 10.0  # seconds a thread may take to reach the state a test waits for


LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None  # usleep releases the GIL


def _libc() -> ctypes.CDLL:
    if LIBC is None:
        pytest.skip("needs the C library's usleep through ctypes (Linux)")
    return LIBC


@contextlib.contextmanager
def started(*targets: Callable[[], object], name: str = "users-worker") -> Iterator[list]:
    """Threads running ``targets``, joined on the way out (the caller releases them)."""
    ths = [
        threading.Thread(target=f, name=f"{name}-{i}", daemon=True) for i, f in enumerate(targets)
    ]
    for th in ths:
        th.start()
    try:
        yield ths
    finally:
        for th in ths:
            th.join(DEADLINE)
        assert not any(th.is_alive() for th in ths), "a thread of the test did not end"


def judged_until(done: Callable[[Judgement], bool]) -> Judgement:
    """Judge until ``done`` holds of the judgement (a thread may still be on its way
    into its wait), within DEADLINE; the last judgement either way."""
    deadline = time.monotonic() + DEADLINE
    while True:
        j = judge()
        if done(j) or time.monotonic() > deadline:
            return j
        time.sleep(0.001)


def only(j: Judgement, ths: list[threading.Thread]) -> Judgement:
    """The judgement of ``ths`` alone: the threads that were there already (a test
    runner's, other tests' leftovers) count as exempt, new ones do not."""
    mine = {th.ident for th in ths}
    others = (set(j.blocking) | set(j.watched) | j.exempt) - mine
    watched = {k: w for k, w in j.watched.items() if k in mine}
    blocking = {k: d for k, d in j.blocking.items() if k in mine}
    return Judgement(blocking, watched, frozenset(others))


def all_watched(ths: list[threading.Thread]) -> Judgement:
    j = judged_until(lambda j: all(th.ident in j.watched for th in ths))
    for th in ths:
        assert th.ident not in j.blocking, j.blocking[th.ident]
        assert th.ident in j.watched
    return j


# -- waits: the thread cannot write while the GIL is held ------------------------------
@contextlib.contextmanager
def event_waits() -> Iterator[list]:
    ev = threading.Event()
    with started(ev.wait, lambda: ev.wait(60)) as ths:
        try:
            yield ths
        finally:
            ev.set()


@contextlib.contextmanager
def queue_waits() -> Iterator[list]:
    empty, full = queue.Queue(), queue.Queue(1)
    full.put(0)
    with started(empty.get, lambda: empty.get(timeout=60), lambda: full.put(1)) as ths:
        try:
            yield ths
        finally:
            empty.put(1)
            empty.put(2)
            full.get()


@contextlib.contextmanager
def lock_via_condition() -> Iterator[list]:
    """`with cond:` and Queue.get blocked on the lock of a Condition that the main
    thread holds, and Semaphore.acquire."""
    cond, q, sem = threading.Condition(), queue.Queue(), threading.Semaphore(0)
    q.put(0)

    def enter() -> None:
        with cond:
            pass

    cond.acquire()
    q.mutex.acquire()
    try:
        with started(enter, q.get, sem.acquire) as ths:
            try:
                yield ths
            finally:
                cond.release()
                q.mutex.release()
                sem.release()
    except BaseException:
        if cond._is_owned():  # started() failed before its threads ran
            cond.release()
            q.mutex.release()
        raise


@contextlib.contextmanager
def joins() -> Iterator[list]:
    ev = threading.Event()
    with started(ev.wait, name="joined") as (joined,):
        try:
            with started(joined.join, lambda: joined.join(60)) as ths:
                try:
                    yield ths
                finally:
                    ev.set()
        finally:
            ev.set()


@contextlib.contextmanager
def selector_waits() -> Iterator[list]:
    a, b = socket.socketpair()
    kinds = [selectors.DefaultSelector, selectors.SelectSelector]
    kinds += [selectors.PollSelector] if hasattr(selectors, "PollSelector") else []
    sels = [kind() for kind in kinds]
    for sel in sels:
        sel.register(a, selectors.EVENT_READ)
    try:
        with started(*(sel.select for sel in sels)) as ths:
            try:
                yield ths
            finally:
                b.send(b"x")
    finally:
        for sel in sels:
            sel.close()
        a.close()
        b.close()


@contextlib.contextmanager
def idle_executor() -> Iterator[list]:
    before = set(threading.enumerate())
    with ThreadPoolExecutor(2) as ex:
        ex.submit(sum, [1, 2]).result()
        yield [th for th in threading.enumerate() if th not in before]


@contextlib.contextmanager
def to_thread_default_executor() -> Iterator[list]:
    """What `await asyncio.to_thread(...)` leaves in a loop that lives on (IPython's)."""
    before = set(threading.enumerate())
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.to_thread(sum, [1, 2])) == 3
        yield [th for th in threading.enumerate() if th not in before]
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@contextlib.contextmanager
def idle_thread_pool() -> Iterator[list]:
    """multiprocessing.pool.ThreadPool: a worker and three handler threads."""
    before = set(threading.enumerate())
    pool = ThreadPool(1)
    try:
        assert pool.apply(sum, ([1, 2],)) == 3
        yield [th for th in threading.enumerate() if th not in before]
    finally:
        pool.close()
        pool.join()


@contextlib.contextmanager
def io_waits() -> Iterator[list]:
    """socket.accept, a Pipe's recv and Popen.wait."""
    server = socket.create_server(("127.0.0.1", 0))
    reader, writer = multiprocessing.Pipe(duplex=False)
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        with started(server.accept, reader.recv, child.wait) as ths:
            try:
                yield ths
            finally:
                socket.create_connection(server.getsockname()).close()
                writer.send(None)
                child.communicate(b"\n")
    finally:
        server.close()
        reader.close()
        writer.close()


@contextlib.contextmanager
def sleepers() -> Iterator[list]:
    """time.sleep(...) and sleep(...) (from time import sleep) in a loop."""
    stop: list[int] = []

    def attribute() -> None:
        while not stop:
            time.sleep(0.005)

    def name() -> None:
        while not stop:
            sleep(0.005)

    with started(attribute, name) as ths:
        try:
            yield ths
        finally:
            stop.append(1)


WAITS: dict[str, Scenario] = {
    "event-wait": event_waits,
    "queue-get-and-put": queue_waits,
    "lock-via-condition": lock_via_condition,
    "thread-join": joins,
    "selectors": selector_waits,
    "idle-executor-worker": idle_executor,
    "asyncio-to-thread": to_thread_default_executor,
    "thread-pool": idle_thread_pool,
    "socket-pipe-popen": io_waits,
    "time-sleep": sleepers,
}


@pytest.mark.parametrize("scenario", WAITS.values(), ids=WAITS.keys())
def test_threads_in_a_known_wait_do_not_stop_paging(scenario: Scenario) -> None:
    with scenario() as ths:
        assert ths
        j = all_watched(ths)
        for th in ths:
            assert j.watched[th.ident].what.startswith("waiting in ")


def test_a_sleep_is_watched_at_its_instruction_and_a_wait_in_its_frame() -> None:
    """A sleeping thread's frame is the caller's, which runs anything on another line."""
    with sleepers() as (sleeper, _), event_waits() as (waiter, _):
        j = all_watched([sleeper, waiter])
        watch = j.watched[sleeper.ident]
        assert watch.lasti == watch.frame.f_lasti and watch.frame.f_code.co_name == "attribute"
        assert j.watched[waiter.ident].lasti is None


# -- threads that may write ----------------------------------------------------------
fake_time = types.SimpleNamespace()


def _running(spin: Callable[[list], None], name: str) -> contextlib.AbstractContextManager:
    @contextlib.contextmanager
    def scenario() -> Iterator[list]:
        stop: list[int] = []
        with started(lambda: spin(stop), name=name) as ths:
            try:
                yield ths
            finally:
                stop.append(1)

    return scenario()


def python_loop(stop: list) -> None:
    n = 0
    while not stop:
        n += 1


def ctypes_usleep(stop: list) -> None:
    usleep = _libc().usleep
    while not stop:
        usleep(1000)  # a CDLL call: the GIL is released while it runs


def lookalike_sleep(stop: list) -> None:
    fake_time.sleep = _libc().usleep
    while not stop:
        fake_time.sleep(1000)


_NAMED = """
def named_lookalike(stop):
    while not stop:
        sleep(1000)
"""


def named_lookalike(stop: list) -> None:
    space = {"sleep": _libc().usleep}  # a global `sleep` that is not time.sleep
    exec(compile(_NAMED, __file__, "exec"), space)
    space["named_lookalike"](stop)


def numpy_loop(stop: list) -> None:
    np = sys.modules["numpy"]
    a = np.zeros(1 << 20)
    while not stop:
        np.add(a, 1.0, out=a)  # numpy releases the GIL in the loop


@pytest.mark.parametrize(
    "spin",
    [python_loop, ctypes_usleep, lookalike_sleep, named_lookalike, numpy_loop],
    ids=lambda f: f.__name__,
)
def test_threads_that_run_or_call_c_code_stop_paging_and_are_named(spin: Callable) -> None:
    if spin is numpy_loop:
        pytest.importorskip("numpy")
    _libc()
    with _running(spin, name="trainer") as (th,):
        j = judged_until(lambda j: th.ident in j.blocking)
        assert th.ident not in j.watched
        said = j.blocking[th.ident]
        assert said.startswith(f"thread {th.name!r} (running in test_threads.py:")
        assert said.endswith(f" in {spin.__name__})") and said in j.blockers


def test_a_thread_outside_threading_is_judged_by_its_ident() -> None:
    """_thread.start_new_thread: not in threading.enumerate(), still a thread."""
    stop: list[int] = []
    ended = threading.Event()

    def run() -> None:
        try:
            python_loop(stop)
        finally:
            ended.set()

    ident = _thread.start_new_thread(run, ())
    try:
        j = judged_until(lambda j: ident in j.blocking)
        assert j.blocking[ident].startswith(f"thread {ident} (running in test_threads.py:")
    finally:
        stop.append(1)
        assert ended.wait(DEADLINE)


def test_a_thread_without_a_python_frame_stops_paging(monkeypatch: pytest.MonkeyPatch) -> None:
    with event_waits() as (th, _):
        all_watched([th])
        frames = sys._current_frames
        monkeypatch.setattr(
            sys, "_current_frames", lambda: {k: v for k, v in frames().items() if k != th.ident}
        )
        j = judge()
        assert j.blocking[th.ident] == f"thread {th.name!r} (outside Python code)"
        assert th.ident not in j.watched


def test_kernel_threads_are_exempt_whatever_they_run() -> None:
    def kernel_loop(stop: list) -> None:
        python_loop(stop)

    kernel_loop.__module__ = "zmq.eventloop.ioloop"  # as if zmq ran it
    stop: list[int] = []
    th = threading.Thread(target=kernel_loop, args=(stop,), name="io", daemon=True)
    th.start()
    try:
        j = judged_until(lambda j: th.ident in j.exempt)
        assert th.ident in j.exempt
        assert th.ident not in j.blocking and th.ident not in j.watched
    finally:
        stop.append(1)
        th.join(DEADLINE)


def test_the_calling_thread_is_never_judged_and_the_main_thread_is() -> None:
    seen: list[Judgement] = []
    with started(lambda: seen.append(judge())) as (th,):
        pass
    (j,) = seen
    me = th.ident
    assert me not in j.blocking and me not in j.watched and me not in j.exempt
    main = threading.main_thread().ident
    assert main in j.blocking or main in j.watched


# -- the re-check before paging ------------------------------------------------------
def holds(judgement: Judgement) -> bool:
    """Whether paging's section guards (pageio.thread_guards) let the section run."""
    try:
        list(itertools.starmap(operator.call, pageio.thread_guards(judgement)))
    except KeyError:
        return False
    return True


def test_the_guards_hold_until_a_watched_thread_moves() -> None:
    q: queue.Queue[int] = queue.Queue()
    got = threading.Event()

    def twice() -> None:
        q.get()
        got.set()
        q.get()

    with started(twice) as (th,):
        try:
            j = only(all_watched([th]), [th])
            assert not j.blockers and holds(j)
            q.put(1)
            assert got.wait(DEADLINE)
            all_watched([th])  # in a wait again, but in another frame
            assert not holds(j)
        finally:
            q.put(2)
            q.put(3)


def test_the_guards_hold_until_another_thread_starts() -> None:
    with event_waits() as ths:
        j = only(all_watched(ths), ths)
        assert holds(j)
        with event_waits():
            assert not holds(j)


def test_the_guards_hold_checks_the_instruction_of_a_pinned_watch() -> None:
    with sleepers() as ths:
        j = only(all_watched(ths), ths)
        ident = ths[0].ident
        watch = j.watched[ident]
        moved = dict(j.watched)
        moved[ident] = watch._replace(lasti=watch.lasti + 2)
        assert not holds(Judgement({}, moved, j.exempt))


# -- the list of waits ---------------------------------------------------------------
def test_every_known_wait_is_found_on_this_python() -> None:
    import concurrent.futures.thread  # noqa: F401  (the modules of the waits)
    import multiprocessing.connection  # noqa: F401

    known = threads._known_waits()
    missing = []
    for module, qualname in threads.WAITS:
        code = threads._code_of(sys.modules[module], qualname)
        optional = qualname.startswith(("KqueueSelector", "EpollSelector")) or (
            qualname == "Thread._wait_for_tstate_lock" and sys.version_info >= (3, 13)
        )
        if code is None and not optional:
            missing.append(qualname)
        assert code is None or known[id(code)] == (code, None)
    for module, qualname, _ in threads.PINNED_WAITS:
        code = threads._code_of(sys.modules[module], qualname)
        if code is None or not known.get(id(code), (None, None))[1]:
            missing.append(qualname)
    assert not missing
