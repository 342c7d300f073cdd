"""Sessions that outlive the kernel: run cells, SIGKILL the kernel once its automatic
checkpoint holds the last cell, start a new kernel of the same notebook, ``%greed
resume``, and compare with python3's final namespace."""

from __future__ import annotations

import ast
import json
import mmap
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from greed_kernel.frontends.client import GreedClient
from greed_kernel.session.blobs import BlobDir
from greed_kernel.session.identity import identity_key
from greed_kernel.session.manifests import latest, load_manifests
from tests.kernel_harness import KernelHarness

pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(240)

#: A makemore-like session: a bigram MLP trained with `p.data +=`, an nn.Module with
#: Adam, a class and a function defined in cells, numpy views, generators.
CELLS = [
    "import random\nimport numpy as np\nimport torch\nimport torch.nn as nn\n"
    "random.seed(1); np.random.seed(2); torch.manual_seed(3)",
    "words = ['emma', 'olivia', 'ava'] * 50\n"
    "g = torch.Generator().manual_seed(2147483647)\n"
    "C = torch.randn((27, 10), generator=g)\n"
    "W1 = torch.randn((30, 200), generator=g) * 0.2\n"
    "b1 = torch.randn(200, generator=g) * 0.01\n"
    "parameters = [C, W1, b1]\n"
    "for p in parameters:\n    p.requires_grad = True\n"
    "lossi = []",
    "for i in range(20):\n"
    "    ix = torch.randint(0, 27, (32, 3), generator=g)\n"
    "    emb = C[ix]\n"
    "    h = torch.tanh(emb.view(-1, 30) @ W1 + b1)\n"
    "    loss = h.pow(2).mean()\n"
    "    for p in parameters:\n        p.grad = None\n"
    "    loss.backward()\n"
    "    for p in parameters:\n        p.data += -0.1 * p.grad\n"
    "    lossi.append(loss.item())",
    "class MLP(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 3)\n"
    "    def forward(self, x):\n        return self.fc(x)\n"
    "model = MLP()\nopt = torch.optim.Adam(model.parameters(), lr=0.01)\n"
    "for _ in range(3):\n"
    "    opt.zero_grad(); model(torch.randn(5, 4)).sum().backward(); opt.step()",
    "factor = 3\ndef scale(x):\n    return x * factor\n"
    "a = np.arange(12.0).reshape(3, 4)\nv = a[1:]\nalias = a\n"
    "big = torch.arange(300_000, dtype=torch.float32)\nhead = big[:10]\n"
    "gen = (i for i in range(3))",
]

#: Everything compared, as JSON (the same cell on both kernels, after the session).
PROBE = r"""
def _probe():
    import hashlib, json, random, numpy, torch
    ns = get_ipython().user_ns
    def h(t):
        return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    out = {}
    for name in ["C", "W1", "b1", "ix", "big", "emb", "h", "loss"]:
        t = ns[name]
        grad = None if not t.is_leaf or t.grad is None else h(t.grad)
        out[name] = [h(t), str(t.dtype), t.requires_grad, grad, list(t.shape)]
    out["parameters"] = [p is ns[n] for p, n in zip(ns["parameters"], ["C", "W1", "b1"])]
    out["p"] = ns["p"] is ns["b1"]
    out["lossi"] = ns["lossi"]
    out["words"] = ns["words"][:4] + [len(ns["words"])]
    m, o = ns["model"], ns["opt"]
    out["model"] = {k: h(v) for k, v in m.state_dict().items()}
    out["grads"] = {k: h(p.grad) for k, p in m.named_parameters()}
    out["opt"] = {
        str(k): {kk: h(vv) if torch.is_tensor(vv) else vv for kk, vv in s.items()}
        for k, s in o.state_dict()["state"].items()
    }
    out["opt_group"] = {k: v for k, v in o.param_groups[0].items() if k != "params"}
    out["opt_alias"] = o.param_groups[0]["params"][0] is m.fc.weight
    out["class"] = [type(m) is ns["MLP"], ns["MLP"].__name__]
    out["scale"] = ns["scale"](2)
    out["numpy"] = [bool(numpy.shares_memory(ns["v"], ns["a"])), ns["alias"] is ns["a"],
                    ns["v"].tolist(), ns["a"].flags.writeable]
    out["view"] = ns["head"].untyped_storage().data_ptr() == ns["big"].untyped_storage().data_ptr()
    out["rng"] = [random.random(), float(numpy.random.rand()), float(torch.rand(1)),
                  h(ns["g"].get_state()), float(torch.rand(1, generator=ns["g"]))]
    return json.dumps(out, sort_keys=True, default=str)
print(_probe())
"""

