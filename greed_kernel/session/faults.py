"""The fatal-signal sidecar of a kernel's record: faulthandler writes into it when the
kernel dies of a fatal signal, and the next kernel reads which signal it was.

python3's kernel does not enable :mod:`faulthandler` (ipykernel only changes the file
it defaults to). :meth:`FaultSidecar.open` enables it on a sidecar file, 0600, beside
the record: on SIGSEGV, SIGBUS, SIGFPE, SIGABRT or SIGILL it writes ``Fatal Python
error: Segmentation fault`` (and every thread's traceback) there, and the process then
dies of the signal as before. The one difference a user can observe is
``faulthandler.is_enabled()``, True. Where faulthandler is already enabled (``-X
faulthandler``, ``PYTHONFAULTHANDLER``), it is left as the user set it, and there is no
sidecar. A forked child (a DataLoader worker) gets faulthandler disabled again, as a
child of python3 has it, so that a worker's crash is not taken for the kernel's.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import re
import signal as signals
import typing as t

from . import files

log = logging.getLogger(__name__)

__all__ = ["FAULTS", "FaultSidecar", "signal_named"]

#: What faulthandler writes first on each fatal signal it handles.
FAULTS = {
    "Segmentation fault": signals.SIGSEGV,
    "Bus error": signals.SIGBUS,
    "Floating point exception": signals.SIGFPE,
    "Aborted": signals.SIGABRT,
    "Illegal instruction": signals.SIGILL,
}
_FAULT_LINE = re.compile(rb"^Fatal Python error: ([A-Za-z ]+)$", re.M)
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FaultSidecar:
    """faulthandler, enabled on a sidecar file (see the module docstring)."""

    def __init__(self, file: t.IO[str]) -> None:
        self._file: t.IO[str] | None = file

    @classmethod
    def open(cls, dir_fd: int, name: str) -> FaultSidecar | None:
        """Make the sidecar *name* in the directory and enable faulthandler on it; None
        where faulthandler is already enabled or the file cannot be made (logged)."""
        global _active
        if faulthandler.is_enabled():
            log.debug("faulthandler is already enabled: no fatal signal sidecar")
            return None
        try:
            fd = os.open(name, _FLAGS, 0o600, dir_fd=dir_fd)
        except OSError as error:
            log.warning("Greed keeps no fatal signal sidecar: %s", error)
            return None
        try:
            os.fchmod(fd, 0o600)  # the umask may have taken bits
            file = os.fdopen(fd, "w", encoding="utf-8")
        except OSError:
            os.close(fd)
            files.remove_own(dir_fd, name)
            return None
        faulthandler.enable(file=file, all_threads=True)
        _active = sidecar = cls(file)
        return sidecar

    def close(self) -> None:
        """Disable faulthandler and close the file (the sidecar stays); never raises."""
        global _active
        file, self._file = self._file, None
        if _active is self:
            _active = None
        if file is None:
            return
        try:
            faulthandler.disable()  # before the close: it writes to the descriptor
            file.close()
        except Exception:
            log.debug("closing the fatal signal sidecar", exc_info=True)


def signal_named(data: bytes | None) -> int | None:
    """The fatal signal faulthandler named in a sidecar's content, if any."""
    match = _FAULT_LINE.search(data or b"")
    signal = FAULTS.get(match.group(1).decode("ascii")) if match else None
    return None if signal is None else int(signal)


#: The sidecar faulthandler writes to now, if any.
_active: FaultSidecar | None = None


def _after_fork_in_child() -> None:
    sidecar = _active
    if sidecar is not None and sidecar._file is not None:
        sidecar._file = None  # the child's copy: left to the child's exit
        faulthandler.disable()


os.register_at_fork(after_in_child=_after_fork_in_child)
