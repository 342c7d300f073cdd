"""greed_kernel.memory.torchlib: the one module that touches torch and CUDA, never first."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from greed_kernel.memory import torchlib, torchstate
from greed_kernel.memory.sizes import Size, measure

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(60)


def test_torch_types_are_cached_while_torch_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    found = torchlib.torch_types()
    assert found.tensor is torch.Tensor and found.module is torch.nn.Module
    assert found.optimizer is torch.optim.Optimizer and found.strided is torch.strided
    assert torchlib.torch_types() is found  # callers cache by identity
    monkeypatch.delitem(sys.modules, "torch")
    assert torchlib.torch_types().tensor is None
    half = types.ModuleType("torch")  # caught half-imported: no nn, no optim yet
    half.Tensor = torch.Tensor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", half)
    partial = torchlib.torch_types()
    assert partial.tensor is torch.Tensor and not partial.complete
    assert torchlib.torch_types() is not partial  # looked at again
    monkeypatch.undo()
    assert torchlib.torch_types().complete


def test_clear_stale_grads_only_on_frozen_leaves() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    model(torch.ones(2, 4)).sum().backward()
    frozen = model[0]
    for p in frozen.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(model[1].parameters(), lr=0.1)
    assert torchstate.clear_stale_grads([{"m": [model]}, opt, 1, "x"]) == 2
    assert all(p.grad is None for p in frozen.parameters())
    assert all(p.grad is not None for p in model[1].parameters())
    assert torchstate.clear_stale_grads([model]) == 0


def test_clear_stale_grads_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch")
    assert torchstate.clear_stale_grads([object()]) == 0


def test_cuda_helpers_never_initialise_cuda() -> None:
    if torch.cuda.is_initialized():
        pytest.skip("CUDA already initialised by an earlier test")
    assert not torchstate.cuda_ready()
    assert torchstate.cuda_reserved() == []
    assert torchstate.empty_cuda_cache() == []
    assert torchstate.cuda_devices({}) == []
    assert not torch.cuda.is_initialized()


@pytest.mark.parametrize(
    ("error", "oom"),
    [
        (None, False),
        (MemoryError(), True),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate: out of memory"), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_out_of_memory(error: BaseException | None, oom: bool) -> None:
    assert torchstate.is_out_of_memory(error) is oom


def test_is_out_of_memory_survives_a_hostile_str() -> None:
    class Hostile(RuntimeError):
        def __str__(self) -> str:
            raise ValueError("no")

    assert torchstate.is_out_of_memory(Hostile()) is False


def test_the_walk_is_torchlibs() -> None:
    # The torch part of sizes.measure: storages once, modules with their grads.
    t = torch.zeros(1000)
    views = [t, t[10:], t.view(10, 100)]
    assert measure(views) == Size(sys.getsizeof(views) + 4000, "cpu")
    linear = torch.nn.Linear(100, 10)
    linear(torch.ones(1, 100)).sum().backward()
    assert measure(linear) == Size(2 * 4 * (100 * 10 + 10), "cpu")
    opt = torch.optim.Adam(linear.parameters())
    opt.step()
    # exp_avg and exp_avg_sq of each parameter, and its step count
    assert measure(opt).nbytes == 2 * 4 * (100 * 10 + 10) + 2 * 4


def test_no_other_module_touches_torch() -> None:
    package = Path(torchlib.__file__).parent
    touches = re.compile(
        r"""modules\.get\(\s*["']torch|modules\[\s*["']torch|^\s*(from|import) torch""", re.M
    )
    offenders = [
        p.name
        for p in sorted(package.glob("*.py"))
        if p.name != "torchlib.py" and touches.search(p.read_text())
    ]
    assert offenders == []
