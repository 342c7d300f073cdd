"""greed_kernel.memory.swap: how much may be swapped out (on fake /proc and cgroup trees), and
MADV_PAGEOUT on memory that cannot go to swap. The tests on a real swap file are in
tests/kernel/test_swap_file.py."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

import pytest

from greed_kernel.memory import swap
from greed_kernel.memory.procmaps import PAGE

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20
GiB = 1 << 30
V1_UNLIMITED = "9223372036854771712"
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
SWAPS_ONE = SWAPS_HEADER + "/swapfile                               file\t\t2097148\t\t0\t\t-2\n"


# -- room() on fake trees ---------------------------------------------------------------


def _proc(
    tmp_path: Path,
    swap_free: int = 2 * GiB,
    swaps: str = SWAPS_ONE,
    cgroup: str = "0::/\n",
    swappiness: str = "60\n",
) -> str:
    """A fake procfs: swaps, meminfo, self/cgroup, sys/vm/swappiness."""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "sys" / "vm").mkdir(parents=True)
    (proc / "swaps").write_text(swaps)
    (proc / "meminfo").write_text(
        f"MemTotal:       24000000 kB\nSwapTotal:       2097148 kB\n"
        f"SwapFree:       {swap_free // 1024} kB\n"
    )
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "sys" / "vm" / "swappiness").write_text(swappiness)
    return str(proc)


def _files(directory: Path, values: dict[str, str]) -> None:
    """Write cgroup files (name -> value) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (directory / name).write_text(value + "\n")


@pytest.fixture
def probed(monkeypatch: pytest.MonkeyPatch) -> None:
    """MADV_PAGEOUT counts as supported, whatever this kernel is."""
    monkeypatch.setattr(swap, "_supported", True)


def _v1_root(tmp_path: Path, swappiness: str = "60") -> Path:
    mem = tmp_path / "cg" / "memory"
    _files(
        mem,
        {
            "memory.limit_in_bytes": V1_UNLIMITED,
            "memory.memsw.limit_in_bytes": V1_UNLIMITED,
            "memory.swappiness": swappiness,
        },
    )
    return tmp_path / "cg"


def _v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cg"
    _files(root, {"cgroup.controllers": "cpu memory"})
    return root


def test_no_swap_area_or_no_free_swap_means_no_room(tmp_path: Path, probed: None) -> None:
    root = str(_v1_root(tmp_path))
    assert swap.room(root, _proc(tmp_path / "a", swaps=SWAPS_HEADER)) == 0
    assert swap.room(root, _proc(tmp_path / "b", swap_free=0)) == 0
    assert swap.room(root, _proc(tmp_path / "c")) == 2 * GiB


def test_v1_without_a_memsw_limit_is_bounded_by_swap_free(tmp_path: Path, probed: None) -> None:
    root = _v1_root(tmp_path)
    own = root / "memory" / "docker" / "abc"
    _files(own, {"memory.limit_in_bytes": str(GiB), "memory.swappiness": "60"})  # no memsw files
    proc = _proc(tmp_path, cgroup="4:memory:/docker/abc\n0::/\n")
    assert swap.cgroup_swap_room(str(root), proc) is None
    assert swap.room(str(root), proc) == 2 * GiB


def test_v1_memsw_allowance_less_swap_in_use(tmp_path: Path, probed: None) -> None:
    root = _v1_root(tmp_path)
    own = root / "memory" / "docker" / "abc"
    _files(
        own,
        {
            "memory.limit_in_bytes": str(GiB),
            "memory.memsw.limit_in_bytes": str(GiB + 512 * MiB),
            "memory.usage_in_bytes": str(800 * MiB),
            "memory.memsw.usage_in_bytes": str(900 * MiB),  # 100 MiB swapped already
            "memory.swappiness": "60",
        },
    )
    proc = _proc(tmp_path, cgroup="4:memory:/docker/abc\n0::/\n")
    assert swap.cgroup_swap_room(str(root), proc) == 412 * MiB
    assert swap.room(str(root), proc) == 412 * MiB
    # RAM plus swap limited to RAM's limit: swapping frees nothing usable
    _files(own, {"memory.memsw.limit_in_bytes": str(GiB)})
    assert swap.room(str(root), proc) == 0


