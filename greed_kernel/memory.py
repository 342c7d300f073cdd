"""How much memory the kernel uses, and how close it is to its limit.

`MemoryProbe.rss()` and `MemoryProbe.pressure()` run after every cell, so they
are built to cost microseconds: our own RSS is one `pread` of an already open
`/proc/self/statm`, the list of child processes is refreshed only every few
seconds, and the limit (cgroup or RAM) is discovered once.

CUDA is only ever queried once the user's code has initialised it: importing
torch or calling into CUDA ourselves would cost seconds and hundreds of MiB of
GPU memory per device, and would break fork-based DataLoader workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)

__all__ = ["CudaDevice", "MemoryProbe", "cgroup_limit", "malloc_trim"]

# Limits at or above this mean "no limit": cgroup v1 reports
# 9223372036854771712 (PAGE_COUNTER_MAX pages) when unlimited.
_UNLIMITED = 1 << 60


@dataclass(frozen=True, slots=True)
class CudaDevice:
    """Memory of one CUDA device as PyTorch's caching allocator sees it."""

    device: int
    #: Bytes in live tensors.
    allocated: int
    #: Bytes held by the caching allocator (allocated + cached free blocks).
    reserved: int
    #: The device's total memory.
    total: int


# -- limits ------------------------------------------------------------------------


def _read_limit(path: str) -> int | None:
    """A cgroup limit file's value, None for "max", huge values, or no such file."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    if value <= 0 or value >= _UNLIMITED:
        return None
    return value


def _own_cgroup_dirs(root: str, proc_cgroup: str, v1_controller: str | None) -> list[str]:
    """Our own cgroup and its ancestors under `root`, deepest first (may be empty).

    In a container with a cgroup namespace the process sits at the root of
    the mount; on a host (systemd slices) it sits deeper, and any ancestor's
    limit applies too.
    """
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError):
        return []
    rel = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if v1_controller is None and controllers == "":
            rel = path  # "0::/user.slice/..." (v2)
            break
        if v1_controller is not None and v1_controller in controllers.split(","):
            rel = path
            break
    if not rel:
        return []
    base = os.path.join(root, v1_controller) if v1_controller else root
    dirs = []
    rel = rel.strip("/")
    while rel:
        candidate = os.path.join(base, rel)
        if os.path.isdir(candidate):
            dirs.append(candidate)
        rel = os.path.dirname(rel)
    return dirs


def cgroup_limit(
    root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup"
) -> int | None:
    """The memory limit of our cgroup in bytes, or None when there is none.

    cgroup v2: `memory.max`; cgroup v1: `memory/memory.limit_in_bytes`. The
    files at `root` (the container's own cgroup under a cgroup namespace) are
    read, and so are those of the cgroup named in `proc_cgroup` and its
    ancestors when they exist under `root`; the lowest limit wins. "max" and
    values of 2**60 and more mean unlimited.
    """
    limits: list[int] = []
    if os.path.exists(os.path.join(root, "cgroup.controllers")) or os.path.exists(
        os.path.join(root, "memory.max")
    ):
        dirs = [*_own_cgroup_dirs(root, proc_cgroup, None), root]
        names = ["memory.max"]
    else:
        v1 = os.path.join(root, "memory")
        dirs = [*_own_cgroup_dirs(root, proc_cgroup, "memory"), v1]
        names = ["memory.limit_in_bytes"]
    for d in dirs:
        for name in names:
            value = _read_limit(os.path.join(d, name))
            if value is not None:
                limits.append(value)
    return min(limits) if limits else None


@functools.lru_cache(maxsize=1)
def _auto_limit() -> int:
    """The cgroup limit if it is below physical RAM, else physical RAM (read once)."""
    try:
        total = int(psutil.virtual_memory().total)
    except Exception:
        log.debug("psutil.virtual_memory failed", exc_info=True)
        total = 0
    try:
        cgroup = cgroup_limit()
    except Exception:
        log.debug("cgroup_limit failed", exc_info=True)
        cgroup = None
    if cgroup is not None and (total <= 0 or cgroup < total):
        return cgroup
    return total


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
        return _auto_limit()

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
        now = time.monotonic()
        if now - self._shmem_at >= self.children_refresh_s:
            self._shmem = _shmem("self") + sum(_shmem(pid) for pid in list(self._children))
            self._shmem_at = now
        return own_anon + children_anon + self._shmem

    def _children_memory(self) -> tuple[int, int]:
        """(RSS, RssAnon + RssShmem) of the children, summed."""
        now = time.monotonic()
        pid = os.getpid()
        if pid != self._children_pid or now - self._children_at >= self.children_refresh_s:
            self._refresh_children(pid, now)
        total = anon = 0
        gone = None
        for child_pid, handle in list(self._children.items()):
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
        torch = sys.modules.get("torch")
        if torch is None:
            return []
        try:
            tcuda = torch.cuda
            if not tcuda.is_initialized():
                return []
            # Only devices with a CUDA context: asking about another one could
            # create a context there (cudaMallocAsync's stats switch device).
            has_context = getattr(torch._C, "_cuda_hasPrimaryContext", None)
            devices = []
            for i in range(tcuda.device_count()):
                if has_context is not None and not has_context(i):
                    continue
                allocated, reserved = _allocator_bytes(tcuda, i)
                if has_context is None and not (allocated or reserved):
                    continue  # never used, as far as we can tell without a context check
                total = self._totals.get(i)
                if total is None:
                    total = int(tcuda.get_device_properties(i).total_memory)
                    self._totals[i] = total
                devices.append(CudaDevice(i, allocated, reserved, total))
            return devices
        except Exception:
            log.debug("querying CUDA memory failed", exc_info=True)
            return []

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


def _allocator_bytes(tcuda: object, device: int) -> tuple[int, int]:
    """(allocated, reserved) bytes of PyTorch's caching allocator on `device`."""
    try:
        # One nested dict: memory_allocated() and memory_reserved() would each
        # build, flatten and sort the whole statistics dict.
        stats = tcuda.memory_stats_as_nested_dict(device)  # type: ignore[attr-defined]
        return (
            int(stats["allocated_bytes"]["all"]["current"]),
            int(stats["reserved_bytes"]["all"]["current"]),
        )
    except Exception:
        return (
            int(tcuda.memory_allocated(device)),  # type: ignore[attr-defined]
            int(tcuda.memory_reserved(device)),  # type: ignore[attr-defined]
        )


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
