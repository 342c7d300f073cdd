"""Writing a notebook's checkpoints incrementally, and reading one back.

**Writing** (:meth:`Checkpoints.steps`, a generator: the caller runs it in slices
between cells and drops it when a cell starts):

1. Every name touched since the last checkpoint (the caller says which: the tracker's
   stamps), and every name of a group that had one, is pickled alone. A name that
   cannot be pickled is *unstorable*, with the reason.
2. Names whose streams share an object (pickle's memo, storages, array memory) join
   one group, with the names of untouched groups they meet: a group is one stream, so
   aliases come back as aliases. An untouched group is kept as it is.
3. The buffers of the new streams are hashed (XXH3-128; about 28 GB/s here) and only
   those whose digest has no blob yet are written. Then the streams, and last the
   manifest (atomically). A cell that changed nothing writes nothing.
4. Old checkpoints go, oldest first, while the notebook uses more than
   ``max_bytes``; the newest is kept. When even it does not fit, its largest groups are
   left out and named.

**Reading** (:meth:`Checkpoints.load`): each group's stream and blobs are checked
against their digests; a group that fails costs only its names, which are reported.
"""

from __future__ import annotations

import logging
import sys
import typing as t
from collections.abc import Iterator

from .blobs import BlobDir, digest_of
from .manifests import Manifest, load_manifests, manifest_name, prune
from .pickling import Buffer, Reader, dumps, map_blob

log = logging.getLogger(__name__)

__all__ = ["Checkpoints", "Resumed"]

#: Bytes hashed per slice.
HASH_SLICE = 256 << 20


class _Group:
    """A group as written: its names, its manifest entry, and (in this process only) the
    keys of what its stream shares."""

    __slots__ = ("entry", "keys", "names")

    def __init__(self, names: list[str], entry: dict[str, t.Any], keys: set[t.Any]) -> None:
        self.names = names
        self.entry = entry
        self.keys = keys


class _Pickled(t.NamedTuple):
    data: bytes
    buffers: list[Buffer]
    keys: set[t.Any]


class Resumed(t.NamedTuple):
    """What a resume read back."""

    manifest: Manifest
    values: dict[str, t.Any]
    failed: dict[str, str]  # name -> why it was not restored
    notes: list[str]


