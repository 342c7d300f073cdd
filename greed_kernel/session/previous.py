"""The previous kernel of a notebook, read back from its record, and the pruning of
records of kernels long gone.

* :func:`previous` finds, among our own records of the notebook (``files.py`` says
  which files are looked at), those of kernels that are gone (no such process, or its
  pid reused) and did not shut down cleanly; it says why the latest one died and
  **removes those records**: the caller holds the answer for the first cell, ``%greed
  status`` and the comm's ``hello``. (A kernel that dies before saying it loses the
  line; its own record then tells the next kernel that it died.)
* The cause, from the strongest evidence down: the sidecar names a fatal signal
  (faulthandler wrote it in that very process) → ``signal``; the OOM-kill count of the
  record's cgroup rose since the kernel started → ``oom``; the kernel was at 95% of its
  limit or greed was stopping a cell → ``oom``, worded "probably"; else ``unknown``.
  (The count is the cgroup's: in a cgroup that other processes share, another's kill
  raises it too, so a named signal comes first.)
* :func:`prune` removes our own records, of any notebook, of kernels that are gone and
  were last seen more than ``max_age_s`` ago, done records, unreadable ones of kernels
  that are gone, and sidecars whose kernel is gone and whose record is not there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import typing as t
from collections.abc import Callable

from ..memory.limits import oom_kills
from . import files
from .faults import signal_named
from .identity import identity_key

log = logging.getLogger(__name__)

__all__ = ["MAX_AGE_S", "PreviousKernel", "previous", "prune"]

#: Records of kernels gone longer than this are pruned, and not reported.
MAX_AGE_S = 7 * 86400
#: At this share of its limit, a kernel that vanished probably was out of memory.
NEAR_LIMIT = 0.95
#: A live field as the record writes it, for the repair of a torn number.
_LIVE_VALUE = re.compile(
    r'("(?:cell|usedBytes|limitBytes|peakBytes|sampledAt|stopping|done)": )([^,}]*)'
)
_PREFIX = "Greed: the previous kernel of this notebook"
_IN_ONE_CALL = (
    " Greed had asked that cell to stop, but it was inside a single operation (such as"
    " one allocation larger than the memory left) that cannot be interrupted."
)

IsAlive = Callable[[int, int], bool]


@dataclasses.dataclass(frozen=True)
class PreviousKernel:
    """The previous kernel of a notebook, which ended without a clean shutdown (the
    schema's ``PreviousKernel``)."""

    message: str
    cause: t.Literal["oom", "signal", "unknown"]
    signal: int | None
    execution_count: int
    unreclaimable_bytes: int
    limit_bytes: int
    in_one_call: bool
    pid: int
    started_at: float
    last_seen_at: float

    def to_json(self) -> dict[str, t.Any]:
        """The schema's camelCase object."""
        return {
            "message": self.message,
            "cause": self.cause,
            "signal": self.signal,
            "executionCount": self.execution_count,
            "unreclaimableBytes": self.unreclaimable_bytes,
            "limitBytes": self.limit_bytes,
            "inOneCall": self.in_one_call,
            "pid": self.pid,
            "startedAt": self.started_at,
            "lastSeenAt": self.last_seen_at,
        }


def previous(
    runtime_dir: str,
    identity: str,
    *,
    now: float,
    is_alive: IsAlive = files.process_alive,
    max_age_s: float = MAX_AGE_S,
) -> PreviousKernel | None:
    """The latest kernel of the notebook *identity* that died (module docstring), or
    None; the records of its dead kernels are removed. Never raises."""
    try:
        return _previous(runtime_dir, identity, now, is_alive, max_age_s)
    except Exception:
        log.warning("Greed could not read the previous kernel's record", exc_info=True)
        return None


def _previous(
    runtime_dir: str, identity: str, now: float, is_alive: IsAlive, max_age_s: float
) -> PreviousKernel | None:
    dir_fd = files.open_dir(runtime_dir, create=False)
    if dir_fd is None:
        return None
    try:
        key = identity_key(identity)
        dead = []
        for name, parsed in files.record_names(dir_fd):
            if name != parsed.name or parsed.key != key or is_alive(parsed.pid, parsed.ticks):
                continue
            read = files.read_own(dir_fd, name)
            record = None if read is None else _parse(read[0], parsed)
            if record is None or record["done"] or record["identity"] != identity:
                continue  # unreadable or done: prune's; another notebook's (a key collision)
            dead.append((parsed, record))
        if not dead:
            return None
        parsed, record = max(dead, key=lambda d: (d[1]["startedAt"], d[1]["sampledAt"]))
        fault = files.read_own(dir_fd, parsed.fault)
        for gone, _ in dead:
            files.remove_own(dir_fd, gone.name)
            files.remove_own(dir_fd, gone.fault)
        if now - record["sampledAt"] > max_age_s:
            return None
        return _judge(record, None if fault is None else fault[0])
    finally:
        os.close(dir_fd)


def prune(
    runtime_dir: str,
    *,
    now: float,
    max_age_s: float = MAX_AGE_S,
    is_alive: IsAlive = files.process_alive,
) -> int:
    """Remove the records that are no longer of use (module docstring); how many files
    were removed. Never raises."""
    try:
        dir_fd = files.open_dir(runtime_dir, create=False)
    except Exception:
        log.debug("pruning the kernel records", exc_info=True)
        return 0
    if dir_fd is None:
        return 0
    removed = 0
    try:
        names = list(files.record_names(dir_fd))
        present = {name for name, _ in names}
        for name, parsed in names:
            alive = is_alive(parsed.pid, parsed.ticks)
            if name != parsed.name:  # a sidecar
                drop = not alive and parsed.name not in present
            else:
                drop = _prunable(dir_fd, parsed, alive, now, max_age_s)
            if drop and files.remove_own(dir_fd, name):
                removed += 1
    except Exception:
        log.debug("pruning the kernel records", exc_info=True)
    finally:
        os.close(dir_fd)
    return removed


def _prunable(
    dir_fd: int, parsed: files.RecordName, alive: bool, now: float, max_age_s: float
) -> bool:
    """Whether prune removes this record: done; or its kernel is gone and it is
    unreadable (ours, but corrupt or too large) or was last seen too long ago."""
    read = files.read_own(dir_fd, parsed.name)
    if read is None:
        # not ours to judge (or gone meanwhile); ours but too large to read
        return not alive and files.own_stat(dir_fd, parsed.name) is not None
    data, st = read
    record = _parse(data, parsed)
    if record is None:
        return not alive
    if record["done"]:
        return True
    return not alive and now - max(record["sampledAt"], st.st_mtime) > max_age_s


# -- reading a record ------------------------------------------------------------------
def _parse(data: bytes, name: files.RecordName) -> dict[str, t.Any] | None:
    """The record in *data* if it is whole and says what its name says, else None."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        try:  # a kill in the middle of one number's copy tore it: take its digits
            record = json.loads(_LIVE_VALUE.sub(_repaired, text))
        except ValueError:
            return None
    return record if _valid(record, name) else None


def _repaired(match: re.Match[str]) -> str:
    digits = match.group(2).replace(" ", "")
    try:
        value: float = float(digits) if "." in digits else int(digits)
    except ValueError:
        value = 0
    return f"{match.group(1)}{value}"


def _valid(record: t.Any, name: files.RecordName) -> bool:
    if not isinstance(record, dict):
        return False
    ints = ("pid", "startTicks", "cell", "usedBytes", "limitBytes", "peakBytes")
    numbers = ("startedAt", "sampledAt")
    return (
        all(type(record.get(k)) is int and record[k] >= 0 for k in ints)
        and all(type(record.get(k)) in (int, float) and math.isfinite(record[k]) for k in numbers)
        and record.get("stopping") in (0, 1)
        and record.get("done") in (0, 1)
        and isinstance(record.get("identity"), str)
        and isinstance(record.get("cgroup"), (str, type(None)))
        and type(record.get("oomKillsAtStart")) in (int, type(None))
        and record["pid"] == name.pid
        and record["startTicks"] == name.ticks
    )


def _oom_counted(record: dict[str, t.Any]) -> bool:
    """Whether the OOM killer killed in the record's cgroup since the kernel started."""
    cgroup, before = record["cgroup"], record["oomKillsAtStart"]
    if cgroup is None or before is None or not os.path.isabs(cgroup):
        return False
    now = oom_kills(cgroup)
    return now is not None and now > before


def _judge(record: dict[str, t.Any], fault: bytes | None) -> PreviousKernel:
    """Why the kernel of *record* died, and the line that says it."""
    cell, used, limit = record["cell"], record["usedBytes"], record["limitBytes"]
    stopping = bool(record["stopping"])
    where = f"at cell {cell}" if cell > 0 else "before its first cell"
    signal = signal_named(fault)
    amount = f" ({_amount(used, limit)})" if limit > 0 else ""
    cause: t.Literal["oom", "signal", "unknown"]
    if signal is not None:
        cause, message = "signal", f"{_PREFIX} died {where} (signal {signal})."
    elif _oom_counted(record):
        cause, message = "oom", f"{_PREFIX} was killed {where}, out of memory{amount}."
    elif stopping or (limit > 0 and used >= NEAR_LIMIT * limit):
        cause = "oom"
        message = f"{_PREFIX} died {where}, probably out of memory{amount}."
    else:
        cause, message = "unknown", f"{_PREFIX} stopped unexpectedly {where}."
    if stopping:
        message += _IN_ONE_CALL
    return PreviousKernel(
        message=message,
        cause=cause,
        signal=signal,
        execution_count=cell,
        unreclaimable_bytes=used,
        limit_bytes=limit,
        in_one_call=stopping,
        pid=record["pid"],
        started_at=float(record["startedAt"]),
        last_seen_at=float(record["sampledAt"]),
    )


def _amount(used: int, limit: int) -> str:
    """ "1.49 of its 1.50 GiB", "700 of its 1024 MiB": both in the limit's unit."""
    if limit >= 1 << 30:
        return f"{used / (1 << 30):.2f} of its {limit / (1 << 30):.2f} GiB"
    return f"{used / (1 << 20):.0f} of its {limit / (1 << 20):.0f} MiB"