#: Not storable: a generator.
UNSTORABLE = {"gen"}
#: Computed with autograd: their values come back, as leaves, with a note.
GRAPHLESS = "emb, h, loss"


def run_cells(kernel: KernelHarness, cells: list[str]) -> None:
    for cell in cells:
        result = kernel.execute(cell, timeout=120)
        assert result.reply["status"] == "ok", result


def probe(kernel: KernelHarness) -> dict[str, object]:
    result = kernel.execute(PROBE, timeout=120)
    assert result.reply["status"] == "ok", result
    return json.loads(result.stdout)


def checkpoint_dir(notebook: str) -> Path:
    return Path(os.environ["JUPYTER_DATA_DIR"], "greed", "sessions", identity_key(notebook))


def wait_for_checkpoint(notebook: str, cell: int, timeout: float = 60.0) -> None:
    """Until the notebook's latest checkpoint holds *cell* (written in the background)."""
    deadline = time.monotonic() + timeout
    root = checkpoint_dir(notebook).parent
    while time.monotonic() < deadline:
        if checkpoint_dir(notebook).exists():
            store = BlobDir(str(root), identity_key(notebook), create=False)
            try:
                found = latest(store)
            finally:
                store.close()
            if found is not None and found.body["cell"] >= cell:
                return
        time.sleep(0.05)  # nothing to await: the checkpoint runs inside the kernel
    raise AssertionError(f"no checkpoint of cell {cell} within {timeout} s")


def greed(notebook: str, *args: str) -> KernelHarness:
    return KernelHarness(*args, env={"JPY_SESSION_NAME": notebook})


def test_a_killed_session_resumes_as_python3_ended() -> None:
    notebook = f"work/{uuid.uuid4().hex}.ipynb"
    with KernelHarness(kernel_name="python3") as python3:
        run_cells(python3, CELLS)
        wanted = probe(python3)
    with greed(notebook) as first:
        run_cells(first, CELLS)
        wait_for_checkpoint(notebook, len(CELLS))
        os.kill(first.km.provisioner.process.pid, signal.SIGKILL)
    with greed(notebook) as second:
        told = second.execute("1 + 1")
        assert "his notebook has a checkpoint from" in told.stderr, told
        assert told.stderr.count("\n") == 1  # one line, the death record's included
        assert "%greed resume" in told.stderr
        resumed = second.execute("%greed resume")
        assert resumed.reply["status"] == "ok", resumed
        for name in UNSTORABLE:
            assert f"Not stored: {name} (" in resumed.stdout, resumed.stdout
        assert (
            f"autograd graph (now leaves; re-run their cells to compute them again): {GRAPHLESS}\n"
            in resumed.stdout
        )
        got = probe(second)
    assert got == wanted