def test_v1_swappiness_zero_in_our_cgroup_means_no_room(tmp_path: Path, probed: None) -> None:
    # Seen on Linux 6.18: MADV_PAGEOUT still swaps, but reclaim never frees the
    # swap cache of a cgroup with swappiness 0, so its next allocation over the
    # limit is OOM-killed.
    root = _v1_root(tmp_path, swappiness="60")
    own = root / "memory" / "job"
    _files(own, {"memory.swappiness": "0"})
    proc = _proc(tmp_path, cgroup="4:memory:/job\n")
    assert swap.room(str(root), proc) == 0
    _files(own, {"memory.swappiness": "60"})
    _files(root / "memory", {"memory.swappiness": "0"})  # only our own cgroup's counts
    assert swap.room(str(root), proc) == 2 * GiB


def test_v2_swap_max(tmp_path: Path, probed: None) -> None:
    root = _v2_root(tmp_path)
    service = root / "user.slice" / "jupyter.service"
    _files(service, {"memory.swap.max": "0", "memory.swap.current": "0"})
    proc = _proc(tmp_path, cgroup="0::/user.slice/jupyter.service\n")
    assert swap.room(str(root), proc) == 0
    _files(service, {"memory.swap.max": str(GiB), "memory.swap.current": str(256 * MiB)})
    assert swap.room(str(root), proc) == 768 * MiB
    _files(service, {"memory.swap.max": "max", "memory.swap.high": str(512 * MiB)})
    assert swap.room(str(root), proc) == 256 * MiB
    _files(service, {"memory.swap.high": "max"})
    assert swap.cgroup_swap_room(str(root), proc) is None
    assert swap.room(str(root), proc) == 2 * GiB
    # an ancestor's bound applies too
    _files(root / "user.slice", {"memory.swap.max": str(128 * MiB)})
    assert swap.room(str(root), proc) == 128 * MiB


def test_v2_uses_vm_swappiness(tmp_path: Path, probed: None) -> None:
    root = _v2_root(tmp_path)
    assert swap.room(str(root), _proc(tmp_path / "a", swappiness="0\n")) == 0
    assert swap.room(str(root), _proc(tmp_path / "b", swappiness="1\n")) == 2 * GiB


def test_unsupported_kernel_means_no_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swap, "_supported", False)
    assert swap.room(str(_v1_root(tmp_path)), _proc(tmp_path)) == 0
    assert swap.page_out([(0, 1 << 20)]) == 0


def test_missing_or_garbage_files_never_raise(tmp_path: Path, probed: None) -> None:
    assert swap.room(str(tmp_path / "none"), str(tmp_path / "none")) == 0
    proc = _proc(tmp_path, cgroup="garbage\n", swappiness="x\n")
    (Path(proc) / "meminfo").write_text("SwapFree: lots kB\n")
    assert swap.room(str(tmp_path / "none"), proc) == 0
    root = _v2_root(tmp_path)
    _files(root, {"memory.swap.max": "garbage", "memory.swap.current": "x"})
    (Path(proc) / "meminfo").write_text("SwapFree: 1024 kB\n")
    assert swap.room(str(root), proc) == 1 << 20


# -- page_out and swapped_bytes without swap ---------------------------------------------


def _anonymous(length: int) -> tuple[mmap.mmap, int]:
    """A private anonymous mapping, every page written, and its address."""
    area = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.write(b"\x07" * length)
    cell = ctypes.c_char.from_buffer(area)
    address = ctypes.addressof(cell)
    del cell
    return area, address


def test_page_out_shrinks_ranges_to_whole_pages_and_skips_what_it_cannot() -> None:
    if not swap.supported():
        pytest.skip("this kernel has no MADV_PAGEOUT")
    area, lo = _anonymous(4 * PAGE)
    try:
        assert swap.page_out([(lo + 1, lo + 3 * PAGE - 1)]) == PAGE
        assert swap.page_out([(lo, lo + 4 * PAGE), (lo + 1, lo + PAGE)]) == 4 * PAGE
        assert swap.page_out([(0, 4 * PAGE)]) == 0  # nothing mapped there: ENOMEM
        assert area[:] == b"\x07" * (4 * PAGE)
    finally:
        area.close()


def test_swapped_bytes_of_resident_and_unmapped_memory_is_zero() -> None:
    area, lo = _anonymous(16 * PAGE)
    try:
        assert swap.swapped_bytes([(lo, lo + 16 * PAGE)]) == 0
        assert swap.swapped_bytes([(0, 16 * PAGE), (lo + 1, lo + 2)]) == 0
    finally:
        area.close()
