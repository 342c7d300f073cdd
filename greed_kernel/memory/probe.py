"""How much memory the kernel uses, and how close it is to its limit.

`MemoryProbe.rss()` and `MemoryProbe.pressure()` run after every cell, so they
are built to cost microseconds: our own RSS is one `pread` of an already open
`/proc/self/statm`, the list of child processes is refreshed only every few
seconds, and the limit (cgroup or RAM, see `limits`) is discovered once.

CUDA is only ever queried through `torchlib`, once the user's code has
initialised it.

The probe may be called from the comm thread and from the main thread at once:
its bookkeeping of child processes (open fds of their statm files) is guarded
by a lock, so that no thread reads an fd another one has just closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import sys
import threading
import time
import weakref

import psutil

from . import torchstate
from .limits import auto_limit
from .torchstate import CudaDevice

log = logging.getLogger(__name__)

__all__ = ["MemoryProbe", "malloc_trim"]

# -- own RSS -----------------------------------------------------------------------

try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # not POSIX
    _PAGE_SIZE = 4096

_statm_lock = threading.Lock()
_statm_fd = -1
_statm_pid = -1


def _proc_descendants(pid: int, limit: int = 4096) -> set[int] | None:
    """Descendants of *pid* from Linux's ``/proc/PID/task/TID/children`` files.

    Reads only this process tree (~0.1 ms), where psutil's ``children()`` reads every
    process on the machine (ms). None where those files do not exist.
    """
    found: set[int] = set()
    todo = [pid]
    while todo and len(found) < limit:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            if current == pid:
                return None
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                if current == pid and tid == str(pid):
                    return None  # kernel without CONFIG_PROC_CHILDREN
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _statm_rss() -> int | None:
    """Our RSS from one pread of a kept-open /proc/self/statm; None where unavailable."""
    own = _own_statm()
    return None if own is None else own[0]


def _statm(fd: int) -> tuple[int, int]:
    """(resident, shared) bytes from an open /proc/PID/statm. resident - shared is
    RssAnon; shared is RssFile + RssShmem."""
    # "size resident shared text lib data dt", in pages
    fields = os.pread(fd, 128, 0).split(None, 3)
    return int(fields[1]) * _PAGE_SIZE, int(fields[2]) * _PAGE_SIZE


def _own_statm() -> tuple[int, int] | None:
    """Our (resident, shared) from one pread of a kept-open /proc/self/statm; None where
    unavailable. The fd is reopened after fork: it names the process that opened it.
    """
    global _statm_fd, _statm_pid
    pid = os.getpid()
    if _statm_pid != pid:  # first call, or first call after a fork
        with _statm_lock:
            if _statm_pid != pid:
                old = _statm_fd
                try:
                    new = os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    new = -1  # no /proc (macOS): the caller falls back to psutil
                if old >= 0:  # the parent's, inherited through fork
                    with contextlib.suppress(OSError):
                        os.close(old)
                _statm_fd, _statm_pid = new, pid
    fd = _statm_fd
    if fd < 0:
        return None
    try:
        return _statm(fd)
    except (OSError, ValueError, IndexError):
        return None


def _shmem(pid: int | str) -> int:
    """RssShmem of a process in bytes (0 where unknown). /proc/PID/status costs several
    times a statm read, so the probe reads it only every few seconds."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
        i = text.find(b"RssShmem:")
        return 0 if i < 0 else int(text[i + 9 : text.index(b"k", i)]) * 1024
    except (OSError, ValueError):
        return 0


