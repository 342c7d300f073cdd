"""A blob written a step at a time (BlobDir.put_steps, for checkpoints in slices): each
step writes at most STEP_BYTES, and a write dropped between two steps goes on where it
stopped, so that a big blob is not started over at every cell."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from greed_kernel.session import blobs
from greed_kernel.session.blobs import BlobDir, digest_of

STEP = 1 << 16


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobDir:
    monkeypatch.setattr(blobs, "STEP_BYTES", STEP)
    return BlobDir(str(tmp_path), "k", create=True)


def data(n: int, seed: int = 7) -> memoryview:
    return memoryview(bytes((i * seed + i // 251) % 256 for i in range(n)))


def steps_of(store: BlobDir, digest: str, view: memoryview, drop_after: int | None = None) -> int:
    """Run put_steps; drop it after *drop_after* steps. The bytes written (or -1: dropped)."""
    steps = store.put_steps(digest, view)
    taken = 0
    try:
        while True:
            next(steps)
            taken += 1
            if taken == drop_after:
                steps.close()
                return -1
    except StopIteration as done:
        return int(done.value)


def temporaries(store: BlobDir) -> list[str]:
    return [n for n in os.listdir(store.blobs_fd) if n.startswith(".tmp-")]


def test_a_blob_is_written_a_step_at_a_time_and_is_private(store: BlobDir) -> None:
    view = data(5 * STEP + 100)
    digest = digest_of([view])
    yields = 0
    for _ in store.put_steps(digest, view):
        yields += 1
    assert yields == 5  # six writes, a yield between two
    path = Path(store.path, blobs.BLOBS, digest)
    assert path.read_bytes() == view.tobytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert temporaries(store) == []
    assert steps_of(store, digest, view) == 0  # there already


def test_a_dropped_write_goes_on_where_it_stopped(store: BlobDir) -> None:
    view = data(4 * STEP)
    digest = digest_of([view])
    assert steps_of(store, digest, view, drop_after=2) == -1  # two steps written
    assert len(temporaries(store)) == 1
    assert steps_of(store, digest, view) == 2 * STEP  # only the rest
    assert Path(store.path, blobs.BLOBS, digest).read_bytes() == view.tobytes()
    assert temporaries(store) == []


def test_another_blob_discards_the_dropped_part(store: BlobDir) -> None:
    first, second = data(4 * STEP), data(3 * STEP, seed=11)
    assert steps_of(store, digest_of([first]), first, drop_after=1) == -1
    assert steps_of(store, digest_of([second]), second) == 3 * STEP
    assert temporaries(store) == []
    store.close()


def test_forget_and_close_remove_a_dropped_part(store: BlobDir) -> None:
    view = data(4 * STEP)
    assert steps_of(store, digest_of([view]), view, drop_after=1) == -1
    store.discard_partial()
    assert temporaries(store) == []
    assert steps_of(store, digest_of([view]), view, drop_after=1) == -1
    path = Path(store.path, blobs.BLOBS)
    store.close()
    assert [n for n in os.listdir(path) if n.startswith(".tmp-")] == []
