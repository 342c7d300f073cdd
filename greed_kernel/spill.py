"""Spill stale values to disk and bring them back on first use.

A spilled value leaves the namespace (so its memory is freed) and lives in a
file of this kernel's private spill directory until a cell touches one of its
names, when it is loaded back under every name it had. Nothing is ever lost:
a value that cannot be written stays in memory, and files are only deleted
once their value is back, or when the kernel shuts down.

Formats, by what the value is (libraries are used only if the user imported them):
tensors, nn.Modules and optimizers with ``torch.save`` (CUDA tensors return to
their device); plain numpy arrays with ``np.save`` (no pickle); anything else
with pickle protocol 5. Every file starts with this kernel's random token,
checked before anything is loaded, so only files this kernel wrote are read.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import pickle
import secrets
import shutil
import sys
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .sizes import measure

#: Bytes of the file header: magic + token + format.
MAGIC = b"GREEDSPILL1\n"
FORMATS = {b"T": "torch", b"N": "numpy", b"P": "pickle"}
#: Upper bound of the automatic disk budget.
AUTO_BUDGET_CAP = 50 << 30


@dataclass(slots=True)
class Spilled:
    """One spilled object and the names it was bound to."""

    names: tuple[str, ...]
    path: Path
    type_name: str
    nbytes: int  # in-memory size when spilled
    file_bytes: int
    when: float  # time.time() of the spill
    execution: int


class SpillError(RuntimeError):
    """A value could not be spilled or restored (the reason is in the message)."""


class SpillStore:
    """The spilled values of one kernel, and its private directory."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = 0,
        log: logging.Logger | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes  # 0: half the free disk there, capped at 50 GiB
        self.log = log or logging.getLogger(__name__)
        self.token = secrets.token_bytes(16)
        self.by_name: dict[str, Spilled] = {}
        self.spilled_bytes = 0  # in-memory bytes currently on disk
        self.disk_bytes = 0
        self.restored_count = 0
        self.restored_bytes = 0
        self._budget: int | None = None
        atexit.register(self.clear)  # a normal exit without a shutdown request

    # -- budget ------------------------------------------------------------------------
    def budget(self) -> int:
        if self.max_bytes > 0:
            return self.max_bytes
        if self._budget is None:
            self._ensure_dir()
            free = shutil.disk_usage(self.directory).free
            self._budget = min(free // 2, AUTO_BUDGET_CAP)
        return self._budget

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # mkdir's mode is masked by umask

    # -- spill -------------------------------------------------------------------------
    def spill(self, ns: dict[str, t.Any], names: t.Sequence[str], execution: int) -> Spilled:
        """Write the object bound to *names* (all bound to one object) and unbind them.

        Raises SpillError, leaving the namespace untouched, when the value cannot be
        written or the disk budget would be exceeded.
        """
        obj = ns[names[0]]
        nbytes = measure(obj).nbytes
        if self.disk_bytes + nbytes > self.budget():
            raise SpillError(f"disk budget of {self.budget()} bytes reached (spill_max_bytes)")
        self._ensure_dir()
        path = self.directory / f"{secrets.token_hex(8)}.spill"
        fmt, writer = _writer_for(obj)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + self.token + fmt)
                writer(obj, f)
            file_bytes = path.stat().st_size
            if self.disk_bytes + file_bytes > self.budget():
                raise SpillError("disk budget reached (spill_max_bytes)")
        except BaseException as e:
            with contextlib.suppress(OSError):
                path.unlink()
            if isinstance(e, SpillError):
                raise
            if isinstance(e, KeyboardInterrupt):
                raise
            raise SpillError(f"{type(e).__name__}: {e}") from e
        entry = Spilled(
            names=tuple(names),
            path=path,
            type_name=type_name(obj),
            nbytes=nbytes,
            file_bytes=file_bytes,
            when=time.time(),
            execution=execution,
        )
        # Only now, with the file complete, does the value leave the namespace.
        for name in names:
            del ns[name]
            self.by_name[name] = entry
        self.spilled_bytes += nbytes
        self.disk_bytes += file_bytes
        return entry

    # -- restore -----------------------------------------------------------------------
    def restore(self, ns: dict[str, t.Any], name: str) -> Spilled:
        """Load the value of *name* back under all its names; remove its file."""
        entry = self.by_name[name]
        with open(entry.path, "rb") as f:
            header = f.read(len(MAGIC) + len(self.token) + 1)
            if header[: len(MAGIC) + len(self.token)] != MAGIC + self.token:
                raise SpillError(f"{entry.path.name} was not written by this kernel")
            fmt = FORMATS.get(header[-1:])
            if fmt is None:
                raise SpillError(f"{entry.path.name}: unknown format")
            value = _READERS[fmt](f)
        for n in entry.names:
            if n not in ns:  # a name rebound since the spill keeps its new value
                ns[n] = value
            self.by_name.pop(n, None)
        self._forget(entry)
        self.restored_count += 1
        self.restored_bytes += entry.nbytes
        return entry

    def _forget(self, entry: Spilled) -> None:
        self.spilled_bytes -= entry.nbytes
        self.disk_bytes -= entry.file_bytes
        with contextlib.suppress(OSError):
            entry.path.unlink()

    def discard(self, name: str) -> None:
        """The user rebound or deleted *name*: its spilled value is no longer wanted
        under that name (the file goes when no name needs it any more)."""
        entry = self.by_name.pop(name, None)
        if entry is not None and not any(self.by_name.get(n) is entry for n in entry.names):
            self._forget(entry)

    def entries(self) -> list[Spilled]:
        """Each spilled object once."""
        unique: dict[int, Spilled] = {}
        for entry in self.by_name.values():
            unique.setdefault(id(entry), entry)
        return list(unique.values())

    def clear(self) -> None:
        """Delete every spill file and the directory (shutdown and restart)."""
        self.by_name.clear()
        self.spilled_bytes = self.disk_bytes = 0
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_orphans(parent: Path) -> None:
    """Remove spill directories (named ``PID-XXXX``) of kernels that died without cleaning up."""
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return
    for path in candidates:
        try:
            pid = int(path.name.split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- what may spill ---------------------------------------------------------------------
def spillable_groups(ns: dict[str, t.Any], names: t.Iterable[str]) -> list[list[str]]:
    """Group *names* by the object they are bound to, keeping only the groups whose
    object nothing else holds: no other name, no output-cache entry, no container,
    no view of its memory. Spilling anything else would free nothing and, worse,
    break identity (an optimizer whose model comes back as a copy trains nothing).
    """
    counts: dict[int, int] = {}
    for value in ns.values():
        counts[id(value)] = counts.get(id(value), 0) + 1
    groups: dict[int, list[str]] = {}
    for name in names:
        if name in ns:
            groups.setdefault(id(ns[name]), []).append(name)
    return [
        group
        for key, group in groups.items()
        if counts.get(key) == len(group)
        # every reference is one of these names (getrefcount adds its argument)
        and sys.getrefcount(ns[group[0]]) - 1 == len(group)
        and _private(ns[group[0]])
    ]


#: Values with no inner parts worth checking.
_ATOMS = (int, float, complex, bool, str, bytes, type(None))


def _private(obj: t.Any, depth: int = 0) -> bool:
    """True when no part of *obj* (tensor storage, parameter, element) is shared."""
    kind = type(obj)
    torch = sys.modules.get("torch")
    if torch is not None:
        if issubclass(kind, torch.Tensor):
            return _storage_private(obj, torch)
        if issubclass(kind, (torch.nn.Module, torch.optim.Optimizer)):
            return _torch_container_private(obj, torch)
    np = sys.modules.get("numpy")
    if np is not None and kind is np.ndarray:
        return obj.base is None
    if depth >= 2:
        return kind in _ATOMS
    if kind in (list, tuple, set, frozenset):
        # each element: held by the container, the loop variable and getrefcount's argument
        return all(
            type(x) in _ATOMS or (sys.getrefcount(x) <= 3 and _private(x, depth + 1)) for x in obj
        )
    if kind is dict:
        return all(
            type(x) in _ATOMS or (sys.getrefcount(x) <= 3 and _private(x, depth + 1))
            for x in obj.values()
        )
    return True


def _storage_private(tensor: t.Any, torch: t.Any) -> bool:
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:
        return True
    try:
        # the tensor and the storage handle we just made: 2 when nothing else shares it
        return use_count(tensor.untyped_storage()._cdata) <= 2
    except Exception:
        return False


def _torch_container_private(obj: t.Any, torch: t.Any) -> bool:
    """Parameters and buffers of a module (or an optimizer's params) held by it alone."""
    if issubclass(type(obj), torch.optim.Optimizer):
        tensors = [p for g in obj.param_groups for p in g["params"]]
        # held by the param group's list, this list, the loop variable, the argument
        return all(sys.getrefcount(p) <= 4 and _storage_private(p, torch) for p in tensors)
    for module in obj.modules():
        for table in (module._parameters, module._buffers):
            for tensor in table.values():
                # held by the module's dict, the loop variable and getrefcount's argument
                if tensor is not None and (
                    sys.getrefcount(tensor) > 3 or not _storage_private(tensor, torch)
                ):
                    return False
    return True


# -- formats ---------------------------------------------------------------------------
def _writer_for(obj: t.Any) -> tuple[bytes, t.Callable[[t.Any, t.BinaryIO], None]]:
    torch = sys.modules.get("torch")
    kind = type(obj)
    if torch is not None and _is_torch(kind, torch):
        return b"T", lambda o, f: torch.save(o, f)
    np = sys.modules.get("numpy")
    if np is not None and kind is np.ndarray and not obj.dtype.hasobject:
        return b"N", lambda o, f: np.save(f, o, allow_pickle=False)
    return b"P", lambda o, f: pickle.dump(o, f, protocol=5)


def _is_torch(kind: type, torch: t.Any) -> bool:
    bases = (torch.Tensor, torch.nn.Module, torch.optim.Optimizer)
    return issubclass(kind, bases)


def _library(name: str) -> t.Any:
    # The user imported it to make the value, so it is there; we never import it.
    module = sys.modules.get(name)
    if module is None:
        raise SpillError(f"{name} is not imported in this kernel")
    return module


def _read_torch(f: t.BinaryIO) -> t.Any:
    # our own file (the token matched), so a full unpickle is what we wrote
    return _library("torch").load(io.BytesIO(f.read()), weights_only=False)


def _read_numpy(f: t.BinaryIO) -> t.Any:
    return _library("numpy").load(f, allow_pickle=False)


_READERS = {"torch": _read_torch, "numpy": _read_numpy, "pickle": pickle.load}


def type_name(obj: t.Any) -> str:
    """``module.Qualname`` of a value's type (just ``Qualname`` for builtins and cells)."""
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"
