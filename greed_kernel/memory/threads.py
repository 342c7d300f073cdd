"""Which other threads could write to user memory while greed pages it out.

Paging copies a buffer to a file, then maps the file over it: a write by another
thread in between would be lost. The copy and the remap run as one C-level step
that holds the GIL, so no Python bytecode of any thread runs during it. A thread
can then only write if it is inside a C call that released the GIL and writes
(a numpy or torch op, a ``ctypes.CDLL`` call, ...).

:func:`judge` looks at each thread's innermost Python frame. A thread is *waiting*
when that frame can, at whatever instruction it stands, only call C code that blocks
on a lock, a queue, a selector or the clock (see ``WAITS`` and ``PINNED_WAITS``):
such a thread cannot write while the GIL is held. Every other thread besides the
kernel's own blocks paging. The caller re-checks, with the GIL held and just before
the copy, that every watched thread still stands in the frame (and, where pinned,
at the instruction) that was judged, so that nothing ran in between.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
import types
import typing as t
from dataclasses import dataclass

from . import linecalls

#: Packages whose threads never write to user buffers.
KERNEL_PACKAGES = (
    "ipykernel",
    "IPython",
    "jupyter_client",
    "zmq",
    "tornado",
    "debugpy",
    "comm",
    "tqdm",
    "greed_kernel",
)

#: Functions each of whose own C calls only block or touch the function's own
#: objects, never user memory: a thread whose innermost frame runs one of them
#: cannot write, at any of its instructions. (module, qualified name) pairs, looked
#: up once their module is imported; one a Python version lacks is skipped.
WAITS: tuple[tuple[str, str], ...] = (
    # Event.wait, Queue.get/put, Semaphore.acquire, Barrier.wait, Timer and
    # Future.result all block here, in the C acquire of a fresh lock.
    ("threading", "Condition.wait"),
    # `with cond:` (Queue.get/put, Semaphore.acquire) blocked on the lock itself.
    ("threading", "Condition.__enter__"),
    ("threading", "Thread.join"),  # 3.13+: blocks in the C ThreadHandle.join
    ("threading", "Thread._wait_for_tstate_lock"),  # up to 3.12: join blocks here
    # Event loops (asyncio in a thread, socketserver, multiprocessing.connection.wait)
    ("selectors", "SelectSelector.select"),
    ("selectors", "_PollLikeSelector.select"),  # PollSelector, DevpollSelector
    ("selectors", "EpollSelector.select"),
    ("selectors", "KqueueSelector.select"),
    ("socket", "socket.accept"),
    # A Pipe or mp.Pool result reader: os.read into a fresh BytesIO of its own.
    ("multiprocessing.connection", "Connection._recv"),
    ("subprocess", "Popen._try_wait"),  # os.waitpid
)


#: Functions that are waits only on their lines whose calls (see _calls) are these,
#: as their other lines may run any callable (an executor's initializer, a task):
#: a thread there is watched at its instruction.
_GET = (("attr", ("fast", "work_queue"), "get"), (("const", True),))
_CALL_GET = (("fast", "get"), ())
_TASKS = (("global", "iter"), (("attr", ("fast", "taskqueue"), "get"), ("const", None)))
_NEXT = (("next",), (("iter", ("result", 0)),))  # FOR_ITER over the first call's result
PINNED_WAITS: tuple[tuple[str, str, tuple[tuple, ...]], ...] = (
    # An idle ThreadPoolExecutor worker (asyncio.to_thread's default executor's too)
    # blocks in the C SimpleQueue.get: `work_item = work_queue.get(block=True)`.
    ("concurrent.futures.thread", "_worker", (_GET,)),
    # multiprocessing.pool.ThreadPool's worker and result handler: `task = get()`, a
    # SimpleQueue's get (or a Connection's recv, in Python: then not the innermost).
    ("multiprocessing.pool", "worker", (_CALL_GET,)),
    ("multiprocessing.pool", "Pool._handle_results", (_CALL_GET,)),
    # `for taskseq, set_length in iter(taskqueue.get, None):` (SimpleQueue.get).
    ("multiprocessing.pool", "Pool._handle_tasks", (_TASKS, _NEXT)),
)

#: The real time.sleep (C, so a sleeping thread's innermost frame is its caller's).
_SLEEP = time.sleep if isinstance(time.sleep, types.BuiltinFunctionType) else None


class Watch(t.NamedTuple):
    """A waiting thread, as judged: what must still hold when paging starts."""

    frame: types.FrameType  # its innermost frame: the very same object must be
    lasti: int | None  # that frame's f_lasti, where only that instruction is safe
    what: str  # "waiting in threading.py:355 in Condition.wait"
    #: the frame's f_lasti when judged: it has not run since while it still reads so
    at: int = -1


@dataclass(frozen=True)
class Judgement:
    """What every thread but the current one could do while paging holds the GIL."""

    blocking: dict[int, str]  # ident -> "thread 'w' (running in train.py:12 in loop)"
    watched: dict[int, Watch]  # ident -> the wait it stands in
    exempt: frozenset[int]  # idents of the kernel's own threads
    #: Threads started through ``_thread`` and alive when judged (``threading`` does not
    #: know all of them), or -1 where this Python cannot tell.
    started: int = -1

    @property
    def judged(self) -> frozenset[int]:
        """Every thread judged (the current one aside): a thread not among them started
        since, and was not judged."""
        return self.exempt | self.watched.keys() | self.blocking.keys()

    @property
    def blockers(self) -> list[str]:
        """Descriptions of the threads that may write, for a user-facing line."""
        return list(self.blocking.values())


def judge() -> Judgement:
    """Judge every thread but the current one: kernel threads are exempt, threads
    in a known wait are watched, all others (no Python frame included) block."""
    me = threading.get_ident()
    started = thread_count()
    try:
        frames = sys._current_frames()
    except Exception:  # an interpreter without it: nothing can be judged
        frames = {}
    # Our own frame would make a cycle (this frame -> frames -> this frame) that keeps
    # the callers' frames and their locals alive until a collection.
    frames.pop(me, None)
    names = {th.ident: th for th in threading.enumerate() if th.ident is not None}
    blocking: dict[int, str] = {}
    watched: dict[int, Watch] = {}
    exempt: set[int] = set()
    for ident in sorted(set(frames) | set(names)):
        if ident == me:
            continue
        thread = names.get(ident)
        module = _module_of(thread) if thread is not None else _started_by(frames.get(ident))
        if _is_kernel_module(module):
            exempt.add(ident)
            continue
        label = f"thread {thread.name!r}" if thread is not None else f"thread {ident}"
        frame = frames.get(ident)
        if frame is None:
            blocking[ident] = f"{label} (outside Python code)"
            continue
        try:
            waits, lasti = _waiting(frame)
        except Exception:  # a frame we cannot read is not known to wait
            waits, lasti = False, None
        if not waits:
            blocking[ident] = f"{label} (running in {where(frame)})"
        else:
            watched[ident] = Watch(frame, lasti, f"waiting in {where(frame)}", frame.f_lasti)
    return Judgement(blocking, watched, frozenset(exempt), started)


def thread_count() -> int:
    """Threads started through ``_thread`` and alive now, -1 where unknown (C)."""
    count = getattr(_thread, "_count", None)
    return -1 if count is None else int(count())


def where(frame: types.FrameType) -> str:
    """``file.py:12 in function``, for messages."""
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {name}"


# -- the kernel's threads --------------------------------------------------------------
def _module_of(thread: threading.Thread) -> str:
    """The module that defines what the thread runs: its class, else its target."""
    kind = type(thread)
    module = getattr(kind, "__module__", "") or ""
    if module != "threading":
        return module
    target: t.Any = getattr(thread, "_target", None)
    owner = getattr(target, "__self__", None)
    if owner is not None:
        return getattr(type(owner), "__module__", "") or ""
    return getattr(target, "__module__", "") or ""


def _started_by(frame: types.FrameType | None) -> str:
    """The module of a thread's outermost frame: what runs a thread that ``threading``
    does not know (started with ``_thread.start_new_thread``, as execnet does)."""
    for _ in range(256):
        if frame is None or frame.f_back is None:
            break
        frame = frame.f_back
    return "" if frame is None else str(frame.f_globals.get("__name__", ""))


def _is_kernel_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in KERNEL_PACKAGES)


# -- known waits ---------------------------------------------------------------------
#: id(code) -> (code, None for a whole-function wait or the lines where it waits)
_known: dict[int, tuple[types.CodeType, frozenset[int] | None]] = {}
_looked_up: set[str] = set()  # modules whose entries are in _known


def _known_waits() -> dict[int, tuple[types.CodeType, frozenset[int] | None]]:
    """The code objects of WAITS and PINNED_WAITS, for the modules imported so far
    (a thread cannot run code of a module nobody imported)."""
    entries = [(m, q, None) for m, q in WAITS] + list(PINNED_WAITS)
    for module_name, qualname, pattern in entries:
        key = f"{module_name}:{qualname}"
        module = sys.modules.get(module_name)
        if key in _looked_up or module is None:
            continue
        _looked_up.add(key)
        code = _code_of(module, qualname)
        if code is None:
            continue
        if pattern is None:
            _known[id(code)] = (code, None)
            continue
        lines = frozenset(line for line, calls in linecalls.lines(code).items() if calls == pattern)
        if lines:
            _known[id(code)] = (code, lines)
    return _known


def _code_of(module: types.ModuleType, qualname: str) -> types.CodeType | None:
    obj: t.Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _waiting(frame: types.FrameType) -> tuple[bool, int | None]:
    """Whether a thread whose innermost frame is ``frame`` cannot write, and the
    instruction (f_lasti) it must stay at for that, None if any of the frame's."""
    code = frame.f_code
    known = _known_waits().get(id(code))
    if known is not None and known[0] is code:
        lines = known[1]
        if lines is None:
            return True, None
        return linecalls.line_at(code, frame.f_lasti) in lines, frame.f_lasti
    return _sleeping(frame), frame.f_lasti