def _open_child(pid: int) -> int | psutil.Process | None:
    """A handle to read a child's RSS with: an fd of its statm, else a psutil.Process."""
    try:
        return os.open(f"/proc/{pid}/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # /proc works: the child is already gone
    except OSError:
        return None
    try:
        return psutil.Process(pid)
    except Exception:
        return None


def _close_handle(handle: object) -> None:
    if type(handle) is int:
        with contextlib.suppress(OSError):
            os.close(handle)


def _close_all(children: dict[int, int | psutil.Process]) -> None:
    for handle in children.values():
        _close_handle(handle)
    children.clear()


# -- the probe ---------------------------------------------------------------------

#: Every live probe, to give each a fresh lock in a forked child: a lock held by
#: another thread at fork() would stay held there for ever.
_probes: weakref.WeakSet[MemoryProbe] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for probe in list(_probes):
        probe._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


class MemoryProbe:
    """Cheap readings of the kernel's memory: RSS, CUDA allocator state, pressure."""

    def __init__(self, limit: int = 0, children_refresh_s: float = 2.0) -> None:
        """`limit` in bytes, 0 for automatic (cgroup limit or RAM).

        `children_refresh_s`: how often, at most, the list of child processes
        is rebuilt (scanning /proc costs milliseconds); their RSS is read on
        every call.
        """
        self._limit = 0
        self.limit = limit
        self.children_refresh_s = float(children_refresh_s)
        # Child pid -> an open fd of its /proc/<pid>/statm (or a psutil.Process
        # where there is no /proc). Closed when the child goes or the probe dies.
        self._children: dict[int, int | psutil.Process] = {}
        weakref.finalize(self, _close_all, self._children)
        # Guards _children, _children_at, _children_pid and the RssShmem reading:
        # the comm thread and the main thread may both call the probe.
        self._lock = threading.Lock()
        _probes.add(self)
        self._children_at = -math.inf
        self._children_pid = -1
        self._totals: dict[int, int] = {}  # CUDA device -> total memory, which never changes
        self._shmem = 0  # RssShmem of the process and its children, as of _shmem_at
        self._shmem_at = -math.inf

    @property
    def limit(self) -> int:
        """The configured limit in bytes; 0 means automatic."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        value = int(value)
        if value < 0:
            raise ValueError(f"memory limit must be >= 0, got {value}")
        self._limit = value

    def effective_limit(self) -> int:
        """The configured limit if set, else the cgroup limit if below RAM, else RAM."""
        if self._limit > 0:
            return self._limit
        return auto_limit()

    # -- RSS -------------------------------------------------------------------

    def rss(self) -> int:
        """RSS of this process plus that of its children (recursively), in bytes.

        Children's RSS includes pages shared with us (fork), so the sum can
        overstate; it errs on the side of caution. Never raises.
        """
        own = _statm_rss()
        if own is None:
            try:
                own = int(psutil.Process().memory_info().rss)
            except Exception:
                own = 0
        return own + self._children_memory()[0]

    def unreclaimable(self) -> int:
        """Memory only swap could take away: RssAnon + RssShmem of this process and its
        children, in bytes. Paged-out memory and the page cache are not in it: the OS
        drops those pages under pressure and reads them back. Never raises.

        RssAnon comes from statm (resident - shared) at every call; RssShmem, which
        only /proc/PID/status has, is re-read every `children_refresh_s`.
        """
        own = _own_statm()
        if own is None:
            try:
                own_anon = int(psutil.Process().memory_full_info().uss)
            except Exception:
                own_anon = 0
        else:
            own_anon = own[0] - own[1]
        children_anon = self._children_memory()[1]
        with self._lock:
            now = time.monotonic()
            if now - self._shmem_at >= self.children_refresh_s:
                self._shmem = _shmem("self") + sum(_shmem(pid) for pid in self._children)
                self._shmem_at = now
            return own_anon + children_anon + self._shmem

    def _children_memory(self) -> tuple[int, int]:
        """(RSS, RssAnon + RssShmem) of the children, summed."""
        with self._lock:
            now = time.monotonic()
            pid = os.getpid()
            if pid != self._children_pid or now - self._children_at >= self.children_refresh_s:
                self._refresh_children(pid, now)
            total = anon = 0
            gone = None
            for child_pid, handle in self._children.items():
                try:
                    if type(handle) is int:
                        # The fd names that very process: once it is reaped, reads fail
                        # (ESRCH) even if its pid has been reused.
                        resident, shared = _statm(handle)
                        total += resident
                        anon += resident - shared
                    else:
                        rss = handle.memory_info().rss
                        total += rss
                        anon += rss
                except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
                    if gone is None:
                        gone = []
                    gone.append(child_pid)  # exited: drop it
                except Exception:  # AccessDenied after a setuid exec, say
                    pass
            if gone:
                for child_pid in gone:
                    _close_handle(self._children.pop(child_pid, None))
            return total, anon

    def _refresh_children(self, pid: int, now: float) -> None:
        """Rebuild the list of children (called with self._lock held)."""
        pids = _proc_descendants(pid)
        if pids is None:  # no /proc/<pid>/task/*/children here: psutil scans all processes
            try:
                pids = {c.pid for c in psutil.Process(pid).children(recursive=True)}
            except Exception:
                log.debug("listing child processes failed", exc_info=True)
                pids = set()
        children = self._children
        for child_pid in [p for p in children if p not in pids]:
            _close_handle(children.pop(child_pid))
        for child_pid in pids:
            if child_pid not in children:
                handle = _open_child(child_pid)
                if handle is not None:
                    children[child_pid] = handle
        self._children_at = now
        self._children_pid = pid

    # -- CUDA ------------------------------------------------------------------

    def cuda(self) -> list[CudaDevice]:
        """Allocator state of each CUDA device in use; [] if CUDA was never initialised.

        Never imports torch and never initialises CUDA; never raises.
        """
        return torchstate.cuda_devices(self._totals)

    # -- pressure --------------------------------------------------------------

    def pressure(self) -> float:
        """The highest fraction of a limit in use: memory the OS cannot reclaim
        (:meth:`unreclaimable`) of the limit, reserved of each GPU.

        In [0, 1], never NaN, never raises.
        """
        ratios: list[float] = []
        try:
            limit = self.effective_limit()
            if limit > 0:
                ratios.append(self.unreclaimable() / limit)
        except Exception:
            log.debug("reading RSS pressure failed", exc_info=True)
        try:
            ratios.extend(d.reserved / d.total for d in self.cuda() if d.total > 0)
        except Exception:
            log.debug("reading CUDA pressure failed", exc_info=True)
        worst = 0.0
        for ratio in ratios:
            if ratio > worst:  # False for NaN, which is thereby ignored
                worst = ratio
        return min(worst, 1.0)


# -- malloc_trim -------------------------------------------------------------------

_trim_lock = threading.Lock()
_trim_fn: object = None  # None: not looked up yet; False: unavailable


def _load_malloc_trim() -> object:
    if not sys.platform.startswith("linux"):
        return False
    for name in (None, "libc.so.6"):  # None: the symbols already in the process
        try:
            fn = ctypes.CDLL(name).malloc_trim
        except (OSError, AttributeError):  # musl has no malloc_trim
            continue
        fn.argtypes = [ctypes.c_size_t]
        fn.restype = ctypes.c_int
        return fn
    return False


def malloc_trim() -> bool:
    """Return freed heap memory to the OS with glibc's `malloc_trim(0)`.

    True if it ran, False where it does not exist (macOS, Windows, musl).
    Never raises. It can take a while on a large fragmented heap; ctypes
    releases the GIL meanwhile.
    """
    global _trim_fn
    fn = _trim_fn
    if fn is None:
        with _trim_lock:
            if _trim_fn is None:
                try:
                    _trim_fn = _load_malloc_trim()
                except Exception:
                    _trim_fn = False
            fn = _trim_fn
    if fn is False:
        return False
    try:
        fn(0)  # type: ignore[operator]
    except Exception:
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True
