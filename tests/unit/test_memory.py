"""greed_kernel.memory.probe: RSS, limits, CUDA state and pressure, read cheaply."""

from __future__ import annotations

import math
import mmap
import platform
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from greed_kernel.memory import limits
from greed_kernel.memory.limits import cgroup_limit
from greed_kernel.memory.probe import MemoryProbe, malloc_trim
from greed_kernel.memory.torchstate import CudaDevice

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024
NO_PROC = "/nonexistent/proc/self/cgroup"  # so that the real /proc/self/cgroup stays out


def _touch(buf: bytearray) -> None:
    """Write one byte per page, so that the pages are really resident."""
    buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))


# -- cgroup limits -------------------------------------------------------------------


def test_cgroup_v2_max_means_no_limit(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) is None


def test_cgroup_v2_number(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) == 2 * 1024**3


def test_cgroup_v2_own_cgroup_and_ancestors(tmp_path: Path) -> None:
    # A host with systemd: the root has no memory.max, our slice and service do.
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    service = tmp_path / "user.slice" / "jupyter.service"
    service.mkdir(parents=True)
    (tmp_path / "user.slice" / "memory.max").write_text("1073741824\n")
    (service / "memory.max").write_text("max\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/user.slice/jupyter.service\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=str(proc)) == 1024**3
    (service / "memory.max").write_text("536870912\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=str(proc)) == 512 * MB


def test_cgroup_v1(tmp_path: Path) -> None:
    mem = tmp_path / "memory"
    mem.mkdir()
    (mem / "memory.limit_in_bytes").write_text("4294967296\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) == 4 * 1024**3
    # v1's "unlimited" is a huge number, not "max".
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) is None


def test_cgroup_v1_own_cgroup(tmp_path: Path) -> None:
    mem = tmp_path / "memory"
    (mem / "docker" / "abc").mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "docker" / "abc" / "memory.limit_in_bytes").write_text("1048576000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=str(proc)) == 1000 * MB


def test_cgroup_missing_or_garbage(tmp_path: Path) -> None:
    assert cgroup_limit(str(tmp_path / "absent"), proc_cgroup=NO_PROC) is None
    (tmp_path / "memory.max").write_text("garbage\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) is None
    (tmp_path / "memory.max").write_text("0\n")
    assert cgroup_limit(str(tmp_path), proc_cgroup=NO_PROC) is None


# -- limits --------------------------------------------------------------------------


def test_effective_limit_honours_the_configured_limit() -> None:
    probe = MemoryProbe(limit=123 * MB)
    assert probe.limit == 123 * MB
    assert probe.effective_limit() == 123 * MB
    probe.limit = 0
    auto = probe.effective_limit()
    assert 0 < auto <= psutil.virtual_memory().total
    with pytest.raises(ValueError):
        probe.limit = -1


def test_auto_limit_prefers_a_lower_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    total = psutil.virtual_memory().total
    monkeypatch.setattr(limits, "cgroup_limit", lambda: 256 * MB)
    limits.auto_limit.cache_clear()
    try:
        assert MemoryProbe().effective_limit() == 256 * MB
        monkeypatch.setattr(limits, "cgroup_limit", lambda: total * 2)
        limits.auto_limit.cache_clear()
        assert MemoryProbe().effective_limit() == total
    finally:
        monkeypatch.undo()
        limits.auto_limit.cache_clear()


# -- RSS -----------------------------------------------------------------------------


def test_rss_matches_psutil_and_grows_with_allocations() -> None:
    probe = MemoryProbe()
    before = probe.rss()
    assert before > 0
    own = psutil.Process().memory_info().rss
    # Ours plus any children (the session may have kernels running), a moment apart.
    assert before > own - 50 * MB
    buf = bytearray(200 * MB)
    _touch(buf)
    assert probe.rss() - before > 100 * MB
    del buf


@pytest.fixture
def child_with_100mb() -> Iterator[subprocess.Popen[bytes]]:
    """A child that holds ~100 MB and says "ready" once it does; it exits on stdin EOF."""
    code = (
        "import sys\n"
        "buf = bytearray(100 * 1024 * 1024)\n"
        "buf[::4096] = b'\\x01' * len(range(0, len(buf), 4096))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        yield child
    finally:
        if child.poll() is None:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_rss_counts_children(child_with_100mb: subprocess.Popen[bytes]) -> None:
    probe = MemoryProbe(children_refresh_s=0)
    total = probe.rss()
    own = psutil.Process().memory_info().rss
    assert total - own > 80 * MB


def test_dead_children_are_dropped_silently(child_with_100mb: subprocess.Popen[bytes]) -> None:
    # A long refresh period: the child stays in the cached list after it dies.
    probe = MemoryProbe(children_refresh_s=3600)
    with_child = probe.rss() - psutil.Process().memory_info().rss
    assert child_with_100mb.stdin is not None
    child_with_100mb.stdin.close()
    child_with_100mb.wait(timeout=20)  # reaped: its pid is gone
    without = probe.rss() - psutil.Process().memory_info().rss
    # Relative: other children of the test session (kernels) count both times.
    assert with_child - without > 80 * MB


def test_children_bookkeeping_is_one_thread_at_a_time() -> None:
    """While one thread rebuilds the list of children, another one waits for it."""
    probe = MemoryProbe(children_refresh_s=0)
    real = probe._refresh_children
    inside, release = threading.Event(), threading.Event()

    def slow_refresh(pid: int, now: float) -> None:
        if threading.current_thread() is first:
            inside.set()
            release.wait(30)
        real(pid, now)

    probe._refresh_children = slow_refresh  # type: ignore[method-assign]
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(probe.rss()))
    second = threading.Thread(target=lambda: results.append(probe.unreclaimable()))
    first.start()
    assert inside.wait(30)
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive()  # waiting for the first thread's refresh
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert len(results) == 2 and all(r > 0 for r in results)


def test_a_forked_child_gets_a_free_lock() -> None:
    """A lock held at fork() (by another thread, say) would stay held in the child."""
    code = (
        "import os, signal\n"
        "from greed_kernel.memory.probe import MemoryProbe\n"
        "probe = MemoryProbe()\n"
        "with probe._lock:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        signal.alarm(20)  # a deadlock ends as SIGALRM\n"
        "        os._exit(0 if probe.rss() > 0 else 1)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    assert out.stdout.split() == ["0"]


# -- CUDA ----------------------------------------------------------------------------


def test_cuda_is_empty_without_torch() -> None:
    code = (
        "import sys\n"
        "from greed_kernel.memory.probe import MemoryProbe\n"
        "p = MemoryProbe()\n"
        "print(p.cuda(), 0.0 <= p.pressure() <= 1.0, 'torch' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    assert out.stdout.split() == ["[]", "True", "False"]


def test_cuda_is_empty_while_cuda_is_uninitialised() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_initialized():
        pytest.skip("CUDA already initialised by an earlier test")
    assert MemoryProbe().cuda() == []
    assert not torch.cuda.is_initialized()  # and asking did not initialise it


def test_cuda_lists_the_device_in_use() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: needs a GPU to allocate on")
    x = torch.ones(64 * MB // 4, device="cuda:0")
    devices = MemoryProbe().cuda()
    dev = next(d for d in devices if d.device == 0)
    assert isinstance(dev, CudaDevice)
    assert dev.allocated >= 64 * MB
    assert dev.reserved >= dev.allocated
    assert dev.total == torch.cuda.get_device_properties(0).total_memory
    assert 0.0 < MemoryProbe().pressure() <= 1.0
    del x


class _FakeCuda:
    """Just enough of torch.cuda for MemoryProbe.cuda(): two GPUs, only GPU 0 in use."""

    GiB = 1024**3

    def __init__(self, initialized: bool = True) -> None:
        self.initialized = initialized
        self.asked: list[int] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        if not self.initialized:
            raise AssertionError("device_count() before CUDA was initialised")
        return 2

    def memory_stats_as_nested_dict(self, device: int) -> dict[str, object]:
        self.asked.append(device)
        return {
            "allocated_bytes": {"all": {"current": 3 * self.GiB}},
            "reserved_bytes": {"all": {"current": 4 * self.GiB}},
        }

    def get_device_properties(self, device: int) -> object:
        return types.SimpleNamespace(total_memory=80 * self.GiB)


def _fake_torch(cuda: _FakeCuda) -> types.ModuleType:
    fake = types.ModuleType("torch")
    fake.cuda = cuda  # type: ignore[attr-defined]
    fake._C = types.SimpleNamespace(_cuda_hasPrimaryContext=lambda i: i == 0)  # type: ignore[attr-defined]
    return fake


def test_cuda_reads_only_devices_with_a_context(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda))
    probe = MemoryProbe(limit=1 << 62)
    GiB = _FakeCuda.GiB
    assert probe.cuda() == [CudaDevice(0, 3 * GiB, 4 * GiB, 80 * GiB)]
    assert cuda.asked == [0]  # device 1 has no context: never asked
    assert probe.pressure() == pytest.approx(4 / 80)


def test_cuda_uninitialised_is_not_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = _FakeCuda(initialized=False)
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda))
    assert MemoryProbe().cuda() == []
    assert cuda.asked == []


def test_cuda_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(_FakeCuda):
        def get_device_properties(self, device: int) -> object:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(sys.modules, "torch", _fake_torch(Broken()))
    probe = MemoryProbe()
    assert probe.cuda() == []
    assert 0.0 <= probe.pressure() <= 1.0
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # no .cuda at all
    assert probe.cuda() == []


# -- pressure and trimming -----------------------------------------------------------


def test_pressure_is_a_fraction() -> None:
    p = MemoryProbe().pressure()
    assert 0.0 <= p <= 1.0 and not math.isnan(p)
    # Over the limit: clamped.
    assert MemoryProbe(limit=1).pressure() == 1.0


def test_pressure_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = MemoryProbe()

    def boom() -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(probe, "unreclaimable", boom)
    assert probe.pressure() == 0.0
    monkeypatch.setattr(probe, "unreclaimable", lambda: float("nan"))
    assert probe.pressure() == 0.0


def test_malloc_trim_returns_a_bool() -> None:
    result = malloc_trim()
    assert isinstance(result, bool)
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert result is True
    assert malloc_trim() is result  # cached, and still safe to call again


def test_pressure_counts_anonymous_memory_not_file_pages(tmp_path: Path) -> None:
    """A file read into the page cache and mapped in is RSS, but not pressure: the OS
    can drop those pages. The same bytes as anonymous memory are."""
    probe = MemoryProbe(limit=64 << 30)
    path = tmp_path / "data.bin"
    path.write_bytes(b"\1" * (128 * MB))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        rss, anon = probe.rss(), probe.unreclaimable()
        assert sum(m[::4096]) == 128 * MB // 4096  # fault every page in
        assert probe.rss() - rss > 100 * MB
        assert probe.unreclaimable() - anon < 16 * MB
        copy = bytearray(m)  # the same bytes, anonymous now
        assert probe.unreclaimable() - anon > 100 * MB
        del copy
