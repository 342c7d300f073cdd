"""The checkpoint writer and reader (session/checkpoints.py) on a real directory:
incremental writes, aliases, the disk bound, kills at any moment, private files."""

from __future__ import annotations

import os
import random
import signal
import stat
import time
import typing as t
from pathlib import Path

import numpy as np
import pytest

from greed_kernel.session.blobs import BlobDir, Refused
from greed_kernel.session.checkpoints import Checkpoints
from greed_kernel.session.manifests import latest

torch = pytest.importorskip("torch")
MiB = 1 << 20


def store(root: Path, key: str = "k", create: bool = True) -> BlobDir:
    return BlobDir(str(root), key, create=create)


def write(
    ck: Checkpoints, values: dict[str, t.Any], touched: set[str] | None, cell: int = 1
) -> None:
    for _ in ck.steps(values, touched, cell, imports={}, history={}, sources={}):
        pass


def load(ck: Checkpoints) -> dict[str, t.Any]:
    manifest = ck.list()[-1]
    resumed = ck.load(manifest, {"__name__": "__main__"})
    assert not resumed.failed
    return resumed.values


def test_a_cell_that_changed_nothing_writes_nothing(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    values = {"w": torch.randn(MiB), "lossi": [0.5] * 1000, "a": np.ones(200_000)}
    write(ck, values, None)
    assert ck.written > 5 * MiB
    write(ck, values, set(), cell=2)
    assert ck.written == 0
    write(ck, values, {"lossi"}, cell=3)  # read, not changed: the same bytes
    assert ck.written == 0
    values["lossi"].append(0.25)
    write(ck, values, {"lossi"}, cell=4)
    assert 0 < ck.written < 64 << 10  # the list's stream, not the buffers
    values["w"].data += 1  # through .data: the version counter does not move
    write(ck, values, {"w"}, cell=5)
    assert ck.written >= 4 * MiB
    assert torch.equal(load(ck)["w"], values["w"])


def test_aliases_come_back_as_aliases(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    model = torch.nn.Linear(300, 300)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    base = np.arange(100_000.0)
    values = {"model": model, "opt": opt, "base": base, "view": base[10:], "same": base}
    write(ck, values, None)
    write(ck, {**values, "w": model.weight}, {"w"}, cell=2)  # a new name meets a kept group
    got = load(ck)
    assert got["opt"].param_groups[0]["params"][0] is got["model"].weight is got["w"]
    assert got["same"] is got["base"] and np.shares_memory(got["view"], got["base"])


def test_a_name_of_a_group_that_becomes_unstorable_leaves_the_group(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    shared = [1, 2]
    values = {"a": {"k": shared}, "b": shared}
    write(ck, values, None)
    values["b"] = (i for i in range(2))  # cannot be stored
    write(ck, values, {"b"}, cell=2)
    body = ck.list()[-1].body
    assert [u["name"] for u in body["unstorable"]] == ["b"]
    assert load(ck) == {"a": {"k": [1, 2]}}


def test_the_disk_bound_keeps_the_latest_and_names_what_did_not_fit(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 6 * MiB)
    for cell in range(1, 5):
        write(ck, {"t": torch.full((MiB,), float(cell))}, None, cell)  # 4 MiB each
        ck._groups = {}  # as a new kernel would
    kept = ck.list()
    assert [m.body["cell"] for m in kept] == [4]
    assert sum(f.stat().st_size for f in (tmp_path / "k" / "blobs").iterdir()) <= 6 * MiB
    write(ck, {"t": torch.zeros(2 * MiB), "small": 1}, None, 5)  # 8 MiB does not fit
    last = ck.list()[-1]
    assert last.body["left_out"] == [{"name": "t", "bytes": pytest.approx(8 * MiB, rel=0.01)}]
    assert load(ck) == {"small": 1}


def test_what_cannot_be_pickled_is_named(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    x = torch.ones(3, requires_grad=True)
    with open(tmp_path / "f", "w") as f:
        values = {"gen": (i for i in range(3)), "y": [x * 2], "f": f, "ok": 1}
        for _ in ck.steps(values, None, 7, imports={}, history={"gen": 3}, sources={3: "g"}):
            pass
    body = ck.last.body  # type: ignore[union-attr]
    reasons = {u["name"]: u["reason"] for u in body["unstorable"]}
    assert set(reasons) == {"gen", "f"}
    assert "open file" in reasons["f"]
    assert body["replay"] == {"3": "g"}
    assert body["graphless"] == ["y"]
    got = load(ck)
    assert set(got) == {"ok", "y"} and got["ok"] == 1


def test_a_tensor_computed_with_autograd_comes_back_a_leaf_with_a_note(tmp_path: Path) -> None:
    """Its value and requires_grad, as torch.save stores it; views stay views."""
    ck = Checkpoints(store(tmp_path), 1 << 40)
    w = torch.arange(6.0, requires_grad=True)
    y, head = w * 2, w[:3]  # computed; a view of w, also computed (SelectBackward)
    kept = w * 3
    kept.retain_grad()
    kept.sum().backward()
    values = {"w": w, "y": y, "head": head, "kept": kept, "plain": torch.ones(2)}
    write(ck, values, None)
    assert ck.last is not None and ck.last.body["graphless"] == ["head", "kept", "y"]
    resumed = ck.load(ck.list()[-1], {"__name__": "__main__"})
    got = resumed.values
    for name in ("y", "head", "kept"):
        assert torch.equal(got[name], values[name])
        assert got[name].is_leaf and got[name].grad_fn is None and got[name].requires_grad
    assert torch.equal(got["kept"].grad, kept.grad)  # a retained gradient is stored
    assert got["head"].untyped_storage().data_ptr() == got["w"].untyped_storage().data_ptr()
    assert torch.equal(got["w"].grad, w.grad)
    (note,) = resumed.notes
    assert "without their autograd graph" in note and note.endswith("head, kept, y")
    write(ck, values, {"plain"}, cell=2)  # untouched names keep their note
    assert ck.last.body["graphless"] == ["head", "kept", "y"]


def test_files_are_private(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path / "root"), 1 << 40)
    write(ck, {"t": torch.ones(MiB)}, None)
    for path in [tmp_path / "root", *(tmp_path / "root").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


@pytest.mark.parametrize("how", ["group", "owner"])
def test_a_directory_others_control_is_refused(tmp_path: Path, how: str) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    write(ck, {"x": 1}, None)
    ck.store.close()
    if how == "group":
        (tmp_path / "k" / "blobs").chmod(0o770)
    elif os.getuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    else:
        os.chown(tmp_path / "k", 65534, 65534)
    with pytest.raises(Refused, match=r"group or others may write it|not by this user"):
        store(tmp_path, create=False)


def _checkpoint_forever(root: Path, ready: int) -> None:
    ck = Checkpoints(store(root), 1 << 40)
    os.write(ready, b"x")
    state = 0
    while True:
        state += 1
        values = {f"t{i}": torch.full((64 << 10,), float(state)) for i in range(4)}
        values["n"] = state
        write(ck, values, None, state)


def test_a_kill_at_any_moment_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(7)
    for attempt in range(20):
        read, ready = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child checkpoints until killed
            try:
                _checkpoint_forever(tmp_path, ready)
            finally:
                os._exit(1)
        os.read(read, 1)
        os.close(read)
        os.close(ready)
        time.sleep(rng.random() * 0.2)  # a random moment of its work, not a wait for it
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        ck = Checkpoints(store(tmp_path), 1 << 40)  # as the next kernel opens it
        manifest = latest(ck.store)
        if manifest is None:
            continue  # killed before the first was whole
        got = ck.load(manifest, {"__name__": "__main__"})
        assert not got.failed, attempt
        n = got.values["n"]
        assert all(
            torch.equal(got.values[f"t{i}"], torch.full((64 << 10,), float(n))) for i in range(4)
        )
        ck.store.close()


def test_a_gpu_tensor_without_its_gpu_comes_back_on_the_cpu_with_a_note() -> None:
    from greed_kernel.session.pickling import Reader

    notes: list[str] = []
    reader = Reader(b"", lambda index, nbytes: None, {}, notes)
    storage = torch.ones(4).untyped_storage()
    back = reader._on_device(torch, storage, "cuda:7")
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert back is storage and notes == [
        "a tensor stored on cuda:7 was resumed on the CPU (no cuda:7 here)"
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU half needs a GPU")
def test_a_gpu_tensor_comes_back_on_its_gpu(tmp_path: Path) -> None:
    ck = Checkpoints(store(tmp_path), 1 << 40)
    x = torch.arange(100_000.0, device="cuda")
    write(ck, {"x": x, "view": x[5:]}, None)
    got = load(ck)
    assert got["x"].device == x.device and torch.equal(got["x"], x)
    assert got["view"].untyped_storage().data_ptr() == got["x"].untyped_storage().data_ptr()


@pytest.mark.usefixtures("runner_threads_ignored")
def test_resumed_memory_written_since_can_be_paged(tmp_path: Path) -> None:
    """A resumed tensor maps its blob privately: untouched, its pages are file memory
    (paging them would free nothing); once written, they are anonymous copies inside
    the file mapping, which the pager pages in place like any other."""
    from greed_kernel.memory import procmaps, sizes
    from greed_kernel.memory.paging import Pager

    ck = Checkpoints(store(tmp_path / "ck"), 1 << 40)
    write(ck, {"w": torch.arange(4 * MiB, dtype=torch.float32)}, None)
    w = load(ck)["w"]
    [(ptr, nbytes, owner)] = sizes.owned_buffers(w)
    assert owner is not None, "a resumed storage has no owner: the budget cannot page it"
    pager = Pager(str(tmp_path / "paging"))
    try:
        untouched = pager.page_out([(ptr, nbytes, owner)])
        assert untouched.bytes == 0 and "resumed, not written since (file memory)" in (
            untouched.skipped
        )
        w[:MiB] += 1  # 4 MiB of the 16 written: anonymous copies
        expected = w.clone()
        assert procmaps.anonymous_pages(ptr, ptr + nbytes) >= MiB * 4 // procmaps.PAGE
        paged = pager.page_out([(ptr, nbytes, owner)])
        assert paged.bytes == nbytes, paged
        assert procmaps.anonymous_pages(ptr, ptr + nbytes) == 0
        assert torch.equal(w, expected)
        w[-1] = -1.0  # still a private copy-on-write mapping: written as before
        assert w[-1].item() == -1.0 and torch.equal(w[:-1], expected[:-1])
    finally:
        del w, owner
        pager.close()


def test_a_resumed_array_written_since_can_be_paged(tmp_path: Path) -> None:
    """A resumed array's memory is a private mmap of its blob (its ``base``): the mmap
    is its owner, and what is written since the resume is paged in place."""
    from greed_kernel.memory import procmaps, sizes
    from greed_kernel.memory.paging import Pager

    ck = Checkpoints(store(tmp_path / "ck"), 1 << 40)
    write(ck, {"a": np.arange(2 * MiB, dtype="f8")}, None)
    a = load(ck)["a"]
    [(ptr, nbytes, owner)] = sizes.owned_buffers(a)
    assert owner is not None, "a resumed array has no owner: the budget cannot page it"
    pager = Pager(str(tmp_path / "paging"))
    try:
        untouched = pager.page_out([(ptr, nbytes, owner)])
        assert untouched.bytes == 0 and "resumed, not written since (file memory)" in (
            untouched.skipped
        )
        a[: MiB // 2] += 1  # 4 MiB of the 16 written: anonymous copies
        expected = a.copy()
        paged = pager.page_out([(ptr, nbytes, owner)])
        assert paged.bytes == nbytes, paged
        assert procmaps.anonymous_pages(ptr, ptr + nbytes) == 0
        assert np.array_equal(a, expected)
        a[-1] = -1.0
        assert a[-1] == -1.0 and np.array_equal(a[:-1], expected[:-1])
    finally:
        del a, owner
        pager.close()
