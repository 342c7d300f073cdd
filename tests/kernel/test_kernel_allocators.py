"""A freed paged array under jemalloc, tcmalloc and glibc's malloc: python3 and greed
(paging after every cell) give the same outputs (issue 30, item 2).

Both allocators purge a freed range with ``MADV_DONTNEED``, which on a paged buffer's
private file mapping brings the file's old bytes back where python3 reads zeros.
jemalloc's calloc then trusts the range to be zeros, so ``np.zeros`` returns the freed
array's 7.0s; gperftools' tcmalloc clears in calloc, but an ``np.empty`` of the freed
range reads the 7.0s again. (Its contents are unspecified, but with the settings here
every allocator hands back purged memory, zeros on python3.) Greed does not file-page
under a replacement allocator and says so in ``%greed status``. Both kernels run with
the library in LD_PRELOAD, set to purge when memory is freed, so nothing waits."""

from __future__ import annotations

import importlib.util
import mmap
import os
from collections.abc import Callable, Iterator

import pytest
from differential import Differential
from malloc_libs import JEMALLOC, TCMALLOC, needs

pytestmark = pytest.mark.timeout(180)
if importlib.util.find_spec("numpy") is None:
    pytest.skip("the probe's arrays need numpy", allow_module_level=True)

N = 4 << 20  # 32 MiB of float64: a large allocation of its own under every allocator
#: A paged array freed, then fresh arrays of its size, in the range it leaves.
PROBE = [
    f"a = np.full({N}, 7.0)",
    "float(a[0])",  # greed has paged `a` out after this cell at the latest
    "del a",
    f"float(np.empty({N}).sum())",
    *[f"float(np.zeros({N}).sum())" for _ in range(3)],
    f"z = np.zeros({N})",
    "float(z.sum()), int(np.count_nonzero(z))",
]
#: Environment of both kernels: the allocator, set to return freed memory at once.
ALLOCATORS = {
    "jemalloc": (JEMALLOC, {"MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}),
    # gperftools: release a freed span to the system when it is freed
    "tcmalloc": (TCMALLOC, {"TCMALLOC_AGGRESSIVE_DECOMMIT": "true"}),
}


Configure = Callable[[dict[str, str]], None]
#: Whether a kernel has the library mapped (read from its /proc/self/maps).
MAPPED = "{!r} in open('/proc/self/maps').read()"
WHICH = "__import__('greed_kernel.memory.allocators', fromlist=['_']).foreign_allocator()"


@pytest.fixture
def under(jupyter_sandbox: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """Kernels started then get ``env`` (through os.environ, which jupyter_client passes
    on to them), and no LD_PRELOAD but the one given."""
    monkeypatch.delenv("LD_PRELOAD", raising=False)

    def configure(env: dict[str, str]) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    yield configure


def status_text(d: Differential) -> str:
    result = d.greed.execute("%greed status")
    assert result.status == "ok", result
    shown = [m["content"]["data"] for m in result.outputs if m["msg_type"] == "display_data"]
    return "".join(data.get("text/plain", "") for data in shown)


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_a_freed_paged_array_reads_as_on_python3(name: str, under: Configure) -> None:
    soname, settings = ALLOCATORS[name]
    path = needs(soname)
    under({"LD_PRELOAD": path, **settings})
    with Differential() as d:
        for kernel in (d.python3, d.greed):  # both really run under it
            assert kernel.eval(MAPPED.format(os.path.basename(os.path.realpath(path)))) == "True"
        assert d.greed.eval(WHICH) == repr(name)
        assert d.run(PROBE) == []
        # greed pages nothing to a file under this allocator, and says why
        assert name in status_text(d)


def test_the_probe_pages_and_matches_under_glibc(under: Configure) -> None:
    """Without a replacement allocator greed really pages the array, and nothing differs."""
    under({})
    with Differential() as d:
        assert d.greed.eval(WHICH) == "None"
        assert d.run(PROBE) == []
        assert d.paged_total() >= N * 8 - mmap.PAGESIZE  # all of `a` but malloc's header
        assert "file paging is off" not in status_text(d)
