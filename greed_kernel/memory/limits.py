"""The memory limit the kernel lives under: the cgroup's, or physical RAM.

`auto_limit` is discovered once per process and cached; a `MemoryProbe.limit`
set by the user takes its place. `memory_cgroup_dir` and `oom_kills` say which memory
cgroup the kernel is in and how many processes the OOM killer has killed there (the
death record keeps both, so that the next kernel can tell an OOM kill).
"""

from __future__ import annotations

import functools
import logging
import os

import psutil

log = logging.getLogger(__name__)

__all__ = ["auto_limit", "cgroup_limit", "memory_cgroup_dir", "oom_kills"]

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


def memory_cgroup_dir(
    root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup"
) -> str | None:
    """Our own memory cgroup's directory, or None when there is none to be seen.

    cgroup v2 (as `cgroup_limit` tells it: `root` holds `cgroup.controllers` or
    `memory.max`): the cgroup named on the `0::` line of `proc_cgroup` under `root`;
    cgroup v1: the one named on the `memory` line under `root/memory`. Where that
    directory is not under `root` (a cgroup namespace puts us at the mount's root), its
    deepest ancestor that is, else the mount's root itself.
    """
    try:
        v2 = os.path.exists(os.path.join(root, "cgroup.controllers")) or os.path.exists(
            os.path.join(root, "memory.max")
        )
        base = root if v2 else os.path.join(root, "memory")
        dirs = _own_cgroup_dirs(root, proc_cgroup, None if v2 else "memory")
        if dirs:
            return dirs[0]
        return base if os.path.isdir(base) else None
    except (OSError, ValueError):
        return None


#: The files that count OOM kills: v2 first, then v1 (since Linux 4.13).
_OOM_FILES = ("memory.events", "memory.oom_control")


def oom_kills(cgroup_dir: str) -> int | None:
    """How many processes the OOM killer has killed in `cgroup_dir` (and below it), from
    the `oom_kill N` line of v2's `memory.events` or v1's `memory.oom_control`; None
    where neither can be read or neither has that line."""
    for name in _OOM_FILES:
        try:
            with open(os.path.join(cgroup_dir, name), encoding="ascii") as f:
                lines = f.read(1 << 16).splitlines()
        except (OSError, ValueError, TypeError):
            continue
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                try:
                    return int(value)
                except ValueError:
                    return None
    return None


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
