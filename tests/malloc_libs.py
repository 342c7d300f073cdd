"""The replacement mallocs that the allocator tests preload: where this machine has them,
or a skip saying what to install. Shared by tests/unit/test_allocators.py and
tests/kernel/test_kernel_allocators.py."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

JEMALLOC, TCMALLOC = "libjemalloc.so.2", "libtcmalloc_minimal.so.4"
INSTALL = "scripts/install_test_deps.sh installs it"


def _elf_kind(path: str) -> bytes:
    """ELF class, byte order and machine: what must match for a library to load here."""
    with open(path, "rb") as f:
        head = f.read(20)
    return head[4:6] + head[18:20]


@functools.cache
def library(soname: str) -> str | None:
    """The path of the shared object ``soname`` that this interpreter could preload."""
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    ours = _elf_kind(os.path.realpath(sys.executable))
    for line in listing.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" (")[0] == soname and os.path.exists(path) and _elf_kind(path) == ours:
            return path
    return None


def needs(soname: str) -> str:
    """``library(soname)``, or the test is skipped saying what to install."""
    path = library(soname)
    if path is None:
        pytest.skip(f"{soname} is not installed ({INSTALL})")
    return path
