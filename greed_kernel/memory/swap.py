"""Page stale anonymous memory out to swap, where the machine has swap with room.

``madvise(MADV_PAGEOUT)`` (Linux 5.4 and later) on a private anonymous range
asks Linux to reclaim those pages now: it writes them to swap and unmaps
them. The memory stays anonymous, so this is exact by construction: a read
faults the same bytes back in, a write is never lost, an allocator's
``MADV_DONTNEED`` purge reads zeros afterwards, and no mapping is created (no
cost under ``vm.max_map_count``). File paging (``paging``) stays for machines
without swap.

What Linux does with the pages, as seen on Linux 6.18 with a swap file:

* ``RssAnon`` drops at once and ``/proc/self/pagemap`` shows the pages as
  swapped, but the pages stay in the swap cache (``SwapCached``), still
  charged to the cgroup, until reclaim takes them. They are clean once
  written, so reclaim under a cgroup limit or machine pressure frees them
  before anything is killed, and a read before that is only a minor fault.
* Reclaim takes them only where anonymous memory may be reclaimed at all:
  with swappiness 0 (the cgroup's own ``memory.swappiness`` under cgroup v1,
  ``vm.swappiness`` under v2) ``MADV_PAGEOUT`` still writes and unmaps the
  pages, but the swap cache keeps them charged and the cgroup's next
  allocation past its limit was OOM-killed. `room` is therefore 0 there.
* Pages shared with a forked child (copy-on-write) are left in place.

`room` says how much may go out, `page_out` asks, `swapped_bytes` reads back
what went, `prefetch` starts reading a range back in. The caller passes only
ranges that ``/proc/self/maps`` shows as private anonymous read-write memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import mmap
import os
import sys
import typing as t

from . import limits
from .procmaps import PAGE

log = logging.getLogger(__name__)

__all__ = [
    "MADV_PAGEOUT",
    "cgroup_swap_room",
    "page_out",
    "prefetch",
    "room",
    "supported",
    "swapped_bytes",
]

#: madvise advice "reclaim these pages now" (Linux >= 5.4).
MADV_PAGEOUT: int = getattr(mmap, "MADV_PAGEOUT", 21)
_MADV_WILLNEED: int = getattr(mmap, "MADV_WILLNEED", 3)
# cgroup v1 reports 9223372036854771712 (PAGE_COUNTER_MAX pages) for "no limit".
_UNLIMITED = 1 << 60
# Most pagemap entries read at once: 1 Mi pages, 4 GiB of memory, 8 MiB of entries.
_PAGEMAP_CHUNK = 1 << 20
# pagemap entry, top byte (bits 56..63): bit 62 "swapped".
_SWAPPED_IN_TOP_BYTE = 1 << (62 - 56)
_SWAPPED_TABLE = bytes(1 if b & _SWAPPED_IN_TOP_BYTE else 0 for b in range(256))

_madvise: t.Any = None
_supported: bool | None = None


def _libc_madvise() -> t.Any:
    """libc's madvise through ctypes (releases the GIL while the kernel works)."""
    global _madvise
    if _madvise is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.madvise
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise = fn
    return _madvise


def supported() -> bool:
    """Whether this kernel accepts MADV_PAGEOUT on our anonymous memory (probed once).

    The probe advises one fresh anonymous page: EINVAL means a kernel older
    than 5.4, or memory locked by ``mlockall(MCL_FUTURE)`` (which cannot be
    paged out either); EPERM or ENOSYS a seccomp filter. Without swap the
    call succeeds and does nothing, so the probe says nothing about room.
    """
    global _supported
    if _supported is None:
        _supported = _probe()
        if not _supported:
            log.debug("MADV_PAGEOUT is not available here")
    return _supported


