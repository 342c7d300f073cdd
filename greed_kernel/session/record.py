"""This kernel's record of itself, which the next kernel of the notebook reads if this
one dies without a clean shutdown (``previous.py``).

The record is a JSON file of fixed size in the private directory (``files.py``):

* Written once at start, whole (real bytes, not a sparse file: a store into a page of a
  full disk would raise SIGBUS), with the identity (the notebook), the pid, the start
  time, the memory cgroup and its OOM-kill count then, and the *live fields*: ``cell``,
  ``usedBytes``, ``limitBytes``, ``peakBytes``, ``sampledAt``, ``stopping``, ``done``.
* Each live field is a number of fixed width, right-aligned after spaces (JSON allows
  spaces before a value), and the file is mapped ``MAP_SHARED``: :meth:`KernelRecord.update`
  overwrites the digits in place, with no system call, about a microsecond, so that the
  guard's thread can call it on every reading. A process killed by SIGKILL loses
  nothing it stored into the mapping (the page cache holds it), and the file is valid
  JSON after every update. (A kill in the middle of one field's copy could tear that
  number; the reader repairs such a field instead of losing the record.)
* With ``fault_handler=True``, faulthandler writes into a sidecar ``<record>.fault``
  on a fatal signal (``faults.py``: what changes for the user, and what does not).
* A forked child (a DataLoader worker) inherits the shared mapping: the record stops
  storing there, so that only the kernel writes its record.
* :meth:`KernelRecord.done` (clean shutdown) marks the record done, then removes it and
  its sidecar.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import time
import typing as t
import weakref
from collections.abc import Callable

from ..memory.limits import memory_cgroup_dir, oom_kills
from . import files
from .faults import FaultSidecar
from .identity import identity_key

log = logging.getLogger(__name__)

__all__ = ["LIVE_FIELDS", "KernelRecord"]

#: The size of a record file is a multiple of this, and at most MAX_SIZE.
SIZE_STEP = 4096
MAX_SIZE = 4 * SIZE_STEP
VERSION = 1
#: The live fields, in the file's order, and each one's width (bytes).
LIVE_FIELDS = (
    ("cell", 12),
    ("usedBytes", 20),
    ("limitBytes", 20),
    ("peakBytes", 20),
    ("sampledAt", 20),
    ("stopping", 1),
    ("done", 1),
)
#: The largest sampledAt written (a unix time in seconds, three decimals, in 20 bytes).
_MAX_TIME = 1e15
_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class KernelRecord:
    """One kernel's record (see the module docstring); made by :meth:`create`."""

    def __init__(
        self,
        dir_fd: int,
        name: files.RecordName,
        mapping: mmap.mmap,
        offsets: dict[str, int],
        path: str,
    ) -> None:
        self._dir_fd: int | None = dir_fd
        self.name = name
        #: the record file (for logs and tests; the record itself is reached by its
        #: directory's descriptor)
        self.path = path
        self._map: mmap.mmap | None = mapping
        # where each live field's digits are (slices made once: the hot path only stores)
        width = dict(LIVE_FIELDS)
        at = {key: slice(o, o + width[key]) for key, o in offsets.items()}
        self._cell = at["cell"]
        self._used = at["usedBytes"]
        self._limit = at["limitBytes"]
        self._peak = at["peakBytes"]
        self._sampled = at["sampledAt"]
        self._stopping = offsets["stopping"]
        self._done = offsets["done"]
        self._fault: FaultSidecar | None = None
        _records.add(self)

    @classmethod
    def create(
        cls,
        runtime_dir: str,
        identity: str,
        *,
        limit: int = 0,
        fault_handler: bool = False,
        cgroup: Callable[[], str | None] = memory_cgroup_dir,
        pid: int | None = None,
        ticks: int | None = None,
    ) -> KernelRecord | None:
        """The record of this kernel for the notebook *identity*, in
        ``<runtime_dir>/greed``; None, with the reason logged, where it cannot be made
        (a refused directory, a full or read-only disk, no ``/proc``).

        *limit* is the memory limit to start with; *fault_handler* turns on the fatal
        signal sidecar (module docstring); *cgroup* finds our memory cgroup's
        directory. *pid* and *ticks* (its start, in clock ticks) are this process's
        unless given (tests).
        """
        try:
            return cls._create(runtime_dir, identity, limit, fault_handler, cgroup, pid, ticks)
        except Exception:
            log.warning("Greed keeps no kernel record", exc_info=True)
            return None

    @classmethod
    def _create(
        cls,
        runtime_dir: str,
        identity: str,
        limit: int,
        fault_handler: bool,
        cgroup: Callable[[], str | None],
        pid: int | None,
        ticks: int | None,
    ) -> KernelRecord | None:
        pid = os.getpid() if pid is None else pid
        ticks = files.start_ticks(pid) if ticks is None else ticks
        if ticks is None:
            log.warning("Greed keeps no kernel record: no start time for pid %d", pid)
            return None
        try:
            cgroup_dir = cgroup()
        except Exception:
            log.debug("no memory cgroup", exc_info=True)
            cgroup_dir = None
        head = {
            "version": VERSION,
            "identity": identity,
            "pid": pid,
            "startTicks": ticks,
            "startedAt": round(files.started_at(ticks), 3),
            "cgroup": cgroup_dir,
            "oomKillsAtStart": None if cgroup_dir is None else oom_kills(cgroup_dir),
        }
        content, offsets = _layout(head, limit, time.time())
        if content is None:
            log.warning("Greed keeps no kernel record: the notebook's name is too long")
            return None
        dir_fd = files.open_dir(runtime_dir, create=True)
        if dir_fd is None:
            return None
        name = files.RecordName.make(identity_key(identity), pid, ticks)
        path = os.path.join(runtime_dir, files.DIR_NAME, name.name)
        try:
            mapping = _write(dir_fd, name.name, content)
        except OSError as error:
            log.warning("Greed keeps no kernel record at %s: %s", path, error)
            os.close(dir_fd)
            return None
        record = cls(dir_fd, name, mapping, offsets, path)
        if fault_handler:
            record._fault = FaultSidecar.open(dir_fd, name.fault)
        return record

    # -- the hot path ----------------------------------------------------------------
    def update(
        self,
        cell: int | None = None,
        used: int | None = None,
        peak: int | None = None,
        sampled_at: float | None = None,
        stopping: bool | None = None,
        limit: int | None = None,
    ) -> None:
        """Store any of the live fields (a store into the mapping: no system call);
        never raises. A value too wide for its field is not stored."""
        m = self._map
        if m is None:
            return
        try:
            if cell is not None:
                m[self._cell] = b"%12d" % cell
            if used is not None:
                m[self._used] = b"%20d" % used
            if peak is not None:
                m[self._peak] = b"%20d" % peak
            if sampled_at is not None and 0.0 <= sampled_at < _MAX_TIME:
                m[self._sampled] = b"%20.3f" % sampled_at
            if stopping is not None:
                m[self._stopping] = 49 if stopping else 48  # b"1", b"0"
            if limit is not None:
                m[self._limit] = b"%20d" % limit
        except Exception:  # a closed mapping, a value of the wrong type or width
            pass

    # -- the end ---------------------------------------------------------------------
    def done(self) -> None:
        """A clean shutdown: mark the record done, then remove it and its sidecar;
        never raises."""
        m = self._map
        if m is not None:
            with contextlib.suppress(Exception):
                m[self._done] = 49
        dir_fd = self._dir_fd
        if dir_fd is not None:
            self._close_fault()
            for name in (self.name.name, self.name.fault):
                files.remove_own(dir_fd, name)
        self.close()

    def close(self) -> None:
        """Unmap the record and close its directory, leaving the file as it is (the
        next kernel reads it as that of a kernel that did not shut down); never raises."""
        self._close_fault()
        # The mapping is dropped, not closed: an update on another thread that holds it
        # finishes its stores, and the last reference unmaps it.
        self._map = None
        dir_fd, self._dir_fd = self._dir_fd, None
        if dir_fd is not None:
            with contextlib.suppress(OSError):
                os.close(dir_fd)

    def _close_fault(self) -> None:
        fault, self._fault = self._fault, None
        if fault is not None:
            fault.close()