# -- time.sleep ----------------------------------------------------------------------
#: (id(code), line) -> (code, that line's calls, or None when it is not a plain
#: line); bounded, so that the code of many short-lived threads does not pile up.
_shapes: dict[tuple[int, int], tuple[types.CodeType, tuple[tuple, ...] | None]] = {}
_SHAPES_MAX = 512
_PLAIN_ARGS = ("const", "fast", "global", "name", "deref")


def _sleeping(frame: types.FrameType) -> bool:
    """The frame's current line does nothing but call the real ``time.sleep`` with
    constants or plain names: ``time.sleep(0.5)``, ``sleep(delay)``. time.sleep is C,
    so the innermost frame of a sleeping thread is its caller's; every instruction
    of such a line only loads names, calls time.sleep or drops its None."""
    if _SLEEP is None:
        return False
    code, lasti = frame.f_code, frame.f_lasti
    line = linecalls.line_at(code, lasti)
    if line is None:
        return False
    cached = _shapes.get((id(code), line))
    if cached is None or cached[0] is not code:
        if len(_shapes) >= _SHAPES_MAX:
            _shapes.clear()
        cached = (code, linecalls.lines(code, only=line).get(line))
        _shapes[(id(code), line)] = cached
    calls = cached[1]
    if calls is None or len(calls) != 1 or any(a[0] not in _PLAIN_ARGS for a in calls[0][1]):
        return False
    callee = calls[0][0]
    if callee[0] in ("global", "name"):
        return _lookup(frame, callee[0], callee[1]) is _SLEEP
    if callee[0] == "attr" and callee[2] == "sleep" and callee[1][0] in ("global", "name"):
        module = _lookup(frame, callee[1][0], callee[1][1])
        return module is sys.modules.get("time") and getattr(module, "sleep", None) is _SLEEP
    return False


_MISSING = object()


def _lookup(frame: types.FrameType, kind: str, name: str) -> object:
    """What LOAD_GLOBAL or LOAD_NAME of ``name`` finds in ``frame``, through plain
    dicts only (a mapping of another kind could run code: not looked into)."""
    spaces: list[object] = [frame.f_globals, frame.f_builtins]
    if kind == "name":  # module or class level code: its locals are not fast locals
        spaces.insert(0, frame.f_locals)
    for space in spaces:
        if type(space) is not dict:
            return _MISSING
        if name in space:
            return space[name]
    return _MISSING
