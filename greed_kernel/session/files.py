"""The private directory of the kernels' records, their names, and the safe reads.

* The directory is ``greed`` under the Jupyter runtime directory. It is made 0700; one
  that exists is used only if it is a real directory (not a symlink), ours, and closed
  to group and others. Greed never changes the mode of a directory it did not just
  make: a directory that fails the checks is refused (records are then off, logged).
* Everything inside is opened relative to the directory's descriptor, never through a
  symlink, and only names of our strict pattern are looked at: a record
  ``kernel-<key>-<pid>-<start ticks>.json`` and its sidecar ``<record>.fault``.
* A file is read only if it is a regular file, ours and 0600, checked on the open
  descriptor before reading (opened non-blocking: a FIFO never blocks), and at most
  :data:`MAX_READ` bytes of it. A file that fails is skipped and never deleted.
* A kernel is alive when a process has its pid and the same start time (in clock ticks
  since boot, from ``/proc/<pid>/stat``), and is not a zombie: a reused pid is gone.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import typing as t
from collections.abc import Iterator

import psutil

log = logging.getLogger(__name__)

__all__ = [
    "DIR_NAME",
    "RecordName",
    "is_own_file",
    "open_dir",
    "own_stat",
    "process_alive",
    "read_own",
    "record_names",
    "remove_own",
    "start_ticks",
    "started_at",
]

DIR_NAME = "greed"
#: The most of a record or sidecar file that is read (a record is a few KiB).
MAX_READ = 1 << 16
FAULT_SUFFIX = ".fault"
_RECORD = re.compile(r"kernel-([0-9a-f]{16})-([1-9][0-9]{0,9})-([0-9]{1,20})\.json")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class RecordName(t.NamedTuple):
    """A record's file name and what it says: the identity key, the pid, the start."""

    name: str
    key: str
    pid: int
    ticks: int

    @classmethod
    def make(cls, key: str, pid: int, ticks: int) -> RecordName:
        return cls(f"kernel-{key}-{pid}-{ticks}.json", key, pid, ticks)

    @classmethod
    def parse(cls, name: str) -> RecordName | None:
        match = _RECORD.fullmatch(name)
        if match is None:
            return None
        return cls(name, match.group(1), int(match.group(2)), int(match.group(3)))

    @property
    def fault(self) -> str:
        """The name of its sidecar, where faulthandler writes on a fatal signal."""
        return self.name + FAULT_SUFFIX


# -- the directory ---------------------------------------------------------------------
def open_dir(runtime_dir: str, *, create: bool) -> int | None:
    """A descriptor of ``<runtime_dir>/greed``, made 0700 if *create* and missing; None
    (and the reason logged) where it cannot be made or is refused, and None silently
    where it does not exist and *create* is false."""
    path = os.path.join(runtime_dir, DIR_NAME)
    made = False
    try:
        if create:
            os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
                made = True
            except FileExistsError:
                pass
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        if create:
            log.warning("Greed keeps no kernel record: %s vanished", path)
        return None
    except OSError as error:
        log.warning("Greed keeps no kernel record in %s: %s", path, error)
        return None
    try:
        if made:
            os.fchmod(fd, 0o700)  # ours, just made: the umask may have taken bits
        why = _refusal(os.fstat(fd))
    except OSError as error:
        why = str(error)
    if why:
        os.close(fd)
        log.warning("Greed keeps no kernel record in %s: %s", path, why)
        return None
    return fd


def _refusal(st: os.stat_result) -> str | None:
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o077:
        return f"mode {stat.S_IMODE(st.st_mode):04o}: group or others may use it (0700 expected)"
    return None


def record_names(dir_fd: int) -> Iterator[tuple[str, RecordName | None]]:
    """Each name in the directory that is ours by its pattern, with its record's name
    parsed: (a record's name, itself) or (a sidecar's name, its record's)."""
    try:
        names = os.listdir(dir_fd)
    except OSError as error:
        log.debug("cannot list the kernel records: %s", error)
        return
    for name in names:
        parsed = RecordName.parse(name)
        if parsed is not None:
            yield name, parsed
        elif name.endswith(FAULT_SUFFIX):
            parsed = RecordName.parse(name[: -len(FAULT_SUFFIX)])
            if parsed is not None:
                yield name, parsed


# -- the files -------------------------------------------------------------------------
def is_own_file(st: os.stat_result) -> bool:
    """A regular file of this user, 0600: what greed writes (nothing else is read)."""
    return (
        stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o600
    )


def own_stat(dir_fd: int, name: str) -> os.stat_result | None:
    """The status of *name* (not following a symlink) if it is our own file."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    return st if is_own_file(st) else None


def read_own(dir_fd: int, name: str) -> tuple[bytes, os.stat_result] | None:
    """The content of our own file *name* (at most :data:`MAX_READ` bytes) and its
    status; None where it is missing, not ours, not a regular file, or larger."""
    if own_stat(dir_fd, name) is None:
        return None
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not is_own_file(st) or st.st_size > MAX_READ:
            return None
        chunks = []
        left = MAX_READ + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return (data, st) if len(data) <= MAX_READ else None
    except OSError:
        return None
    finally:
        os.close(fd)


def remove_own(dir_fd: int, name: str) -> bool:
    """Unlink our own file *name* (never truncate); False where it is not ours or gone."""
    if own_stat(dir_fd, name) is None:
        return False
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


# -- processes -------------------------------------------------------------------------
def start_ticks(pid: int) -> int | None:
    """When process *pid* started, in clock ticks since boot; None where there is no
    such process, or it is a zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            data = f.read(4096)
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])  # field 22 of the line; fields[0] is field 3, the state
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, ticks: int) -> bool:
    """Whether the kernel of *pid* started at *ticks* still runs (not a reused pid)."""
    return start_ticks(pid) == ticks


def started_at(ticks: int) -> float:
    """Unix time, in seconds, of a process start of *ticks* since boot."""
    return float(psutil.boot_time()) + ticks / os.sysconf("SC_CLK_TCK")
