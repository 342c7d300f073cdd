"""Generated sessions against the checkpoint writer and reader (session/checkpoints.py):
random cells that make, alias, nest, view, mutate and delete values, with a checkpoint
now and then, each one told only the names the cell touched (as the tracker tells it).
After every checkpoint a fresh load must equal the live namespace: every value, every
identity between names (``a is b``), and every memory shared between arrays."""

from __future__ import annotations

import tempfile
import typing as t

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greed_kernel.session.blobs import BlobDir
from greed_kernel.session.checkpoints import Checkpoints

torch = pytest.importorskip("torch")

OPS = ("list", "array", "tensor", "alias", "nest", "view", "mutate", "delete", "checkpoint")
cells = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(0, 7), st.integers(0, 7), st.integers(1, 3)),
    min_size=1,
    max_size=14,
)


def same(a: t.Any, b: t.Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


def shares(a: t.Any, b: t.Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.shares_memory(a, b))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    return False


def cell(ns: dict[str, t.Any], op: str, i: int, j: int, size: int) -> set[str]:
    """Run one generated cell on *ns*; the names it touched."""
    names = sorted(ns)
    name, other = f"v{i}", names[j % len(names)] if names else None
    n = 10_000 * size  # 80-240 KiB of float64: buffers out of band
    if op == "list":
        ns[name] = list(range(i, i + 3 * size))
    elif op == "array":
        ns[name] = np.arange(float(n)) * j
    elif op == "tensor":
        ns[name] = torch.arange(float(n)) * j
    elif other is None or op == "checkpoint":
        return set()
    elif op == "alias":
        ns[name] = ns[other]
    elif op == "nest":
        ns[name] = {"k": ns[other], "n": [ns[other], size]}
    elif op == "view" and isinstance(ns[other], (np.ndarray, torch.Tensor)):
        ns[name] = ns[other][size:]
    elif op == "mutate":
        value = ns[other]
        if isinstance(value, list):
            value.append(size)
        elif isinstance(value, dict):
            value["n"].append(size)
        elif isinstance(value, np.ndarray):
            value += size
        elif isinstance(value, torch.Tensor):
            value.add_(size)
        return {other}
    elif op == "delete":
        del ns[other]
        return {other}
    else:
        return set()
    return {name, other} if other is not None and op != "list" else {name}


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cells=cells)
def test_every_checkpoint_loads_as_the_live_namespace(cells: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as root:
        ck = Checkpoints(BlobDir(root, "k", create=True), 1 << 40)
        ns: dict[str, t.Any] = {}
        touched: set[str] | None = None  # the first checkpoint writes everything
        for number, (op, i, j, size) in enumerate([*cells, ("checkpoint", 0, 0, 1)], 1):
            if op != "checkpoint":
                touched = None if touched is None else touched | cell(ns, op, i, j, size)
                if touched is None:
                    cell(ns, op, i, j, size)
                continue
            steps = ck.steps(ns, touched, number, imports={}, history={}, sources={})
            for _ in steps:
                pass
            touched = set()
            listed = ck.list()
            if not listed:
                assert not ns
                continue
            got = ck.load(listed[-1], {"__name__": "__main__"})
            assert not got.failed
            values = got.values
            assert sorted(values) == sorted(ns)
            for a in ns:
                assert same(ns[a], values[a]), a
                for b in ns:
                    assert (ns[a] is ns[b]) == (values[a] is values[b]), (a, b)
                    assert shares(ns[a], ns[b]) == shares(values[a], values[b]), (a, b)
