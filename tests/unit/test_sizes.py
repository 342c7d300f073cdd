"""greed_kernel.memory.sizes: measuring user values cheaply, honestly, and without ever raising."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from greed_kernel.memory import sizes
from greed_kernel.memory.sizes import MAX_ITEMS, Size, human_bytes, measure

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


# -- torch ---------------------------------------------------------------------------


def test_tensor_is_measured_by_its_storage() -> None:
    t = torch.zeros(1000, dtype=torch.float32)
    assert measure(t) == Size(4000, "cpu")
    # A view is as big as the storage it keeps alive, not as its own elements.
    assert measure(t[:10]).nbytes == 4000


def test_shared_storage_is_counted_once() -> None:
    base = torch.zeros(256, 256)
    view = base[10:20].t()
    seen: set[int] = set()
    assert measure(base, seen=seen).nbytes == 256 * 256 * 4
    second = measure(view, seen=seen)
    assert second.nbytes == 0
    assert second.device == "cpu"  # the device is still reported


def test_parameter_is_a_tensor() -> None:
    p = torch.nn.Parameter(torch.zeros(10, 10))
    assert measure(p) == Size(400, "cpu")


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_odd_tensors_do_not_raise() -> None:
    assert measure(torch.empty(0)).nbytes == 0
    assert measure(torch.empty(1000, device="meta")) == Size(0, "meta")
    indices = torch.tensor([[0, 5, 9]])
    values = torch.tensor([1.0, 2.0, 3.0])
    sparse = torch.sparse_coo_tensor(indices, values, (1_000_000,), check_invariants=True)
    # Indices and values, not a million dense elements.
    assert measure(sparse).nbytes == 3 * 8 + 3 * 4
    csr = torch.eye(100).to_sparse_csr()
    assert 0 < measure(csr).nbytes < 100 * 100 * 4
    assert measure(torch.zeros(3, dtype=torch.complex64)).nbytes == 24


def test_module_counts_parameters_gradients_and_buffers() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.BatchNorm1d(20))
    params = sum(p.numel() * 4 for p in model.parameters())
    # BatchNorm: running_mean, running_var (float32), num_batches_tracked (int64).
    buffers = 20 * 4 * 2 + 8
    assert measure(model) == Size(params + buffers, "cpu")
    model(torch.randn(4, 10)).sum().backward()
    assert measure(model).nbytes == 2 * params + buffers


def test_module_device_and_dedup_with_its_tensors() -> None:
    empty = torch.nn.ReLU()
    assert measure(empty) == Size(0, "cpu")
    model = torch.nn.Linear(4, 4)
    seen: set[int] = set()
    assert measure(model.weight, seen=seen).nbytes == 64
    # Tied or separately named weights are not counted twice.
    assert measure(model, seen=seen).nbytes == 16
    assert measure({"model": model, "again": model}).nbytes > 0


def test_optimizer_counts_its_state_once() -> None:
    model = torch.nn.Linear(100, 10)
    opt = torch.optim.Adam(model.parameters())
    assert measure(opt).nbytes == 0  # no state before the first step
    model(torch.randn(8, 100)).sum().backward()
    opt.step()
    params = sum(p.numel() * 4 for p in model.parameters())
    state = measure(opt)
    # exp_avg and exp_avg_sq per parameter, plus small `step` tensors.
    assert 2 * params <= state.nbytes <= 2 * params + 64
    assert state.device == "cpu"
    seen: set[int] = set()
    measure(opt, seen=seen)
    assert measure(opt, seen=seen).nbytes == 0


def test_sgd_momentum_state() -> None:
    model = torch.nn.Linear(50, 50)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 50)).sum().backward()
    opt.step()
    params = sum(p.numel() * 4 for p in model.parameters())
    assert measure(opt).nbytes == params


def test_list_of_tensors_sums_and_dedups() -> None:
    a = torch.zeros(100)
    b = torch.zeros(200, dtype=torch.float64)
    shallow = sys.getsizeof([a, b, a[5:]])
    size = measure([a, b, a[5:]])
    assert size == Size(shallow + 400 + 1600, "cpu")


def test_container_device_is_mixed_or_none() -> None:
    a = torch.zeros(1)
    meta = torch.zeros(1, device="meta")
    assert measure([a, a]).device == "cpu"
    assert measure([a, meta]).device == "mixed"
    assert measure([1, "x", np.zeros(3)]).device is None


# -- numpy and pandas ----------------------------------------------------------------


def test_numpy_view_is_counted_by_its_base() -> None:
    base = np.zeros(1000)
    view = base[100:200]
    assert measure(view).nbytes == base.nbytes
    assert measure(view[::2]).nbytes == base.nbytes  # a view of a view
    seen: set[int] = set()
    assert measure(view, seen=seen).nbytes == 8000
    assert measure(base, seen=seen).nbytes == 0
    assert measure(base, seen=seen).device is None


def test_numpy_and_torch_sharing_memory_count_once() -> None:
    arr = np.zeros(1000, dtype=np.float32)
    seen: set[int] = set()
    assert measure(arr, seen=seen).nbytes == 4000
    assert measure(torch.from_numpy(arr), seen=seen).nbytes == 0
    t = torch.zeros(500)
    seen = set()
    assert measure(t, seen=seen).nbytes == 2000
    assert measure(t.numpy(), seen=seen).nbytes == 0
    assert measure(t.numpy()) == Size(2000, None)


def test_dict_of_arrays() -> None:
    data = {"x": np.zeros(100), "y": np.zeros(50, dtype=np.int32)}
    keys = sum(sys.getsizeof(k) for k in data)
    assert measure(data) == Size(sys.getsizeof(data) + keys + 800 + 200, None)


def test_pandas_objects() -> None:
    df = pd.DataFrame({"a": np.zeros(1000), "b": np.arange(1000)})
    assert measure(df).nbytes == int(df.memory_usage(index=True, deep=False).sum())
    s = df["a"]
    assert measure(s).nbytes == s.memory_usage(index=True, deep=False)
    idx = pd.Index(np.arange(100))
    assert measure(idx).nbytes == idx.memory_usage(deep=False) == 800


# -- plain Python --------------------------------------------------------------------


def test_str_and_bytes() -> None:
    assert measure("x" * 1000) == Size(sys.getsizeof("x" * 1000), None)
    assert measure(b"x" * 1000).nbytes == sys.getsizeof(b"x" * 1000)
    assert measure(bytearray(10_000)).nbytes >= 10_000
    buf = bytearray(5000)
    assert measure(memoryview(buf)[:100]).nbytes == 100


def test_duplicates_count_once() -> None:
    s = "y" * 1000
    assert measure([s, s]).nbytes == sys.getsizeof([s, s]) + sys.getsizeof(s)


def test_deep_nesting_is_bounded() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100):
        child: list[object] = []
        node.append(child)
        node = child
    node.append(np.zeros(1_000_000))  # far below the depth bound: not reached
    assert measure(deep).nbytes < 1000
    cycle: list[object] = []
    cycle.append(cycle)
    assert measure(cycle).nbytes == sys.getsizeof(cycle)


class _Counted:
    """Counts how many times its size is asked for."""

    calls = 0

    def __sizeof__(self) -> int:
        type(self).calls += 1
        return 16


def test_huge_list_visits_at_most_the_bound() -> None:
    big = [_Counted() for _ in range(1_000_000)]
    _Counted.calls = 0
    measure(big)
    assert 0 < _Counted.calls <= MAX_ITEMS
    # Nested containers share the one budget.
    _Counted.calls = 0
    measure([big[:500_000], big[500_000:], {i: big[i] for i in range(20_000)}])
    assert 0 < _Counted.calls <= MAX_ITEMS


def test_enough_stops_the_walk_once_a_container_reaches_it() -> None:
    """What a threshold test needs (the cleanup's 'is it at least evict_min_bytes'):
    a list of a million items is over 1 MiB by its own array of pointers, and no item
    is visited."""
    big = [_Counted() for _ in range(1_000_000)]
    _Counted.calls = 0
    size = measure(big, enough=1 << 20).nbytes
    assert size >= 1 << 20 and _Counted.calls == 0
    small = [_Counted() for _ in range(100)]  # 16 bytes each: the walk goes on to the end
    _Counted.calls = 0
    assert measure(small, enough=1 << 20).nbytes == measure(small).nbytes
    assert _Counted.calls == 200


def test_dict_keys_are_measured() -> None:
    key = "k" * 5000
    assert measure({key: 1}).nbytes >= 5000
    assert measure({(torch.zeros(1000),): None}).device == "cpu"


def test_other_objects_by_getsizeof() -> None:
    class Plain:
        pass

    obj = Plain()
    assert measure(obj) == Size(sys.getsizeof(obj), None)
    assert measure(None).nbytes == sys.getsizeof(None)


# -- hostile objects -----------------------------------------------------------------


class _Boom(Exception):
    pass


class HostileAttr:
    def __getattr__(self, name: str) -> object:
        raise _Boom(name)

    def __getattribute__(self, name: str) -> object:
        raise _Boom(name)


class HostileSizeof:
    def __sizeof__(self) -> int:
        raise _Boom


class LyingSizeof:
    def __sizeof__(self) -> int:
        return -5


class HostileEqHash:
    def __eq__(self, other: object) -> bool:
        raise _Boom

    def __hash__(self) -> int:
        raise _Boom


class HostileList(list):
    def __len__(self) -> int:
        raise _Boom

    def __iter__(self):  # type: ignore[override]
        raise _Boom

    def __sizeof__(self) -> int:
        raise _Boom


class HostileDict(dict):
    def items(self):  # type: ignore[override]
        raise _Boom

    def __iter__(self):  # type: ignore[override]
        raise _Boom

    def __len__(self) -> int:
        raise _Boom


class PretendTensor:
    """Claims to be a tensor through __class__; isinstance() would believe it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return torch.Tensor

    def __getattr__(self, name: str) -> object:
        raise _Boom(name)


class PretendArray:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise _Boom

    def __sizeof__(self) -> int:
        raise _Boom


class HostileMeta(type):
    def __eq__(cls, other: object) -> bool:
        raise _Boom

    def __hash__(cls) -> int:
        raise _Boom

    @property
    def __mro__(cls) -> tuple[type, ...]:  # type: ignore[override]
        raise _Boom


class HostileClass(metaclass=HostileMeta):
    pass


class HostileModule(torch.nn.Module):
    def parameters(self, recurse: bool = True):  # type: ignore[override]
        raise _Boom


class HostileTensor(torch.Tensor):
    def untyped_storage(self):  # type: ignore[override]
        raise _Boom

    def element_size(self) -> int:  # type: ignore[override]
        raise _Boom


class TorchFunctionBomb(torch.Tensor):
    """Every torch call on it, attribute reads included, raises."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        raise _Boom(func)


class BrokenOptimizer(torch.optim.SGD):
    @property
    def state(self) -> object:  # type: ignore[override]
        raise _Boom

    @state.setter
    def state(self, value: object) -> None:
        pass


# Classes, not instances: pytest itself would trip over the instances.
HOSTILE = [
    HostileAttr,
    HostileSizeof,
    LyingSizeof,
    HostileEqHash,
    HostileList,
    HostileDict,
    PretendTensor,
    PretendArray,
    HostileClass,
]


@pytest.mark.parametrize("cls", HOSTILE, ids=lambda c: c.__name__)
def test_hostile_objects_never_raise(cls: type) -> None:
    obj = cls()
    if cls is HostileList:
        list.extend(obj, [1, 2, 3])
    elif cls is HostileDict:
        dict.update(obj, a=1)
    size = measure(obj)
    assert size.nbytes >= 0
    assert size.device is None
    # Also inside containers, as keys and values.
    assert measure([obj, {"k": obj}, (obj,)]).nbytes >= 0
    if cls.__name__ not in {"HostileEqHash", "HostileList", "HostileDict"}:  # unhashable
        assert measure({obj: obj}).nbytes >= 0


def test_hostile_containers_are_still_walked() -> None:
    # The base type's methods are used, so the elements are found anyway.
    assert measure(HostileList([torch.zeros(100)])).nbytes >= 400
    assert measure(HostileDict(a=np.zeros(100))).nbytes >= 800


def test_pretend_tensor_is_not_treated_as_one() -> None:
    obj = PretendTensor()
    assert isinstance(obj, torch.Tensor)  # why isinstance() is not used
    assert measure(obj) == Size(sys.getsizeof(obj), None)


def test_hostile_torch_subclasses_never_raise() -> None:
    assert measure(HostileModule()) == Size(0, "cpu")
    t = torch.zeros(10).as_subclass(HostileTensor)
    assert measure(t).nbytes == 0
    bomb = torch.zeros(10).as_subclass(TorchFunctionBomb)
    assert measure(bomb).nbytes >= 0
    assert measure([bomb, torch.zeros(1)]).nbytes >= 4
    opt = BrokenOptimizer([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert measure(opt).nbytes == 0


def test_container_mutated_by_hostile_element_does_not_raise() -> None:
    d: dict[object, object] = {}

    class Mutator:
        def __sizeof__(self) -> int:
            d[object()] = 1  # "dictionary changed size during iteration"
            return 8

    d.update({i: Mutator() for i in range(3)})
    assert measure(d).nbytes > 0


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text() | st.binary(),
        lambda children: (
            st.lists(children)
            | st.tuples(children, children)
            | st.dictionaries(st.text(), children)
            | st.frozensets(st.integers())
        ),
        max_leaves=50,
    )
)
def test_any_nesting_measures_at_least_its_shell(value: object) -> None:
    size = measure(value)
    assert size.nbytes >= sys.getsizeof(value)
    assert size.device is None


# -- human_bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024, "10 KiB"),
        (812 * 2**20, "812 MiB"),
        (int(1.2 * 2**30), "1.2 GiB"),
        (2**40 - 1, "1.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_human_bytes_never_raises(n: int) -> None:
    text = human_bytes(n)
    assert text.split()[-1] in {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}


# -- imports -------------------------------------------------------------------------


def test_importing_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "import greed_kernel.memory.sizes, greed_kernel.memory.probe, greed_kernel.memory.paging\n"
        "from greed_kernel.memory import torchlib, torchstate\n"
        "greed_kernel.memory.sizes.measure([1, 'a', {'b': (2.0,)}])\n"
        "greed_kernel.memory.sizes.cpu_buffers([1, 'a', {'b': (2.0,)}])\n"
        "greed_kernel.memory.probe.MemoryProbe().pressure()\n"
        "torchstate.clear_stale_grads([1]), torchstate.cuda_reserved()\n"
        "torchstate.empty_cuda_cache()\n"
        "torchstate.is_out_of_memory(RuntimeError('x')), torchstate.cuda_ready()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_libs_cache_follows_sys_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    # If torch disappears from sys.modules, tensors are plain objects, not errors.
    monkeypatch.delitem(sys.modules, "torch")
    t = torch.zeros(1000)
    assert measure(t) == Size(sys.getsizeof(t), None)
    monkeypatch.undo()
    assert sizes.measure(t) == Size(4000, "cpu")