#: The records of this process, which a forked child leaves alone.
_records: weakref.WeakSet[KernelRecord] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for record in list(_records):
        record._map = None  # the parent's mapping, shared: not the child's to write
        record._dir_fd = None
        record._fault = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _layout(head: dict[str, t.Any], limit: int, now: float) -> tuple[bytes | None, dict[str, int]]:
    """The record's bytes (JSON padded with spaces to a multiple of SIZE_STEP) and the
    offset of each live field's digits; None where it would be over MAX_SIZE."""
    text = json.dumps(head, ensure_ascii=True)[:-1]  # the object, still open
    initial = {"limitBytes": max(0, int(limit)), "sampledAt": now}
    offsets = {}
    for key, width in LIVE_FIELDS:
        text += f', "{key}": '
        offsets[key] = len(text)
        value = initial.get(key, 0)
        text += f"{value:{width}.3f}" if key == "sampledAt" else f"{value:{width}d}"
    text += "}"
    size = -(-(len(text) + 1) // SIZE_STEP) * SIZE_STEP
    if size > MAX_SIZE:
        return None, offsets
    return (text + " " * (size - len(text) - 1) + "\n").encode("ascii"), offsets


def _write(dir_fd: int, name: str, content: bytes) -> mmap.mmap:
    """Create the file *name* (0600, never through a symlink, never an existing one),
    write *content* whole, and map it shared; a file it made and could not finish is
    removed."""
    fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        return mmap.mmap(fd, len(content), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        files.remove_own(dir_fd, name)
        raise
    finally:
        os.close(fd)
