"""Out-of-memory recovery: the failing cell's tensors are freed, and the session goes on."""

from __future__ import annotations

import importlib.util

import pytest

# the kernels import torch; this process need not (find_spec: no import at collection)
if importlib.util.find_spec("torch") is None:
    pytest.skip("out-of-memory recovery is tried on torch tensors", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)

SETUP = (
    "import torch, weakref\n"
    "model = torch.nn.Linear(4, 2)\n"
    "losses = [1.0, 0.5]\n"
    "def step(exc):\n"
    "    activations = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB held by this frame\n"
    "    global pinned\n"
    "    pinned = weakref.ref(activations)\n"
    "    raise exc\n"
)
FAILURES = [
    "MemoryError('cannot allocate')",
    "torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')",
    "RuntimeError('DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB; "
    "out of memory')",
]


@pytest.mark.parametrize("failure", FAILURES)
def test_greed_frees_the_failing_frames_and_says_so(kernel, failure):
    assert kernel.execute(SETUP).status == "ok"
    r = kernel.execute(f"step({failure})")
    assert r.status == "error"  # the user still sees their error, as it was
    assert r.reply["ename"] in ("MemoryError", "OutOfMemoryError", "RuntimeError")
    assert "Greed: reclaimed" in r.stderr and "your variables are intact" in r.stderr, r
    assert kernel.eval("pinned() is None") == "True"
    r = kernel.execute("print(losses, model.weight.shape)")
    assert r.status == "ok" and "[1.0, 0.5] torch.Size([2, 4])" in r.stdout
    r = kernel.execute("%tb")
    assert "Traceback" in r.stdout or "Error" in r.stdout


def test_a_stock_kernel_keeps_the_frames_pinned(new_kernel):
    with new_kernel(kernel_name="python3") as stock:
        stock.execute(SETUP)
        r = stock.execute(f"step({FAILURES[0]})")
        assert r.status == "error" and "Greed" not in r.stderr
        assert stock.eval("__import__('gc').collect() * 0 or pinned() is not None") == "True"


def test_recovery_can_be_turned_off_and_ordinary_errors_are_left_alone(new_kernel):
    with new_kernel("--GreedKernel.oom_recovery=False") as k:
        k.execute(SETUP)
        r = k.execute(f"step({FAILURES[0]})")
        assert "Greed: reclaimed" not in r.stderr
        assert k.eval("pinned() is not None") == "True"
    with new_kernel() as k:
        k.execute(SETUP)
        r = k.execute("step(ValueError('not memory'))")
        assert r.status == "error" and "Greed" not in r.stderr


def test_an_oom_event_is_published(kernel):
    from greed_kernel.frontends.client import GreedClient

    client = GreedClient(kernel.kc)
    events = []
    client.on("memory:oom", events.append)
    client.execute(SETUP)
    client.execute(f"step({FAILURES[1]})")
    (event,) = events
    assert event["report"]["ramFreedBytes"] >= 0 and "stats" in event
    client.close()


def test_cuda_oom_then_the_same_allocation_succeeds(kernel):
    # asked of the kernel, which imports torch anyway: this process need not
    if kernel.eval("__import__('torch').cuda.is_available()") != "True":
        pytest.skip("needs a CUDA GPU (run on a GPU machine)")
    r = kernel.execute(
        "import torch\n"
        "free, total = torch.cuda.mem_get_info()\n"
        "chunk = int(free * 0.45)\n"
        "def grab():\n"
        "    held = [torch.empty(chunk, dtype=torch.uint8, device='cuda') for _ in range(3)]\n"
        "    return held\n"
    )
    assert r.status == "ok"
    r = kernel.execute("grab()")
    assert r.status == "error" and "OutOfMemoryError" in r.reply["ename"]
    assert "Greed: reclaimed" in r.stderr and "on cuda:0" in r.stderr
    r = kernel.execute("x = torch.empty(chunk * 2, dtype=torch.uint8, device='cuda'); del x")
    assert r.status == "ok", r
