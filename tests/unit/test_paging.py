"""In-place paging (greed_kernel/paging.py, procmaps.py) in this process: exact bytes,
freed RAM, the directory rules, and what is left alone."""

from __future__ import annotations

import ctypes
import errno
import gc
import hashlib
import mmap
import os
from pathlib import Path

import pytest

from greed_kernel.memory import paging, pagingdir, procmaps
from greed_kernel.memory.paging import Pager, whole_pages
from greed_kernel.memory.sizes import cpu_buffers, owned_buffers

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.usefixtures("runner_threads_ignored")


PAGE = mmap.PAGESIZE
MiB = 1 << 20


def rss(kind: str) -> int:
    """RssAnon / RssFile of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(kind)


def digest(a: object) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def _no_paged_garbage() -> None:
    """Earlier tests' paged garbage (a buffer held in a reference cycle, until a
    collection) unmaps now, not in the middle of the next test, where the totals of
    paged bytes it reads would change under it."""
    gc.collect()


@pytest.fixture
def pager(tmp_path: Path) -> Pager:
    p = Pager(str(tmp_path))
    yield p
    p.close()


# -- pure helpers -------------------------------------------------------------------------
def test_whole_pages_drop_partial_first_and_last_pages() -> None:
    assert whole_pages(PAGE + 1, 40 * PAGE) == (2 * PAGE, 41 * PAGE)
    assert whole_pages(0, 40 * PAGE) == (0, 40 * PAGE)
    assert whole_pages(PAGE + 1, 2 * PAGE) is None  # too small to be worth a mapping


def test_filesystem_type_knows_ram_filesystems() -> None:
    assert procmaps.filesystem_type("/proc") == "proc"
    if Path("/dev/shm").is_dir() and procmaps.filesystem_type("/dev/shm") == "tmpfs":
        assert procmaps.is_ram_backed("/dev/shm")


def _own_mapping(nbytes: int) -> tuple[mmap.mmap, tuple[int, int, mmap.mmap]]:
    """A private anonymous mapping of its own, written, and its (address, length): what
    a large numpy buffer usually is, though glibc may also serve one from its heap."""
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory.write(b"\x01" * nbytes)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    return memory, (address, nbytes, memory)  # the mmap object owns the memory


# -- paging ------------------------------------------------------------------------------
def test_page_out_keeps_bytes_and_frees_anonymous_memory(pager: Pager) -> None:
    # 40 MiB: above glibc's largest mmap threshold (a mapping of its own, unless glibc
    # serves it from a free chunk of its heap: paged all the same)
    a = np.random.default_rng(0).random(40 * MiB // 8)
    view = a[1000:2000]
    before, anon, paged = digest(a), rss("RssAnon"), pager.paged_bytes()
    result = pager.page_out(owned_buffers(a))
    assert result.bytes >= a.nbytes - 2 * PAGE
    assert anon - rss("RssAnon") > 32 * MiB  # the pages left anonymous memory
    # (earlier tests in this process may have paged memory that stays mapped)
    assert pager.paged_bytes() - paged == result.bytes
    assert pager.paged_in(cpu_buffers(a)) == result.bytes
    assert digest(a) == before and view[0] == a[1000]  # read back from the file
    # writing makes private copies again, as for any private mapping
    a *= 2
    assert digest(a) != before and float(view[0]) == float(a[1000])


def test_page_out_twice_is_a_no_op(pager: Pager) -> None:
    a = np.ones(8 * MiB // 8)
    first = pager.page_out(owned_buffers(a))
    second = pager.page_out(owned_buffers(a))
    assert first.bytes and not second.bytes
    assert second.skipped == {"already paged": first.bytes}


def test_freed_buffers_unmap_their_pages(pager: Pager) -> None:
    # a mapping of its own, as a large buffer usually is (freeing it unmaps it; glibc
    # may also serve one from its heap, where freeing unmaps nothing)
    def page_one() -> tuple[int, int]:
        memory, buffer = _own_mapping(64 * MiB)
        paged = pager.page_out([buffer]).bytes
        if pager.paged_in([buffer]) != paged:
            raise AssertionError("not paged")
        memory.close()
        return buffer[0], paged  # the owner dies here: its extent is punched out

    address, paged = page_one()
    assert paged == 64 * MiB
    assert pager.paged_in([(address, 64 * MiB)]) == 0  # its range is none of ours any more
    assert pager.paged_bytes() == 0
    b = np.zeros(16 * MiB // 8)  # fresh memory is still zero
    assert not b.any()


def test_page_in_reads_memory_back(pager: Pager) -> None:
    a = np.random.default_rng(1).random(16 * MiB // 8)
    before = digest(a)
    pager.page_out(owned_buffers(a))
    file_before = rss("RssFile")
    assert pager.page_in(cpu_buffers(a)) > 0
    assert rss("RssFile") - file_before > 8 * MiB and digest(a) == before


def test_memory_that_is_not_private_anonymous_is_left_alone(pager: Pager, tmp_path: Path) -> None:
    mm = np.memmap(tmp_path / "data.bin", dtype="float64", mode="w+", shape=(4 * MiB // 8,))
    mm[:] = 3.0
    result = pager.page_out([(mm.ctypes.data, mm.nbytes, mm)])
    assert result.bytes == 0 and "not private anonymous memory" in result.skipped


def test_a_named_file_reusing_a_freed_paging_files_inode_is_not_ours(
    pager: Pager, tmp_path: Path
) -> None:
    mm = np.memmap(tmp_path / "data.bin", dtype="float64", mode="w+", shape=(4 * MiB // 8,))
    mm[:] = 3.0
    st = os.stat(tmp_path / "data.bin")
    # as if a paging file, freed since, had had this inode: the filesystem reuses them
    paging._IDENTS.add((f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino))
    result = pager.page_out([(mm.ctypes.data, mm.nbytes, mm)])
    assert result.bytes == 0 and "not private anonymous memory" in result.skipped
    assert not any(ino == st.st_ino for _, ino in paging._IDENTS)  # forgotten: not ours


def test_buffers_owned_by_other_objects_are_not_reported() -> None:
    raw = bytearray(4 * MiB)
    assert cpu_buffers(np.frombuffer(raw, dtype="uint8")) == []
    owner = np.zeros(4 * MiB // 8)
    assert cpu_buffers(owner[10:]) == cpu_buffers(owner)  # a view reports its base's buffer


def test_pandas_blocks_are_reported() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(2).random((MiB // 8, 4)))
    assert sum(n for _, n in cpu_buffers(frame)) >= 4 * MiB


def test_torch_tensors_modules_and_optimizers_are_walked(pager: Pager) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(1024, 1024)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(8, 1024)).sum().backward()
    opt.step()
    weight = net.weight
    params, before = [id(p) for p in net.parameters()], net.weight.detach().clone()
    found = owned_buffers([net, opt])
    # weight, bias, their gradients, and Adam's exp_avg/exp_avg_sq (and steps)
    assert sum(n for _, n, _ in found) >= 4 * 1024 * 1024 * 4
    assert pager.page_out(found).bytes > 0
    assert net.weight is weight and [id(p) for p in net.parameters()] == params
    assert torch.equal(net.weight, before) and net.weight.grad is not None
    opt.step()  # still trains


def test_a_directory_the_user_named_is_never_changed(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    (mine / "keep.txt").write_text("user data")
    p = Pager(str(mine))
    a = np.ones(8 * MiB // 8)
    assert p.page_out(owned_buffers(a)).bytes
    p.close()
    assert sorted(os.listdir(mine)) == ["keep.txt"]  # the file has no name
    assert (mine.stat().st_mode & 0o777) == 0o755 and (mine / "keep.txt").read_text()


def test_without_o_tmpfile_the_file_is_unlinked_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    (tmp_path / "keep.txt").write_text("x")
    p = Pager(str(tmp_path))
    a = np.random.default_rng(3).random(8 * MiB // 8)
    before = digest(a)
    assert p.page_out(owned_buffers(a)).bytes
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]  # made and unlinked, nothing else
    assert digest(a) == before
    p.close()


def test_a_ram_backed_directory_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ram = tmp_path / "ram"
    ram.mkdir()
    real = pagingdir.read_mounts
    monkeypatch.setattr(
        pagingdir, "read_mounts", lambda *a: [*real(*a), pagingdir.Mount(str(ram), "tmpfs")]
    )
    p = Pager(str(ram))
    assert p.directory() != ram
    assert "tmpfs, in RAM" in p.notice and "instead" in p.notice


def test_a_failed_write_leaves_memory_alone_and_is_not_retried_at_once(
    pager: Pager, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    a = np.random.default_rng(4).random(8 * MiB // 8)
    before = digest(a)
    with monkeypatch.context() as failing:
        failing.setattr(os, "posix_fallocate", full)
        result = pager.page_out(owned_buffers(a))
    assert result.bytes == 0 and "write failed" in result.skipped
    assert "Input/output error" in pager.failure and digest(a) == before
    for _ in range(2):  # the back-off after a first failure: two cleanups
        skipped = pager.page_out(owned_buffers(a)).skipped
        assert list(skipped) == ["after a failed write"]
    assert pager.page_out(owned_buffers(a)).bytes


def test_the_disk_budget_is_kept(tmp_path: Path) -> None:
    # The budget counts every mapping of this process's paging files, other tests'
    # freed memory still mapped included; that can only shrink (a free at the top of
    # glibc's heap may trim it). A buffer larger than all of it fits once, never twice.
    leftover = Pager(str(tmp_path)).paged_bytes()
    size = 40 * MiB + (leftover + MiB - 1) // MiB * MiB
    p = Pager(str(tmp_path), max_bytes=leftover + size)
    (a, at_a), (b, at_b) = _own_mapping(size), _own_mapping(size)
    first = p.page_out([at_a])
    second = p.page_out([at_b])
    assert first.bytes == size
    assert not second.bytes and second.skipped == {"disk budget (paging_max_bytes)": size}
    assert a[:1] == b[:1] == b"\x01"


def test_the_map_count_limit_is_kept(pager: Pager, monkeypatch: pytest.MonkeyPatch) -> None:
    pager.map_allowance = 0
    a = np.ones(4 * MiB // 8)
    assert pager.page_out(owned_buffers(a)).skipped.get("mapping budget (vm.max_map_count)")


def test_other_directories_in_the_paging_directory_are_never_touched(tmp_path: Path) -> None:
    """Kernels that share a directory (an NFS home, containers in other PID
    namespaces) never scan, clean or delete each other's files."""
    other = tmp_path / "12345-deadbeef"  # what the old spill directories looked like
    other.mkdir()
    (other / "x.spill").write_bytes(b"someone else's")
    p = Pager(str(tmp_path))
    assert p.page_out(owned_buffers(np.ones(8 * MiB // 8))).bytes
    p.close()
    assert (other / "x.spill").read_bytes() == b"someone else's"


def test_written_pages_of_paged_memory_are_paged_again(pager: Pager) -> None:
    """A write after paging makes anonymous copies again (as does the allocator
    reusing memory of ours for a new buffer): those pages are paged out again."""
    a = np.random.default_rng(5).random(16 * MiB // 8)
    first = pager.page_out(owned_buffers(a))
    assert first.bytes
    a[: 4 * MiB // 8] += 1.0  # dirty a quarter of it
    before, anon = digest(a), rss("RssAnon")
    again = pager.page_out(owned_buffers(a))
    assert again.bytes == first.bytes and anon - rss("RssAnon") > 3 * MiB
    assert digest(a) == before


def test_a_dying_storage_gives_its_range_back_unless_its_data_moved(
    pager: Pager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage's ranges become anonymous again when it dies, giving their mappings
    back, but only where it still holds the memory it held when paged: after
    ``resize_`` that memory was freed long ago and may be another value's now."""
    torch = pytest.importorskip("torch")
    from greed_kernel.memory import pageio

    given_back: list[int] = []
    real = pageio.map_anonymous
    monkeypatch.setattr(pageio, "map_anonymous", lambda lo, n: given_back.append(lo) or real(lo, n))

    def paged_tensor() -> object:
        t = torch.randn(4 * MiB // 4)
        assert pager.page_out(owned_buffers(t)).bytes
        return t

    kept = paged_tensor()
    del kept
    assert len(given_back) == 1 and pager.paged_bytes() == 0
    moved = paged_tensor()
    moved.resize_(8 * MiB // 4)  # a new buffer; the paged one is freed now
    del moved
    assert len(given_back) == 1 and pager.paged_bytes() == 0  # punched, not remapped


def test_what_fits_the_free_disk_goes_out_and_a_full_disk_is_not_retried(
    pager: Pager, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = [np.random.default_rng(9 + i).random(8 * MiB // 8) for i in range(3)]
    buffers = [b for a in arrays for b in owned_buffers(a)]
    free = [paging.DISK_RESERVE + 20 * MiB]  # room for two of the three
    monkeypatch.setattr(paging, "_free_disk", lambda directory: free[0])
    first = pager.page_out(buffers)
    assert len(first.regions) == 2 and "disk full" in first.skipped
    tried: list[object] = []
    free[0] -= 16 * MiB  # the two paged files took their room
    with monkeypatch.context() as counting:
        counting.setattr(os, "posix_fallocate", lambda *a: tried.append(a))
        again = pager.page_out(buffers)
        assert list(again.skipped) == ["already paged", "disk full"] and not tried
        assert pager.page_out(buffers).skipped.get("disk full") and not tried  # no retry
    free[0] += 64 * MiB  # room again
    assert len(pager.page_out(buffers).regions) == 1