class Checkpoints:
    """One notebook's checkpoints in *store*; the writer's memory of the last one."""

    def __init__(self, store: BlobDir, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._groups: dict[str, _Group] = {}  # name -> its group, as last committed
        self._unstorable: dict[str, tuple[int, dict[str, t.Any]]] = {}  # name -> (id, entry)
        self._graphless: set[str] = set()  # names stored without their autograd graph
        self.written = 0  # bytes written by the last checkpoint
        self.last: Manifest | None = None
        manifests, problems = load_manifests(store)
        for line in problems:
            log.warning("greed: checkpoint skipped: %s", line)
        self._next = manifests[-1].number + 1 if manifests else 1
        store.sweep()

    def list(self) -> list[Manifest]:
        return load_manifests(self.store)[0]

    # -- writing -----------------------------------------------------------------------
    def steps(
        self,
        values: dict[str, t.Any],
        touched: set[str] | None,
        cell: int,
        *,
        imports: dict[str, str],
        history: dict[str, int],
        sources: dict[int, str],
    ) -> Iterator[None]:
        """Bring the checkpoint up to date with *values* (the user's storable names),
        yielding between slices. *touched*: the names touched since the last checkpoint
        this object committed (None: all). The result is :attr:`last`."""
        self.written = 0
        old = self._groups if touched is not None else {}
        dirty = {n for n in values if touched is None or n in touched or n not in old}
        for group in {id(g): g for g in old.values()}.values():
            if any(n in dirty or n not in values for n in group.names):
                dirty.update(n for n in group.names if n in values)
        pickled: dict[str, _Pickled] = {}
        graphless = {n for n in self._graphless if n in values and n not in dirty}
        unstorable: dict[str, tuple[int, dict[str, t.Any]]] = {}
        for name in sorted(dirty):
            value = values[name]
            known = self._unstorable.get(name)
            if known is not None and known[0] == id(value) and touched and name not in touched:
                unstorable[name] = known  # the same object failed last time
                continue
            try:
                data, writer = dumps(value)
                pickled[name] = _Pickled(data, writer.buffers, writer.shared)
                if writer.graphless:
                    graphless.add(name)
            except Exception as error:
                unstorable[name] = (id(value), _unstorable(name, error, history))
            yield
        self._unstorable, self._graphless = unstorable, graphless
        groups = self._join(values, pickled, old, dirty)
        yield
        written: list[_Group] = []
        for names, keep in groups:
            if keep is not None:
                written.append(keep)
                continue
            if len(names) == 1:
                one = pickled[names[0]]
            else:
                try:
                    data, writer = dumps({n: values[n] for n in names})
                except Exception as error:  # each pickled alone: a hostile object
                    for n in names:
                        unstorable[n] = (id(values[n]), _unstorable(n, error, history))
                    continue
                one = _Pickled(data, writer.buffers, writer.shared)
                yield
            entry = {"names": names, "buffers": []}
            yield from self._write_stream(entry, one)
            written.append(_Group(names, entry, one.keys))
        rng = yield from self._rng()
        left_out = self._fit(written)
        kept = [g for g in written if g is not None]
        body = {
            "groups": [g.entry for g in kept],
            "rng": rng,
            "imports": imports,
            "unstorable": [entry for _, entry in unstorable.values()],
            "graphless": sorted(graphless - set(unstorable)),
            "left_out": left_out,
            "history": {n: history[n] for n in values if n in history},
            "replay": {
                str(c): sources[c]
                for c in {u["cell"] for _, u in unstorable.values()}
                if c in sources
            },
        }
        if self.last is None or not _same(self.last.body, body):
            manifest = Manifest.new(self._next, cell, **body)
            blobs = manifest.blobs()
            manifest.body["bytes"] = sum(blobs.values())
            self.store.sync()
            self.store.put_manifest(manifest_name(self._next), manifest.encode())
            self._next += 1
            self.last = manifest
            prune(self.store, self.list(), self.max_bytes)
        self._groups = {n: g for g in kept for n in g.names}

    def _join(
        self,
        values: dict[str, t.Any],
        pickled: dict[str, _Pickled],
        old: dict[str, _Group],
        dirty: set[str],
    ) -> list[tuple[list[str], _Group | None]]:
        """The groups: names whose streams share keys, with the untouched groups they
        meet. (names, the old group to keep as it is, or None to pickle them anew)."""
        parent: dict[str, str] = {}

        def find(n: str) -> str:
            while parent.setdefault(n, n) != n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        owner: dict[t.Any, str] = {}
        clean = {
            id(g): g
            for g in old.values()
            if not any(n in dirty or n not in values for n in g.names)
        }
        sources = [(n, p.keys) for n, p in pickled.items()]
        sources += [(g.names[0], g.keys) for g in clean.values()]
        for g in clean.values():
            for n in g.names[1:]:
                parent[find(n)] = find(g.names[0])
        for name, keys in sources:
            find(name)
            for key in keys:
                other = owner.setdefault(key, name)
                if other != name:
                    parent[find(name)] = find(other)
        members: dict[str, list[str]] = {}
        for name in list(parent):
            members.setdefault(find(name), []).append(name)
        result: list[tuple[list[str], _Group | None]] = []
        for names in members.values():
            names.sort()
            first = old.get(names[0])
            if first is not None and id(first) in clean and sorted(first.names) == names:
                result.append((names, first))
            else:
                result.append((names, None))
        return result

    def _write_stream(self, entry: dict[str, t.Any], one: _Pickled) -> Iterator[None]:
        buffers: list[list[t.Any]] = []
        for buffer in one.buffers:
            digest = yield from _hash(buffer.data)
            size = len(buffer.data)
            if not self.store.has(digest, size):
                self.written += yield from self.store.put_steps(digest, buffer.data)
                yield
            while len(buffers) <= buffer.index:
                buffers.append(["", 0])
            buffers[buffer.index] = [digest, size]
        entry["buffers"] = buffers
        entry["stream"] = digest_of([one.data])
        entry["size"] = len(one.data)
        if not self.store.has(entry["stream"], entry["size"]):
            self.written += self.store.put(entry["stream"], [one.data])

    def _rng(self) -> t.Generator[None, None, dict[str, t.Any] | None]:
        states = random_states()
        if not states:
            return None
        data, _ = dumps(states)
        entry: dict[str, t.Any] = {"names": [], "buffers": []}
        yield from self._write_stream(entry, _Pickled(data, [], set()))
        return entry

    def _fit(self, groups: list[_Group | None]) -> list[dict[str, t.Any]]:
        """Leave out the largest groups while this checkpoint alone exceeds max_bytes."""
        left: list[dict[str, t.Any]] = []

        def size(g: _Group) -> int:
            return g.entry["size"] + sum(s for _, s in g.entry["buffers"])

        sizes = {i: size(g) for i, g in enumerate(groups) if g is not None}
        total = sum(sizes.values())
        for i in sorted(sizes, key=lambda i: -sizes[i]):
            if total <= self.max_bytes:
                break
            group = groups[i]
            assert group is not None
            total -= sizes[i]
            left.extend({"name": name, "bytes": sizes[i]} for name in group.names)
            groups[i] = None
        return left

    # -- reading -----------------------------------------------------------------------
    def load(self, manifest: Manifest, namespace: dict[str, t.Any]) -> Resumed:
        """Read *manifest*'s values back (not bound: the caller binds them). Functions
        defined in cells get *namespace* as their globals."""
        values: dict[str, t.Any] = {}
        failed: dict[str, str] = {}
        notes: list[str] = []
        builtins = namespace.get("__builtins__")
        try:
            for entry in manifest.groups:
                try:
                    loaded = self._load_stream(entry, namespace, notes)
                    if len(entry["names"]) == 1:
                        loaded = {entry["names"][0]: loaded}
                    values.update({n: loaded[n] for n in entry["names"]})
                except Exception as error:
                    why = f"{type(error).__name__}: {error}"
                    log.warning("greed: resume: %s: %s", ", ".join(entry["names"]), why)
                    failed.update(dict.fromkeys(entry["names"], why))
            rng = manifest.body.get("rng")
            if rng:
                try:
                    set_random_states(self._load_stream(rng, namespace, notes))
                except Exception as error:
                    notes.append(f"the random states were not restored ({error})")
        finally:
            if builtins is not None:  # cloudpickle sets a dict there
                namespace["__builtins__"] = builtins
        graphless = [n for n in manifest.body.get("graphless", ()) if n in values]
        if graphless:
            notes.append(
                "resumed without their autograd graph (now leaves; re-run their cells to "
                f"compute them again): {', '.join(graphless)}"
            )
        return Resumed(manifest, values, failed, notes)

    def _load_stream(
        self, entry: dict[str, t.Any], namespace: dict[str, t.Any], notes: list[str]
    ) -> t.Any:
        store = self.store
        data = store.read_blob(entry["stream"], entry["size"])
        buffers = entry["buffers"]
        for digest, size in buffers:
            if digest:
                store.verify(digest, size)

        def blob(index: int, nbytes: int) -> t.Any:
            digest, size = buffers[index]
            if nbytes < 0:  # a path, for torch to map (checked above)
                return store.blob_path(digest)
            return map_blob(store.open_blob(digest, size), size)

        return Reader(data, blob, namespace, notes).load()

    def forget(self) -> int:
        """Delete every checkpoint of the notebook; the bytes freed."""
        freed = sum(self.store.blob_sizes().values())
        for manifest in self.list():
            self.store.remove(manifest_name(manifest.number))
        prune(self.store, [], 0)
        self.store.discard_partial()
        self._groups = {}
        self.last = None
        return freed


def _unstorable(name: str, error: BaseException, history: dict[str, int]) -> dict[str, t.Any]:
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    return {"name": name, "reason": reason, "cell": history.get(name)}


def _hash(data: memoryview) -> t.Generator[None, None, str]:
    if len(data) <= HASH_SLICE:
        return digest_of([data])
    import xxhash

    h = xxhash.xxh3_128()
    for start in range(0, len(data), HASH_SLICE):
        h.update(data[start : start + HASH_SLICE])
        yield
    return h.hexdigest()


def _same(old: dict[str, t.Any], new: dict[str, t.Any]) -> bool:
    """The new checkpoint would hold what the last one holds."""
    return all(old.get(k) == v for k, v in new.items() if k != "history")


def random_states() -> dict[str, t.Any]:
    """The global random states of the modules the session imported."""
    states: dict[str, t.Any] = {}
    random = sys.modules.get("random")
    if random is not None:
        states["random"] = random.getstate()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        states["numpy"] = numpy_random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None:
        states["torch"] = torch.get_rng_state()
        if torch.cuda.is_initialized():
            states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, t.Any]) -> None:
    if "random" in states:
        import random

        random.setstate(states["random"])
    if "numpy" in states:
        import numpy.random

        numpy.random.set_state(states["numpy"])
    if "torch" in states:
        import torch

        torch.set_rng_state(states["torch"])
        cuda = states.get("torch.cuda")
        if cuda and torch.cuda.is_available() and len(cuda) <= torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
