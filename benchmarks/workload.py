"""The soak workload: a seeded, realistic PyTorch notebook session of N cells.

The session trains a small MLP on synthetic data and does what people do
between training steps: display tensors (8 MiB each, kept by IPython's output
cache), make temporaries (``_temp_k``), recompute big intermediate values
(reassigned, so stale large values sit in the namespace), hit errors inside
functions that hold tensors, freeze and unfreeze layers after a backward pass
(fine-tuning), use magics and make plots (matplotlib, Agg backend).

Cells are drawn in blocks of 50 with the same mix of kinds in every block
(shuffled by the seed), so any window of 50 cells, say the first and the last,
does the same kind of work. Everything random inside the cells goes through
torch's seeded generator, so both kernels compute exactly the same thing and
the final training state must be bit-identical.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Cells of each kind in every block of 50.
BLOCK_MIX: dict[str, int] = {
    "train": 14,
    "display": 8,
    "temporary": 5,
    "intermediate": 5,
    "error": 2,
    "freeze": 2,
    "magic": 4,
    "plot": 4,
    "eval": 4,
    "inspect": 2,
}
BLOCK = sum(BLOCK_MIX.values())
assert BLOCK == 50

#: Kinds whose output legitimately differs between kernels (timings, namespace listings).
NONDETERMINISTIC_KINDS = frozenset({"magic"})


@dataclass(frozen=True)
class Cell:
    index: int  # 1-based position in the soak
    kind: str
    code: str
    expect: str = "ok"  # the reply status the cell must have


def setup_code(seed: int) -> str:
    """The first cell (not timed): imports, seeds, data, model, helpers, warm-up."""
    return f"""\
import hashlib
import io
import random

import torch
from torch import nn, optim
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

torch.set_num_threads(1)
torch.manual_seed({seed})
random.seed({seed})

data = torch.randn(4096, 256)
X = data
y = (data[:, :10] * torch.arange(1.0, 11.0)).argmax(1)
model = nn.Sequential(
    nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
)
optimizer = optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
losses = []
accuracies = []


def train_step(batch_size=256):
    idx = torch.randint(0, X.shape[0], (batch_size,))
    optimizer.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    return loss.item()


def evaluate():
    with torch.no_grad():
        return (model(X).argmax(1) == y).float().mean().item()


def risky_batch(k):
    buffer = torch.randn(1024, 1024)  # 4 MiB, held by the traceback's frame
    scale = buffer.std().item()
    raise ValueError(f"batch {{k}}: suspicious scale {{scale:.3f}}")