def _probe() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        madvise = _libc_madvise()
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        with mmap.mmap(-1, PAGE, flags=flags) as page:
            page[0] = 1
            cell = ctypes.c_char.from_buffer(page)
            try:
                ok = madvise(ctypes.addressof(cell), PAGE, MADV_PAGEOUT) == 0
            finally:
                del cell  # the mmap cannot close while ctypes holds its buffer
        return ok
    except Exception:
        log.debug("MADV_PAGEOUT probe failed", exc_info=True)
        return False


def page_out(ranges: t.Iterable[tuple[int, int]]) -> int:
    """Ask Linux to swap out each [lo, hi) range now; the bytes asked for.

    Each range is shrunk to its whole pages. A range the kernel refuses (a
    locked or huge-TLB mapping, an unmapped hole) is skipped and logged at
    debug level. Returns 0 when MADV_PAGEOUT is not supported. The bytes
    asked for are not the bytes that went: `swapped_bytes` tells. Never
    raises.
    """
    return _advise(ranges, MADV_PAGEOUT) if supported() else 0


def _advise(ranges: t.Iterable[tuple[int, int]], advice: int) -> int:
    """madvise(advice) on the whole pages of each range; the bytes of the calls that worked."""
    total = 0
    try:
        madvise = _libc_madvise()
        for lo, hi in ranges:
            start = -(-lo // PAGE) * PAGE
            end = hi // PAGE * PAGE
            if end <= start:
                continue
            if madvise(start, end - start, advice) == 0:
                total += end - start
            else:
                code = ctypes.get_errno()
                log.debug(
                    "madvise(%d) on %#x-%#x: %s",
                    advice,
                    start,
                    end,
                    errno.errorcode.get(code, code),
                )
    except Exception:
        log.debug("madvise(%d) failed", advice, exc_info=True)
    return total


def prefetch(ranges: t.Iterable[tuple[int, int]]) -> int:
    """Start reading each [lo, hi) range back from swap (MADV_WILLNEED); bytes asked.

    Linux queues the reads of the whole range at once, which pages a range in
    faster than first use does, one fault (and a few pages of readahead) at a
    time. The pages land in the swap cache; the first use of each then is a
    minor fault. 0 where MADV_PAGEOUT is not supported. Never raises.
    """
    return _advise(ranges, _MADV_WILLNEED) if supported() else 0


def swapped_bytes(ranges: t.Iterable[tuple[int, int]]) -> int:
    """How many bytes of the whole pages of these ranges are swapped out now.

    Reads /proc/self/pagemap (bit 62 of a page's entry: "swapped"), one
    pread per range (per 4 GiB of a larger one), and counts in C through
    ``bytes.translate``. 0 for what cannot be read; never raises.
    """
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return 0
    pages = 0
    try:
        for lo, hi in ranges:
            first = -(-lo // PAGE)
            stop = hi // PAGE
            while first < stop:
                count = min(stop - first, _PAGEMAP_CHUNK)
                raw = os.pread(fd, count * 8, first * 8)
                if not raw:
                    break
                pages += raw[7::8].translate(_SWAPPED_TABLE).count(1)
                first += len(raw) // 8
    except Exception:
        log.debug("reading pagemap failed", exc_info=True)
    finally:
        os.close(fd)
    return pages * PAGE


def room(root: str = "/sys/fs/cgroup", proc: str = "/proc") -> int:
    """Bytes this process could swap out now and get back as memory; 0 when none.

    0 without MADV_PAGEOUT (see `supported`), without swap (``/proc/swaps``
    lists none, or ``SwapFree`` is 0), or with swappiness 0. Otherwise
    ``SwapFree`` bounded by the cgroup's swap headroom (`cgroup_swap_room`).
    `root` and `proc` are where cgroupfs and procfs are mounted (tests point
    them at a fake tree). Reads a handful of small files; never raises.
    """
    try:
        if not supported():
            return 0
        free = _swap_free(proc)
        if free <= 0 or _swappiness(root, proc) == 0:
            return 0
        cgroup = cgroup_swap_room(root, proc)
        return free if cgroup is None else max(0, min(free, cgroup))
    except Exception:
        log.debug("swap room unknown", exc_info=True)
        return 0


def cgroup_swap_room(root: str = "/sys/fs/cgroup", proc: str = "/proc") -> int | None:
    """What our cgroup and its ancestors let us swap out and use again; None: no bound.

    cgroup v2: ``memory.swap.max`` (and ``memory.swap.high``) minus
    ``memory.swap.current``, at each level. cgroup v1:
    ``memory.memsw.limit_in_bytes`` bounds RAM plus swap, so swapping out more
    than ``(memsw.limit - limit) - (memsw.usage - usage)`` (the swap allowance
    less the swap in use) frees RAM that the RAM-plus-swap limit forbids
    using; an unlimited memsw (or none: swap accounting off) leaves swap
    unbounded. The lowest level's bound wins.
    """
    proc_cgroup = os.path.join(proc, "self", "cgroup")
    bounds: list[int] = []
    if _is_v2(root):
        for d in [*limits._own_cgroup_dirs(root, proc_cgroup, None), root]:
            top = _min_limit(_read_int(d, "memory.swap.max"), _read_int(d, "memory.swap.high"))
            if top is not None:
                bounds.append(top - (_read_int(d, "memory.swap.current") or 0))
    else:
        v1 = os.path.join(root, "memory")
        for d in [*limits._own_cgroup_dirs(root, proc_cgroup, "memory"), v1]:
            memsw = _limit(_read_int(d, "memory.memsw.limit_in_bytes"))
            if memsw is None:
                continue
            limit = _limit(_read_int(d, "memory.limit_in_bytes")) or memsw
            used = (_read_int(d, "memory.memsw.usage_in_bytes") or 0) - (
                _read_int(d, "memory.usage_in_bytes") or 0
            )
            bounds.append(memsw - limit - max(0, used))
    return max(0, min(bounds)) if bounds else None


def _is_v2(root: str) -> bool:
    """The unified hierarchy is mounted at `root` (as `limits.cgroup_limit` decides)."""
    return os.path.exists(os.path.join(root, "cgroup.controllers")) or os.path.exists(
        os.path.join(root, "memory.max")
    )


def _swap_free(proc: str) -> int:
    """SwapFree in bytes; 0 when /proc/swaps lists no swap area."""
    swaps = _read_text(os.path.join(proc, "swaps"))
    if swaps is not None and len([ln for ln in swaps.splitlines() if ln.strip()]) <= 1:
        return 0  # only the header line
    meminfo = _read_text(os.path.join(proc, "meminfo")) or ""
    for line in meminfo.splitlines():
        if line.startswith("SwapFree:"):
            fields = line.split()
            try:
                return int(fields[1]) * 1024 if len(fields) >= 2 else 0
            except ValueError:
                return 0
    return 0


def _swappiness(root: str, proc: str) -> int | None:
    """The swappiness reclaim applies to our memory: v1 our cgroup's, else vm.swappiness."""
    if not _is_v2(root):
        proc_cgroup = os.path.join(proc, "self", "cgroup")
        for d in [*limits._own_cgroup_dirs(root, proc_cgroup, "memory"), root + "/memory"]:
            value = _read_int(d, "memory.swappiness")
            if value is not None:
                return value
    return _read_int(os.path.join(proc, "sys", "vm"), "swappiness")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _read_int(directory: str, name: str) -> int | None:
    """An integer file's value; None when missing, garbage or "max"."""
    text = _read_text(os.path.join(directory, name))
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _limit(value: int | None) -> int | None:
    """A v1 limit, None when absent or "unlimited" (2**60 and more)."""
    return None if value is None or value >= _UNLIMITED else value


def _min_limit(*values: int | None) -> int | None:
    known = [v for v in values if v is not None and v < _UNLIMITED]
    return min(known) if known else None
