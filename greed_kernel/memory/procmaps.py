"""This process's memory and files as Linux shows them in /proc, for `paging`.

`/proc/self/maps` (which ranges are private anonymous memory, which are our
files' mappings), `/proc/self/pagemap` (which pages are anonymous copies),
`/proc/self/mountinfo` (which filesystem a directory is on) and
`vm.max_map_count`, with the range arithmetic used on them. Nothing here
changes any memory.
"""

from __future__ import annotations

import bisect
import mmap
import os
import typing as t
from dataclasses import dataclass

PAGE = mmap.PAGESIZE
#: Filesystems whose files live in RAM: paging there frees nothing.
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"})

__all__ = [
    "PAGE",
    "RAM_FILESYSTEMS",
    "Area",
    "anonymous_pages",
    "covered",
    "file_ident",
    "filesystem_type",
    "is_ram_backed",
    "map_count",
    "max_map_count",
    "read_maps",
]


@dataclass(frozen=True, slots=True)
class Area:
    """One line of /proc/self/maps."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    dev: str
    path: str

    @property
    def anonymous_private_rw(self) -> bool:
        return (
            self.perms == "rw-p"
            and self.inode == 0
            and (self.path in ("", "[heap]") or self.path.startswith("[anon:"))
        )


def file_ident(st: os.stat_result) -> tuple[str, int]:
    """A file's (device, inode) as /proc/self/maps writes them (``Area.dev``, ``.inode``)."""
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino


def read_maps(pid: int | str = "self") -> list[Area]:
    """The process's memory map, sorted by address."""
    areas = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) < 5:
                continue
            lo, hi = parts[0].split("-")
            areas.append(
                Area(
                    start=int(lo, 16),
                    end=int(hi, 16),
                    perms=parts[1],
                    offset=int(parts[2], 16),
                    dev=parts[3],
                    inode=int(parts[4]),
                    path=parts[5].rstrip("\n") if len(parts) > 5 else "",
                )
            )
    return areas


def covered(
    areas: list[Area], starts: list[int], lo: int, hi: int, ok: t.Callable[[Area], bool]
) -> bool:
    """True when [lo, hi) lies wholly in contiguous areas that all satisfy *ok*."""
    i = bisect.bisect_right(starts, lo) - 1
    pos = lo
    while pos < hi:
        if i < 0 or i >= len(areas):
            return False
        area = areas[i]
        if not (area.start <= pos < area.end) or not ok(area):
            return False
        pos = area.end
        i += 1
    return True


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The type of the filesystem holding *path* (from /proc/self/mountinfo), or None."""
    try:
        real = os.path.realpath(path)
        best, fstype = "", None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                mount = fields[4].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, right.split()[0]
        return fstype
    except OSError:
        return None


def is_ram_backed(path: str | os.PathLike[str]) -> bool:
    """True when *path* is on a filesystem whose files live in RAM (tmpfs...)."""
    return filesystem_type(path) in RAM_FILESYSTEMS


def anonymous_pages(lo: int, hi: int) -> int:
    """How many pages of [lo, hi) are in RAM as private anonymous copies: in a file
    mapping of ours, the pages written to since (or memory the allocator reused).

    From /proc/self/pagemap: bit 63 is "present", bit 61 "file page or shared".
    Unknown (no pagemap): every page counts as anonymous.
    """
    count = (hi - lo) // PAGE
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            raw = os.pread(fd, count * 8, lo // PAGE * 8)
        finally:
            os.close(fd)
    except OSError:
        return count
    present, file_page = 1 << 63, 1 << 61
    return sum(1 for e in memoryview(raw).cast("Q") if e & present and not e & file_page)


def map_count(pid: int | str = "self") -> int:
    """How many mappings the process has now (lines of its maps). Raises OSError."""
    with open(f"/proc/{pid}/maps", "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))


def max_map_count() -> int:
    """vm.max_map_count: the most mappings a process may have (65530 if unknown)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530