_fig = plt.figure(figsize=(4, 3))
plt.plot([0, 1], [1, 0])
_fig.savefig(io.BytesIO(), format="png")
plt.close(_fig)
del _fig
"""


def _train(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(3)
    if choice == 0:
        return "train_step()", "ok"
    if choice == 1:
        return "for _ in range(3):\n    train_step()", "ok"
    return (
        "idx = torch.randint(0, X.shape[0], (256,))\n"
        "optimizer.zero_grad()\n"
        "out = model(X[idx])\n"
        "loss = loss_fn(out, y[idx])\n"
        "loss.backward()\n"
        "optimizer.step()\n"
        "losses.append(loss.item())\n"
        "loss.item()",
        "ok",
    )


def _display(rng: random.Random, i: int) -> tuple[str, str]:
    # each result is an 8 MiB float32 tensor that the output cache keeps
    choice = rng.randrange(4)
    if choice == 0:
        return "torch.randn(1024, 2048)", "ok"
    if choice == 1:
        return f"torch.randn(1024, 2048) * {rng.randint(2, 9)}", "ok"
    if choice == 2:
        return "torch.randn(2048, 1024).cumsum(0)", "ok"
    return "with torch.no_grad():\n    acts = model[:2](X)\nacts", "ok"  # 4096 x 512


def _temporary(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(3)
    if choice == 0:
        return f"_temp_{i} = torch.randn(512, 1024)", "ok"  # 2 MiB
    if choice == 1:
        return f"_temp_{i} = X[torch.randperm(X.shape[0])]", "ok"  # 4 MiB
    return f"_temp_{i} = data.clone() * 0.5\n_temp_{i}.shape", "ok"  # 4 MiB


def _intermediate(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(4)
    if choice == 0:
        return "feats = torch.randn(2048, 1024)\nfeats.mean().item()", "ok"  # 8 MiB
    if choice == 1:
        return "with torch.no_grad():\n    hidden = model[:4](X)\nhidden.shape", "ok"  # 8 MiB
    if choice == 2:
        return (
            "batch = X[torch.randint(0, X.shape[0], (1024,))].clone()\n"
            "batch_stats = (batch.mean(0), batch.std(0))",
            "ok",
        )
    return (
        "cov = torch.cov(torch.randn(1024, 1024))\n"  # 4 MiB
        "eigs = torch.linalg.eigvalsh(cov[:128, :128])\n"
        "eigs.max().item()",
        "ok",
    )


def _error(rng: random.Random, i: int) -> tuple[str, str]:
    if rng.randrange(2) == 0:
        return f"risky_batch({i})", "error"
    return (
        "def check_batch(b):\n"
        "    norm = b.norm().item()\n"
        "    if norm > 0:\n"
        '        raise RuntimeError(f"batch norm {norm:.1f} is too large")\n'
        "    return norm\n"
        "\n"
        "check_batch(torch.randn(1024, 1024))",
        "error",
    )


def _freeze(rng: random.Random, i: int) -> tuple[str, str]:
    if rng.randrange(3) == 0:
        return "model.requires_grad_(True)\nsum(p.requires_grad for p in model.parameters())", "ok"
    layer = rng.choice((0, 2))
    # a backward first: the frozen layer keeps a now useless .grad
    return (
        "loss_fn(model(X[:512]), y[:512]).backward()\n"
        f"model[{layer}].requires_grad_(False)\n"
        "sum(p.requires_grad for p in model.parameters())",
        "ok",
    )


def _magic(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(5)
    if choice == 0:
        return "%time train_step()", "ok"
    if choice == 1:
        return "%who", "ok"
    if choice == 2:
        return "%timeit -n 3 -r 1 model(X[:64])", "ok"
    if choice == 3:
        return "%who_ls", "ok"
    return "%time acc_now = evaluate()", "ok"


def _plot(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(3)
    if choice == 0:
        return "plt.plot(losses)\nplt.close()", "ok"
    if choice == 1:  # a figure as the cell's result: the output cache keeps it
        return (
            "fig, ax = plt.subplots(figsize=(4, 3))\n"
            "ax.plot(accuracies)\n"
            'ax.set_title("accuracy")\n'
            "plt.close(fig)\n"
            "fig",
            "ok",
        )
    return (
        "fig = plt.figure(figsize=(4, 3))\n"
        "plt.hist(torch.randn(10000).numpy(), bins=50)\n"
        "buf = io.BytesIO()\n"
        'fig.savefig(buf, format="png")\n'
        "plt.close(fig)\n"
        "len(buf.getvalue())",
        "ok",
    )


def _eval(rng: random.Random, i: int) -> tuple[str, str]:
    if rng.randrange(2) == 0:
        return "acc = evaluate()\naccuracies.append(acc)\nacc", "ok"
    return (
        "with torch.no_grad():\n    val_loss = loss_fn(model(X[-512:]), y[-512:]).item()\nval_loss",
        "ok",
    )


def _inspect(rng: random.Random, i: int) -> tuple[str, str]:
    choice = rng.randrange(3)
    if choice == 0:
        return "len(losses), (losses[-1] if losses else None)", "ok"
    if choice == 1:
        return "sum(p.numel() for p in model.parameters())", "ok"
    return "model", "ok"


_MAKERS = {
    "train": _train,
    "display": _display,
    "temporary": _temporary,
    "intermediate": _intermediate,
    "error": _error,
    "freeze": _freeze,
    "magic": _magic,
    "plot": _plot,
    "eval": _eval,
    "inspect": _inspect,
}


def generate(n: int, seed: int) -> list[Cell]:
    """The soak's ``n`` cells, deterministically from ``seed``."""
    rng = random.Random(seed)
    kinds: list[str] = []
    while len(kinds) < n:
        block = [kind for kind, count in BLOCK_MIX.items() for _ in range(count)]
        rng.shuffle(block)
        kinds.extend(block)
    cells = []
    for i, kind in enumerate(kinds[:n], start=1):
        code, expect = _MAKERS[kind](rng, i)
        cells.append(Cell(i, kind, code, expect))
    return cells


#: Read at the end (user_expressions) in every kernel: the training result,
#: which must be bit-identical between kernels.
RESULT_EXPRESSIONS = {
    "state_dict_sha256": (
        'hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() '
        "for t in model.state_dict().values())).hexdigest()"
    ),
    "param_sum": "repr(sum(float(p.detach().double().sum()) for p in model.parameters()))",
    "last_loss": "repr(losses[-1]) if losses else None",
    "steps": "len(losses)",
}

#: Read at the end in every kernel: the preserved training state is all there.
STATE_EXPRESSIONS = {
    "model": "type(model).__name__",
    "optimizer": "(type(optimizer).__name__, len(optimizer.state))",
    "loss_fn": "type(loss_fn).__name__",
    "data": "(tuple(data.shape), tuple(X.shape), tuple(y.shape), data.dtype)",
    "losses": "len(losses)",
    "accuracies": "len(accuracies)",
}
