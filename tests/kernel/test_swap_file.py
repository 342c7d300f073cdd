"""greed_kernel.memory.swap: real MADV_PAGEOUT on a real swap file (root only; swap is on
for the whole machine while these run, so the file is small and always turned off and
removed). The `swap` marker keeps them out of the parallel run: `make test` runs them
alone, after the others."""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from greed_kernel.memory import procmaps, swap
from greed_kernel.memory.procmaps import PAGE

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


def _anonymous(length: int) -> tuple[mmap.mmap, int]:
    """A private anonymous mapping, every page written, and its address."""
    area = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.write(b"\x07" * length)
    cell = ctypes.c_char.from_buffer(area)
    address = ctypes.addressof(cell)
    del cell
    return area, address


# -- a real swap file ---------------------------------------------------------------------

SWAP_FILE_BYTES = 512 * MiB
ARRAY_BYTES = 256 * MiB


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _swap_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory on a disk (a swap file on tmpfs cannot be used)."""
    for candidate in (tmp_path_factory.mktemp("swap"), Path("/var/tmp")):
        if candidate.is_dir() and not procmaps.is_ram_backed(candidate):
            return candidate
    pytest.skip("no temporary directory on a disk for a swap file")


@pytest.fixture(scope="module")
def swap_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 512 MiB swap file, on for the module's tests, then off and removed."""
    if os.geteuid() != 0:
        pytest.skip("swapon needs root")
    if not shutil.which("mkswap") or not shutil.which("swapon"):
        pytest.skip("mkswap or swapon is not installed")
    if not swap.supported():
        pytest.skip("this kernel has no MADV_PAGEOUT")
    path = _swap_directory(tmp_path_factory) / f"greed-test-swap-{os.getpid()}"
    on = False
    try:
        with open(path, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            os.posix_fallocate(f.fileno(), 0, SWAP_FILE_BYTES)
        made = _run("mkswap", str(path))
        if made.returncode != 0:
            pytest.skip(f"mkswap failed: {made.stderr.strip()}")
        started = _run("swapon", str(path))
        if started.returncode != 0:
            pytest.skip(f"swapon failed: {started.stderr.strip()}")
        on = True
        yield path
    finally:
        if on or str(path) in Path("/proc/swaps").read_text():
            stopped = _run("swapoff", str(path))
            assert stopped.returncode == 0, f"swapoff {path} failed: {stopped.stderr}"
        path.unlink(missing_ok=True)


def _rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def _whole_pages(array: object) -> tuple[int, int]:
    address, nbytes = array.ctypes.data, array.nbytes  # type: ignore[attr-defined]
    return -(-address // PAGE) * PAGE, (address + nbytes) // PAGE * PAGE


@pytest.mark.swap
def test_page_out_swaps_an_array_out_and_every_value_comes_back(swap_file: Path) -> None:
    np = pytest.importorskip("numpy")
    if swap.room() < ARRAY_BYTES:
        pytest.skip(f"swap is on but room() is {swap.room()} (swappiness 0 or a cgroup bound)")
    array = np.arange(ARRAY_BYTES // 8, dtype=np.int64) * 3
    crc = zlib.crc32(memoryview(array).cast("B"))
    lo, hi = _whole_pages(array)
    before = _rss_anon()

    assert swap.page_out([(lo, hi)]) == hi - lo
    assert swap.swapped_bytes([(lo, hi)]) >= 0.9 * (hi - lo)
    assert before - _rss_anon() >= 0.8 * (hi - lo)

    assert zlib.crc32(memoryview(array).cast("B")) == crc  # every page faults back in
    assert swap.swapped_bytes([(lo, hi)]) == 0


@pytest.mark.swap
def test_prefetch_reads_a_swapped_range_back(swap_file: Path) -> None:
    np = pytest.importorskip("numpy")
    array = np.full(64 * MiB // 8, 9, dtype=np.int64)
    lo, hi = _whole_pages(array)
    assert swap.page_out([(lo, hi)]) == hi - lo
    # the pages stay in the swap cache after a page-out until reclaim takes them;
    # after a read and a second page-out (clean pages: nothing is written) they
    # are on the swap file only
    assert int(array.sum()) == 9 * len(array)
    assert swap.page_out([(lo, hi)]) == hi - lo
    # No count of swap-ins is asserted: pages reclaim has not taken yet are still in
    # the swap cache (nothing to read), and MADV_WILLNEED's reads are asynchronous. CI
    # once saw 8,103 of the 16,384 pages read when the count was looked at.
    assert swap.prefetch([(lo, hi)]) == hi - lo
    assert int(array.sum()) == 9 * len(array)


@pytest.mark.swap
def test_writes_after_paging_are_kept(swap_file: Path) -> None:
    np = pytest.importorskip("numpy")
    array = np.full(ARRAY_BYTES // 8, 5, dtype=np.int64)
    lo, hi = _whole_pages(array)
    assert swap.page_out([(lo, hi)]) == hi - lo
    array[::1024] += 1  # a write on every other page, into swapped memory
    assert swap.swapped_bytes([(lo, hi)]) > 0  # the untouched pages are still out
    assert swap.page_out([(lo, hi)]) == hi - lo
    assert int(array[::1024].sum()) == 6 * len(array[::1024])
    assert int(array.sum()) == 5 * len(array) + len(array[::1024])


@pytest.mark.swap
def test_freed_swapped_memory_reads_zeros(swap_file: Path) -> None:
    np = pytest.importorskip("numpy")
    # an allocator's purge of a swapped range (MADV_DONTNEED) reads zeros
    area, lo = _anonymous(64 * PAGE)
    try:
        assert swap.page_out([(lo, lo + 64 * PAGE)]) == 64 * PAGE
        area.madvise(mmap.MADV_DONTNEED)
        assert area[:] == bytes(64 * PAGE)
    finally:
        area.close()
    # a paged array freed, and a fresh one of the same size
    array = np.full(ARRAY_BYTES // 8, 7.0)
    assert swap.page_out([_whole_pages(array)]) > 0
    del array
    fresh = np.zeros(ARRAY_BYTES // 8)
    assert not fresh.any()


@pytest.mark.swap
def test_the_pager_pages_to_swap_where_swap_has_room(swap_file: Path, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    from greed_kernel.memory.paging import Pager
    from greed_kernel.memory.sizes import owned_buffers

    if swap.room() < ARRAY_BYTES:
        pytest.skip(f"swap is on but room() is {swap.room()} (swappiness 0 or a cgroup bound)")
    array = np.arange(ARRAY_BYTES // 8, dtype=np.int64) * 5
    crc = zlib.crc32(memoryview(array).cast("B"))
    pager = Pager(str(tmp_path))
    result = pager.page_out(owned_buffers(array))
    assert result.bytes >= 0.9 * ARRAY_BYTES and pager.swapping
    assert pager.paged_in(owned_buffers(array)) >= 0.9 * ARRAY_BYTES  # swapped out now
    assert pager.paged.current is None  # no paging file was made: nothing is mapped
    assert zlib.crc32(memoryview(array).cast("B")) == crc
    pager.close()