def test_a_corrupted_blob_costs_only_its_names() -> None:
    notebook = f"work/{uuid.uuid4().hex}.ipynb"
    with greed(notebook, "--GreedKernel.checkpoint=manual") as kernel:
        run_cells(
            kernel,
            [
                "import torch\nkept = torch.arange(100_000.0)\nflipped = torch.ones(100_000)\n"
                "cut = torch.zeros(100_000)\nsmall = [1, 2, 3]",
                "%greed checkpoint",
            ],
        )
    store = BlobDir(str(checkpoint_dir(notebook).parent), identity_key(notebook), create=False)
    try:
        manifest = latest(store)
        assert manifest is not None
        groups = {tuple(g["names"]): g for g in manifest.groups}
    finally:
        store.close()
    blobs = checkpoint_dir(notebook) / "blobs"
    flip = blobs / groups[("flipped",)]["buffers"][0][0]
    data = bytearray(flip.read_bytes())
    data[1000] ^= 0xFF
    flip.write_bytes(bytes(data))
    cut = blobs / groups[("cut",)]["buffers"][0][0]
    os.truncate(cut, 4096)
    with greed(notebook) as kernel:
        resumed = kernel.execute("%greed resume")
        assert resumed.reply["status"] == "ok", resumed
        assert "Not restored: cut (" in resumed.stdout and "flipped (" in resumed.stdout
        assert kernel.eval("(int(kept[-1]), small)") == "(99999, [1, 2, 3])"
        assert kernel.eval("'flipped' in dir() or 'cut' in dir()") == "False"


def test_resume_refuses_a_directory_others_may_write() -> None:
    notebook = f"work/{uuid.uuid4().hex}.ipynb"
    with greed(notebook, "--GreedKernel.checkpoint=manual") as kernel:
        run_cells(kernel, ["x = 41", "%greed checkpoint"])
    checkpoint_dir(notebook).chmod(0o770)
    with greed(notebook) as kernel:
        resumed = kernel.execute("%greed resume")
        assert resumed.reply["status"] == "error"
        assert f"{checkpoint_dir(notebook)}: mode 0770: group or others may write it" in (
            resumed.stderr
        ), resumed
        assert kernel.eval("'x' in dir()") == "False"
        assert kernel.eval("1 + 1") == "2"


#: The cell before a stretch: the rule set inside the kernel, binding no name but the
#: session's own: 2 s instead of 5 minutes, and the checkpoint's expected time (the
#: kernel's RssAnon at 256 MiB/s, some 0.15 s) may be all of that, not 1% (15 s).
SHORT_RULE = (
    'setattr(__import__("greed_kernel.engine.checkpointing", fromlist=["_"]), '
    '"OVERDUE_SECONDS", 2.0)\n'
    'setattr(__import__("greed_kernel.engine.checkpointing", fromlist=["_"]), '
    '"OVERDUE_SHARE", 1.0)\n'
    "import time\nstep = 0"
)
STRETCH_CELLS = 50  # of 0.1 s each: 5 s, 2.5 times the rule


def checkpointed_cells(notebook: str) -> list[int]:
    """The cell number of each of the notebook's checkpoints, oldest first."""
    store = BlobDir(str(checkpoint_dir(notebook).parent), identity_key(notebook), create=False)
    try:
        manifests, problems = load_manifests(store)
    finally:
        store.close()
    assert problems == []
    return [m.body["cell"] for m in manifests]


def test_a_stretch_of_cells_sent_back_to_back_is_checkpointed_inside() -> None:
    """Cells sent back to back leave no quiet moment; once the namespace has differed
    from the checkpoint for OVERDUE_SECONDS, a checkpoint is written between two cells
    of the stretch, not only after its end."""
    notebook = f"work/{uuid.uuid4().hex}.ipynb"
    with greed(notebook) as kernel:
        setup = kernel.execute(SHORT_RULE)
        assert setup.reply["status"] == "ok", setup
        wait_for_checkpoint(notebook, setup.reply["execution_count"])
        # each cell changes `step`: a checkpoint of an unchanged namespace writes nothing
        sent = [kernel.submit(f"step = {i}\ntime.sleep(0.1)") for i in range(1, STRETCH_CELLS + 1)]
        replies = [kernel.collect(msg_id, timeout=120).reply for msg_id in sent]
        assert [r["status"] for r in replies] == ["ok"] * STRETCH_CELLS, replies
        first, last = replies[0]["execution_count"], replies[-1]["execution_count"]
        assert last - first == STRETCH_CELLS - 1
        wait_for_checkpoint(notebook, last)  # the quiet one after the stretch
        cells = checkpointed_cells(notebook)
    # without the rule: [the setup cell, last]
    assert cells[0] < first and cells[-1] == last, (first, last, cells)
    assert any(first < cell < last for cell in cells), (first, last, cells)


