"""A checkpoint's manifest: what it holds, and where its bytes are.

A manifest is one JSON file, ``checkpoint-<id>.json`` (ids count up per notebook), with
a checksum over its body: a checkpoint exists once its manifest does, whole. It names:

* ``groups``: one pickle stream per group of names that share objects, each with the
  blobs of its big buffers (``[digest, size]`` by the stream's buffer index);
* ``rng``: the stream of the global random states (``random``, numpy's, torch's);
* ``imports``: names bound to modules, imported again on resume;
* ``unstorable``: what could not be stored, with the reason and the cell that last
  touched it; ``replay``: those cells' sources (``%greed resume --replay``);
* ``left_out``: what did not fit ``checkpoint_max_bytes``.
"""

from __future__ import annotations

import json
import re
import time
import typing as t

import xxhash

from .blobs import BlobDir, Refused

__all__ = ["FORMAT", "Manifest", "latest", "load_manifests", "manifest_name", "prune"]

FORMAT = 1
#: The most bytes of a manifest that are read.
MAX_MANIFEST = 64 << 20
_NAME = re.compile(r"checkpoint-([0-9]{1,12})\.json")


def manifest_name(number: int) -> str:
    return f"checkpoint-{number:06d}.json"


class Manifest:
    """A checkpoint, as its manifest says (``body`` is the JSON object)."""

    def __init__(self, body: dict[str, t.Any]) -> None:
        self.body = body

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def number(self) -> int:
        return int(self.body["id"])

    @property
    def groups(self) -> list[dict[str, t.Any]]:
        return self.body["groups"]

    def blobs(self) -> dict[str, int]:
        """Every blob it names, with its size."""
        found: dict[str, int] = {}
        streams = [*self.groups, *([self.body["rng"]] if self.body.get("rng") else [])]
        for group in streams:
            found[group["stream"]] = group["size"]
            for digest, size in group["buffers"]:
                found[digest] = size
        return found

    def summary(self) -> dict[str, t.Any]:
        """What ``%greed checkpoints``, the comm and ``hello`` say of it."""
        b = self.body
        return {
            "id": self.id,
            "time": b["time"],
            "cell": b["cell"],
            "bytes": b["bytes"],
            "names": sum(len(g["names"]) for g in b["groups"]) + len(b["imports"]),
            "unstorable": [u["name"] for u in b["unstorable"]],
            "leftOut": [u["name"] for u in b["left_out"]],
        }

    def encode(self) -> bytes:
        body = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        check = xxhash.xxh3_128_hexdigest(body.encode())
        return json.dumps({"format": FORMAT, "check": check, "body": json.loads(body)}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Raises ValueError for a manifest that is not whole or not ours."""
        outer = json.loads(data)
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise ValueError("not a manifest of this version")
        body = outer.get("body")
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if outer.get("check") != xxhash.xxh3_128_hexdigest(text.encode()):
            raise ValueError("its checksum does not match")
        manifest = cls(body)
        manifest.blobs()  # the shape is right
        for key in ("time", "cell", "bytes", "imports", "unstorable", "left_out"):
            body[key]
        return manifest

    @staticmethod
    def new(number: int, cell: int, **fields: t.Any) -> Manifest:
        return Manifest({"id": number, "time": time.time(), "cell": cell, **fields})


def load_manifests(store: BlobDir) -> tuple[list[Manifest], list[str]]:
    """The notebook's complete checkpoints, oldest first, and a line for each manifest
    that could not be read."""
    found, problems = [], []
    for name in store.names():
        match = _NAME.fullmatch(name)
        if not match:
            continue
        try:
            manifest = Manifest.decode(store.read_manifest(name, MAX_MANIFEST))
            if manifest.number != int(match.group(1)):
                raise ValueError("its id does not match its name")
            found.append(manifest)
        except (OSError, Refused, ValueError, KeyError, TypeError) as error:
            problems.append(f"{name}: {error}")
    found.sort(key=lambda m: m.number)
    return found, problems


def latest(store: BlobDir) -> Manifest | None:
    manifests, _ = load_manifests(store)
    return manifests[-1] if manifests else None


def prune(store: BlobDir, manifests: list[Manifest], max_bytes: int) -> list[Manifest]:
    """Delete the oldest checkpoints until those left fit *max_bytes* (the latest is
    always kept), then the blobs no checkpoint names; the checkpoints left."""
    kept = list(manifests)

    def total(ms: list[Manifest]) -> int:
        blobs: dict[str, int] = {}
        for m in ms:
            blobs.update(m.blobs())
        return sum(blobs.values())

    while len(kept) > 1 and total(kept) > max_bytes:
        oldest = kept.pop(0)
        store.remove(manifest_name(oldest.number))
    named: set[str] = set()
    for m in kept:
        named.update(m.blobs())
    for digest in store.blob_sizes():
        if digest not in named:
            store.remove_blob(digest)
    return kept
