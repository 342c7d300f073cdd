"""The memory limit the kernel lives under: the cgroup's, or physical RAM.

`auto_limit` is discovered once per process and cached; a `MemoryProbe.limit`
set by the user takes its place.
"""

from __future__ import annotations

import functools
import logging
import os

import psutil

log = logging.getLogger(__name__)

__all__ = ["auto_limit", "cgroup_limit"]

# Limits at or above this mean "no limit": cgroup v1 reports
# 9223372036854771712 (PAGE_COUNTER_MAX pages) when unlimited.
_UNLIMITED = 1 << 60


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
def auto_limit() -> int:
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
