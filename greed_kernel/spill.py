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
import collections
import contextlib
import gc
import io
import logging
import os
import pickle
import secrets
import shutil
import sys
import time
import types
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
    index: dict[str, int]  # name -> which of the unit's objects it is bound to
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
    def spill(self, ns: dict[str, t.Any], unit: list[list[str]], execution: int) -> Spilled:
        """Write a unit (from :func:`spill_units`: groups of names, each bound to one
        object) to one file and unbind its names.

        Raises SpillError, leaving the namespace untouched, when the values cannot be
        written or the disk budget would be exceeded.
        """
        objs = [ns[group[0]] for group in unit]
        index = {name: i for i, group in enumerate(unit) for name in group}
        # one object alone, several as a tuple: one pickle keeps what they share
        obj = objs[0] if len(objs) == 1 else tuple(objs)
        seen: set[int] = set()
        nbytes = sum(measure(o, seen=seen).nbytes for o in objs)
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
            names=tuple(index),
            index=index,
            path=path,
            type_name=" + ".join(dict.fromkeys(type_name(o) for o in objs)),
            nbytes=nbytes,
            file_bytes=file_bytes,
            when=time.time(),
            execution=execution,
        )
        # Only now, with the file complete, do the values leave the namespace.
        for name in index:
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
        values = [value] if len(set(entry.index.values())) == 1 else list(value)
        for n in entry.names:
            if n not in ns:  # a name rebound since the spill keeps its new value
                ns[n] = values[entry.index[n]]
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
#: Most objects walked to decide whether a set of values may spill.
MAX_WALK = 100_000
#: Values never walked into nor counted: immutable atoms, and things pickled by
#: reference (classes, functions, modules), which come back as the same object anyway.
_ATOMS = (int, float, complex, bool, str, bytes, type(None), range)
_BY_REFERENCE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
)
_SKIP = (*_ATOMS, *_BY_REFERENCE)
#: Immutable containers: walked into, but their own identity is not worth keeping.
_IMMUTABLE = (tuple, frozenset)


def spill_units(ns: dict[str, t.Any], names: t.Iterable[str]) -> list[list[list[str]]]:
    """Which stale *names* may spill, and together with what.

    Names bound to one object form a group; groups whose objects share parts
    (a module and the optimizer holding its parameters, a list and a tensor in it)
    form a unit that spills into one file and comes back as one, so identity
    between them survives. A unit spills only if nothing outside it holds any of
    its parts: no kept name, no output-cache entry, no outside container or view.
    Spilling such a value would free nothing and, worse, break identity.
    """
    counts = collections.Counter(map(id, ns.values()))  # no loop variable left holding a value
    groups: dict[int, list[str]] = {}
    for name in names:
        if name in ns:
            groups.setdefault(id(ns[name]), []).append(name)
    # every name bound to the object must be stale, else a kept name still holds it
    groups = {key: g for key, g in groups.items() if counts[key] == len(g)}
    reach = {key: _reachable(ns[g[0]]) for key, g in groups.items()}
    units = _connected(groups, reach)
    del reach  # it holds references that the check below must not see
    return [unit for unit in units if _self_contained(ns, unit)]


def _reachable(root: t.Any) -> dict[int, t.Any] | None:
    """The objects *root* holds (itself included), or None past MAX_WALK."""
    if _is_view(root):
        return None
    seen = {id(root): root}
    stack = [root]
    while stack:
        for ref in _referents(stack.pop()):
            # type(), not isinstance(): a hostile object may lie about __class__
            if id(ref) in seen or issubclass(type(ref), _SKIP):
                continue
            if _is_view(ref):
                return None  # pickling a numpy view copies it: it would lose its base
            seen[id(ref)] = ref
            if len(seen) > MAX_WALK:
                return None
            stack.append(ref)
    return seen


def _referents(obj: t.Any) -> list[t.Any]:
    """What *obj* holds: gc's view, plus a numpy view's base (invisible to gc).

    pandas objects are opaque: their blocks are views and caches of one another,
    which one pickle of the frame keeps as they are.
    """
    if (getattr(type(obj), "__module__", None) or "").startswith("pandas."):
        return []
    refs = gc.get_referents(obj)
    np = sys.modules.get("numpy")
    if np is not None and type(obj) is np.ndarray and obj.base is not None:
        refs.append(obj.base)
    return refs


