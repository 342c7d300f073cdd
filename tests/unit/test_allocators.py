"""Which malloc serves a process (greed_kernel.memory.allocators): the rule on made-up maps, and
real interpreters started under jemalloc, tcmalloc and glibc's malloc.

The libraries come from Debian's libjemalloc2 and libtcmalloc-minimal4
(scripts/install_test_deps.sh); a test that needs a missing one is skipped.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import typing as t
from collections.abc import Iterator

import pytest
from malloc_libs import JEMALLOC, TCMALLOC, needs

from greed_kernel.memory import allocators
from greed_kernel.memory.allocators import detect, known_name, object_at, reason

pytestmark = pytest.mark.timeout(60)

# -- the rule -------------------------------------------------------------------------
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
MAPS = f"""\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 1 /usr/bin/python3.11
7f0000000000-7f0000100000 r-xp 00028000 08:01 2 {LIBC}
7f0000200000-7f0000300000 r-xp 00000000 08:01 3 /venv/site-packages/torch/lib/libgomp-a34b3233.so.1
7f0000300000-7f0000400000 r-xp 00000000 08:01 4 /venv/numpy.libs/libscipy_openblas64_-ff651d7f.so
7f0000400000-7f0000500000 r-xp 00000000 08:01 5 /venv/site-packages/tbb/libtbbmalloc.so.2
7f0000600000-7f0000601000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


def with_line(path: str) -> str:
    return MAPS + f"7f0000700000-7f0000800000 r-xp 00000000 08:01 9 {path}\n"


def test_glibc_serving_malloc_and_bundled_libraries_are_not_foreign() -> None:
    # libgomp, OpenBLAS and TBB's libtbbmalloc (not its proxy) replace no malloc
    assert detect(MAPS, "", malloc_object=LIBC, libc_object=LIBC) is None
    assert detect(MAPS, "") is None


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "jemalloc"),
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10", "tcmalloc"),
        ("/usr/lib/libtcmalloc_and_profiler.so.4", "tcmalloc"),
        ("/opt/lib/libmimalloc-secure.so.2.1", "mimalloc"),
        ("/venv/site-packages/pkg.libs/libjemalloc-5f2b4c1d.so.2", "jemalloc"),
        ("/opt/tbb/lib/libtbbmalloc_proxy.so.2", "tbbmalloc"),
        ("/usr/local/lib/libhoard.so", "hoard"),
        ("/usr/local/lib/libsnmallocshim-checks.so", "snmalloc"),
        ("/usr/lib/libjemalloc.so.2 (deleted)", "jemalloc"),
    ],
)
def test_a_mapped_replacement_is_named(path: str, name: str) -> None:
    assert known_name(path) == name
    # mapped, even where malloc itself still resolves in glibc (dlopen, RTLD_DEEPBIND)
    assert detect(with_line(path), "", malloc_object=LIBC, libc_object=LIBC) == name


def test_malloc_resolving_outside_libc_is_foreign_whatever_its_object() -> None:
    tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
    assert detect(with_line(tc), "", malloc_object=tc, libc_object=LIBC) == "tcmalloc"
    # linked into the executable: the symbols tell which, else the object is named
    exe = "/usr/bin/python3.11"
    assert detect(MAPS, "", exe, LIBC, signature="jemalloc") == "jemalloc"
    assert detect(MAPS, "", exe, LIBC) == "python3.11"
    assert detect(MAPS, "", "/usr/lib/libasan.so.8", LIBC) == "libasan.so.8"
    # where glibc's own symbol was not found, libc is known by its name; musl is foreign
    assert detect(MAPS, "", LIBC, None) is None
    assert detect(MAPS, "", "/lib/ld-musl-x86_64.so.1", None) == "musl"


def test_what_is_mapped_decides_over_ld_preload() -> None:
    # asked for but not loaded (a wrong path: ld.so ignores it): nothing to fear
    assert detect(MAPS, "/nowhere/libjemalloc.so.2", LIBC, LIBC) is None
    # no maps to read: LD_PRELOAD is all there is to go on (colons or spaces)
    assert detect(None, "libfoo.so:libjemalloc.so.2") == "jemalloc"
    assert detect(None, "libfoo.so /opt/libmimalloc.so") == "mimalloc"
    assert detect(None, "") is None


def test_object_at_finds_the_mapping_of_an_address() -> None:
    assert object_at(MAPS, 0x7F0000000010) == LIBC
    assert object_at(MAPS, 0x7F0000600800) == ""
    assert object_at(MAPS, 0x10) is None


def test_reason_names_the_allocator() -> None:
    text = reason("jemalloc")
    assert "file paging is off" in text and "jemalloc" in text and "zeros" in text


def test_in_this_process_the_answer_is_cached_and_matches_its_malloc() -> None:
    first = allocators.foreign_allocator()
    assert allocators.foreign_allocator() is first
    preload = os.environ.get("LD_PRELOAD", "")
    if not preload:  # the test run itself under glibc's malloc
        assert first is None


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """foreign_allocator() computed anew under the test's patches, and again after."""
    allocators.foreign_allocator.cache_clear()
    yield monkeypatch
    allocators.foreign_allocator.cache_clear()


def test_unreadable_maps_leave_ld_preload_to_go_on(fresh: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> t.NoReturn:
        raise PermissionError("no /proc here")

    fresh.setattr(allocators, "open", refuse, raising=False)
    fresh.setenv("LD_PRELOAD", "/opt/lib/libmimalloc.so.2")
    assert allocators.foreign_allocator() == "mimalloc"
    fresh.delenv("LD_PRELOAD")
    allocators.foreign_allocator.cache_clear()
    assert allocators.foreign_allocator() is None


def test_without_ctypes_the_mapped_libraries_still_count(fresh: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> t.NoReturn:
        raise OSError("dlopen refused")

    maps = with_line("/usr/lib/libjemalloc.so.2")
    fresh.setattr(allocators, "open", lambda *a, **k: io.StringIO(maps), raising=False)
    fresh.setattr(allocators.ctypes, "CDLL", refuse)
    assert allocators.foreign_allocator() == "jemalloc"


# -- real processes -------------------------------------------------------------------
PRINT = "from greed_kernel.memory.allocators import foreign_allocator; print(foreign_allocator())"


def allocator_of_child(**env: str) -> str:
    """What foreign_allocator() says in a fresh interpreter with ``env`` added."""
    environ = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | env
    done = subprocess.run(
        [sys.executable, "-c", PRINT], env=environ, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_plain_interpreter_has_glibc_malloc() -> None:
    assert allocator_of_child() == "None"


def test_preloaded_jemalloc_is_named() -> None:
    assert allocator_of_child(LD_PRELOAD=needs(JEMALLOC)) == "jemalloc"


def test_preloaded_tcmalloc_is_named() -> None:
    assert allocator_of_child(LD_PRELOAD=needs(TCMALLOC)) == "tcmalloc"


def test_preloaded_by_soname_alone_is_named() -> None:
    needs(JEMALLOC)
    assert allocator_of_child(LD_PRELOAD=JEMALLOC) == "jemalloc"
