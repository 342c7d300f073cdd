"""Spill and restore round trips, what may spill, and the spill directory's rules."""

from __future__ import annotations

import os
import stat
import threading

import numpy as np
import pytest
import torch

from greed_kernel.spill import SpillError, SpillStore, remove_orphans, spill_units

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path):
    s = SpillStore(tmp_path / "spill", max_bytes=1 << 30)
    yield s
    s.clear()


def spill_all(store, ns, names):
    units = spill_units(ns, names)
    for unit in units:
        store.spill(ns, unit, execution=1)
    return units


def test_tensor_round_trip_is_exact(store):
    t = torch.randn(300, 300, dtype=torch.float64)
    ns = {"t": t.clone()}
    spill_all(store, ns, ["t"])
    assert "t" not in ns and "t" in store.by_name
    store.restore(ns, "t")
    assert torch.equal(ns["t"], t) and ns["t"].dtype == torch.float64
    assert not store.by_name and not list(store.directory.iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensor_returns_to_its_device(store):
    ns = {"g": torch.randn(1000, device="cuda")}
    ref = ns["g"].cpu()
    spill_all(store, ns, ["g"])
    store.restore(ns, "g")
    assert ns["g"].device.type == "cuda" and torch.equal(ns["g"].cpu(), ref)


def _train(net, opt, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 8, generator=gen)
        loss = net(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _net_and_opt():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    return net, torch.optim.Adam(net.parameters(), lr=0.01)


def test_module_with_optimizer_spills_together_and_trains_bit_identically(store):
    net, opt = _net_and_opt()
    _train(net, opt, 3)
    expected = _train(net, opt, 5, seed=1)

    net, opt = _net_and_opt()
    _train(net, opt, 3)
    ns = {"net": net, "opt": opt}
    del net, opt
    units = spill_all(store, ns, ["net", "opt"])
    assert units == [[["net"], ["opt"]]], "model and optimizer must form one unit"
    store.restore(ns, "net")  # restoring one name brings the whole unit back
    assert {"net", "opt"} <= set(ns)
    got = _train(ns["net"], ns["opt"], 5, seed=1)
    assert got == expected


def test_numpy_array_round_trip(store):
    a = np.arange(100_000, dtype=np.int32).reshape(100, 1000)
    ns = {"a": a.copy()}
    spill_all(store, ns, ["a"])
    store.restore(ns, "a")
    assert np.array_equal(ns["a"], a) and ns["a"].dtype == np.int32


def test_pandas_frame_round_trip(store):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": np.arange(1000), "y": np.linspace(0, 1, 1000)})
    ns = {"df": df.copy()}
    spill_all(store, ns, ["df"])
    store.restore(ns, "df")
    pd.testing.assert_frame_equal(ns["df"], df)


def test_aliases_spill_together_and_come_back_as_one_object(store):
    ns = {"a": torch.ones(10)}
    ns["b"] = ns["a"]
    spill_all(store, ns, ["a", "b"])
    assert "a" not in ns and "b" not in ns
    store.restore(ns, "b")
    assert ns["a"] is ns["b"]


def test_list_of_tensors(store):
    ns = {"L": [torch.ones(5), torch.zeros(5), 3, "x"]}
    spill_all(store, ns, ["L"])
    store.restore(ns, "L")
    assert torch.equal(ns["L"][0], torch.ones(5)) and ns["L"][2:] == [3, "x"]


def test_values_held_by_something_kept_do_not_spill():
    kept = torch.nn.Linear(4, 4)
    ns = {
        "model": kept,
        "opt": torch.optim.SGD(kept.parameters(), lr=0.1),  # holds the kept model's params
        "w": kept.weight,  # a parameter of a kept module
        "base": torch.zeros(10),
    }
    ns["view"] = ns["base"][:5]  # shares base's storage
    arr = np.zeros(10)
    ns["arr"], ns["arr_view"] = arr, arr[:3]
    ns["in_list"] = torch.ones(3)
    ns["holder"] = [ns["in_list"]]  # kept: holds in_list
    del arr
    stale = ["opt", "w", "base", "view", "arr", "arr_view", "in_list"]
    assert spill_units(ns, stale) == []


def test_unpicklable_value_stays_in_memory(store):
    ns = {"lock": {"l": threading.Lock()}}
    (unit,) = spill_units(ns, ["lock"])
    with pytest.raises(SpillError):
        store.spill(ns, unit, execution=1)
    assert "lock" in ns and not list(store.directory.iterdir())


def test_disk_budget_is_respected(tmp_path):
    store = SpillStore(tmp_path / "s", max_bytes=1 << 20)  # 1 MiB
    ns = {"big": torch.zeros(1 << 19)}  # 2 MiB
    (unit,) = spill_units(ns, ["big"])
    with pytest.raises(SpillError, match="budget"):
        store.spill(ns, unit, execution=1)
    assert "big" in ns


def test_directory_and_files_are_private(store):
    ns = {"t": torch.ones(10)}
    spill_all(store, ns, ["t"])
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    (path,) = store.directory.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_files_written_by_this_kernel_are_loaded(store, tmp_path):
    ns = {"t": torch.ones(10)}
    spill_all(store, ns, ["t"])
    other = SpillStore(tmp_path / "other")
    other.by_name = store.by_name  # pretend another kernel found our table
    with pytest.raises(SpillError, match="not written by this kernel"):
        other.restore({}, "t")


def test_clear_removes_everything(store):
    ns = {"t": torch.ones(10), "u": np.ones(10)}
    spill_all(store, ns, ["t", "u"])
    store.clear()
    assert not store.directory.exists()


def test_remove_orphans_only_removes_dead_kernels(tmp_path):
    mine = tmp_path / f"{os.getpid()}-abcd"
    dead = tmp_path / "999999999-abcd"
    other = tmp_path / "not-a-pid"
    for d in (mine, dead, other):
        d.mkdir()
    remove_orphans(tmp_path)
    assert mine.exists() and other.exists() and not dead.exists()