def _is_view(obj: t.Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and type(obj) is np.ndarray and obj.base is not None


def _connected(
    groups: dict[int, list[str]], reach: dict[int, dict[int, t.Any] | None]
) -> list[list[list[str]]]:
    """Union the groups whose reachable objects overlap."""
    parent = {key: key for key in groups}

    def find(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    owner: dict[int, int] = {}
    for key, objs in reach.items():
        if objs is None:
            continue
        for oid in objs:
            other = owner.setdefault(oid, key)
            if other != key:
                parent[find(key)] = find(other)
    units: dict[int, list[list[str]]] = {}
    for key, group in groups.items():
        if reach[key] is not None:
            units.setdefault(find(key), []).append(group)
    return list(units.values())


def _self_contained(ns: dict[str, t.Any], unit: list[list[str]]) -> bool:
    """True when every reference to the unit's parts comes from the unit or its names."""
    walked = _walk_unit(ns, unit)
    if walked is None:
        return False
    seen, inrefs = walked
    del walked
    torch = sys.modules.get("torch")
    storages: dict[tuple[t.Any, ...], int] = {}
    for obj in seen.values():
        if issubclass(type(obj), _IMMUTABLE):
            continue
        # its references: those counted, plus `seen`'s, this loop variable's and the argument's
        if sys.getrefcount(obj) != inrefs.get(id(obj), 0) + 3:
            return False
        if torch is not None and issubclass(type(obj), torch.Tensor):
            key = _storage_key(obj)
            storages[key] = storages.get(key, 0) + 1
    return all(_storage_users(key) <= n for key, n in storages.items())


def _walk_unit(
    ns: dict[str, t.Any], unit: list[list[str]]
) -> tuple[dict[int, t.Any], dict[int, int]] | None:
    """The unit's objects, and how often each is referenced from within it (names included).
    A function of its own, so that no stray local keeps an extra reference."""
    seen: dict[int, t.Any] = {}
    inrefs: dict[int, int] = {}
    for group in unit:
        part = _reachable(ns[group[0]])
        if part is None:
            return None
        seen.update(part)
        inrefs[id(ns[group[0]])] = len(group)
    for obj in seen.values():
        for ref in _referents(obj):
            if id(ref) in seen:
                inrefs[id(ref)] = inrefs.get(id(ref), 0) + 1
    return seen, inrefs


def _storage_key(tensor: t.Any) -> tuple[t.Any, ...]:
    try:
        storage = tensor.untyped_storage()
        return (storage, str(tensor.device), storage.data_ptr())
    except Exception:  # sparse, meta, or a broken subclass: treat as unshared
        return (id(tensor),)


def _storage_users(key: tuple[t.Any, ...]) -> int:
    """How many tensors use a storage (beyond the handle in *key*); 0 when unknown."""
    torch = sys.modules.get("torch")
    use_count = getattr(getattr(torch, "_C", None), "_storage_Use_Count", None)
    if len(key) < 3 or use_count is None:
        return 0
    try:
        return int(use_count(key[0]._cdata)) - 1
    except Exception:
        return 0


# -- formats ---------------------------------------------------------------------------
def _writer_for(obj: t.Any) -> tuple[bytes, t.Callable[[t.Any, t.BinaryIO], None]]:
    torch = sys.modules.get("torch")
    kind = type(obj)
    parts = obj if kind is tuple else (obj,)
    if torch is not None and any(_is_torch(type(p), torch) for p in parts):
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
    """Read an ``np.save`` file into a fresh array that owns its memory.

    ``np.load`` may return a view of a bytes buffer, which would make the array
    look shared (and unspillable) afterwards; reading into ``np.empty`` does not.
    """
    np = _library("numpy")
    fmt = np.lib.format
    start = f.tell()
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        if array.nbytes:
            target = array.T if fortran else array
            if f.readinto(memoryview(target).cast("B")) != array.nbytes:
                raise SpillError("truncated spill file")
        return array
    except (ValueError, TypeError):  # a dtype the buffer protocol cannot express
        f.seek(start)
        array = np.load(f, allow_pickle=False)
        return array if array.base is None else array.copy()


_READERS = {"torch": _read_torch, "numpy": _read_numpy, "pickle": pickle.load}


def type_name(obj: t.Any) -> str:
    """``module.Qualname`` of a value's type (just ``Qualname`` for builtins and cells)."""
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"