#: Bytes of the resumed tensor and of the resumed array, and of each written since.
RESUMED, WRITTEN = 16 << 20, 8 << 20
#: The budget: the kernel's unreclaimable memory now is 85% of it, above the 80% of
#: memory_threshold, below the guard's 95%. Paging one of the two (8 MiB freed) leaves
#: it above the 70% of memory_low_watermark: the budget pages both.
TIGHT_LIMIT = (
    'setattr(get_ipython().kernel, "memory_limit", '
    "int(get_ipython().kernel.greed.probe.unreclaimable() / 0.85))"
)
#: Of the tensor's and the array's memory: (bytes greed counts as paged, pages in RAM
#: as private anonymous copies).
PAGED = (
    "[(get_ipython().kernel.greed.store.bytes_of(v), "
    "__import__('greed_kernel.memory.procmaps', fromlist=['_']).anonymous_pages(p, p + n)) "
    "for v, p, n in [(t, t.data_ptr(), t.nbytes), "
    "(a, a.__array_interface__['data'][0], a.nbytes)]]"
)


def test_the_budget_pages_memory_written_to_a_resumed_tensor_and_array() -> None:
    """A resumed tensor and a resumed array map their blobs privately; the pages
    written since are anonymous copies, which the memory budget pages in place: greed
    counts their bytes as paged, none stays anonymous, and they keep their values and
    stay writable."""
    notebook = f"work/{uuid.uuid4().hex}.ipynb"
    n = RESUMED // 4
    with greed(notebook, "--GreedKernel.checkpoint=manual") as kernel:
        run_cells(
            kernel,
            [
                f"import numpy as np\nimport torch\nt = torch.ones({n})\n"
                f"a = np.ones({RESUMED // 8})",
                "%greed checkpoint",
            ],
        )
    with greed(notebook, "--GreedKernel.checkpoint=manual") as kernel:
        run_cells(
            kernel,
            ["%greed resume", f"t[: {WRITTEN // 4}] += 1\na[: {WRITTEN // 8}] += 1"],
        )
        written = ast.literal_eval(kernel.eval(PAGED))
        assert all(p == 0 and anon >= WRITTEN // mmap.PAGESIZE for p, anon in written), written
        client = GreedClient(kernel.kc)
        try:
            assert client.execute(TIGHT_LIMIT)["status"] == "ok"
            event = client.wait_for(
                lambda e: e["event"] == "execution:cleanup" and e["report"]["trigger"] == "memory"
            )
        finally:
            client.close()
        report = event["report"]
        assert {"t", "a"} <= set(report["paged"]), report
        assert ast.literal_eval(kernel.eval(PAGED)) == [(RESUMED, 0), (RESUMED, 0)]
        wanted = float(n + WRITTEN // 4), float(RESUMED // 8 + WRITTEN // 8)
        sums = "(t.sum(dtype=torch.float64).item(), float(a.sum()))"
        assert kernel.eval(sums) == repr(wanted)
        run_cells(kernel, ["t[-1] = -1.0\na[-1] = -1.0"])
        assert kernel.eval("(t[-1].item(), float(a[-1]))") == "(-1.0, -1.0)"
        assert kernel.eval(sums) == repr((wanted[0] - 2, wanted[1] - 2))
