"""``python -m benchmarks.checkpoint``: what a session checkpoint costs, in one process.

A session of ``--mib`` MiB (a model of float32 tensors with Adam state, a numpy array,
a list of losses) is checkpointed with greed's writer (session/checkpoints.py) into a
fresh directory, then:

* ``full``: the first checkpoint: seconds and bytes written, against a raw write (and
  fsync) of the same bytes to the same disk;
* ``unchanged``: a checkpoint after a cell that touched a name and changed nothing,
  and one after a cell that touched nothing: bytes written (the deterministic figure)
  and seconds;
* ``step``: after an optimizer step (every parameter and Adam state changes);
* ``resume``: from reading the manifest to every name bound, against rebuilding the
  session (making the tensors, as re-running the notebook's cells would at least);
* ``size``: the checkpoint's bytes over the session's buffer bytes.

Writes checkpoint.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import typing as t
from pathlib import Path

MiB = 1 << 20


def session(mib: int) -> dict[str, t.Any]:
    import numpy as np
    import torch

    torch.manual_seed(0)
    width = 2048
    layers = max(1, (mib * MiB) // (width * width * 4 * 4))  # weight + grad + 2 Adam states
    model = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, width)).sum().backward()
    opt.step()
    return {
        "model": model,
        "opt": opt,
        "table": np.random.rand(4 * MiB // 8),
        "lossi": [float(i) for i in range(10_000)],
        "step": 1,
    }


def _buffer_bytes(values: dict[str, t.Any]) -> int:
    import torch

    seen: dict[int, int] = {}
    model, opt = values["model"], values["opt"]
    tensors = [*model.parameters(), *(p.grad for p in model.parameters())]
    tensors += [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    for x in tensors:
        seen[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
    return sum(seen.values()) + values["table"].nbytes


def _write(ck: t.Any, values: dict[str, t.Any], touched: set[str] | None, cell: int) -> dict:
    t0 = time.perf_counter()
    slices = 0
    for _ in ck.steps(values, touched, cell, imports={}, history={}, sources={}):
        slices += 1
    return {"seconds": time.perf_counter() - t0, "bytes": ck.written, "slices": slices}


def run(mib: int, directory: str) -> dict[str, t.Any]:
    import torch

    from greed_kernel.session.blobs import BlobDir
    from greed_kernel.session.checkpoints import Checkpoints

    t0 = time.perf_counter()
    values = session(mib)
    built = time.perf_counter() - t0
    buffers = _buffer_bytes(values)
    root = tempfile.mkdtemp(dir=directory)
    ck = Checkpoints(BlobDir(root, "bench", create=True), 1 << 40)
    results: dict[str, t.Any] = {"session_buffer_bytes": buffers, "build_seconds": built}
    results["full"] = _write(ck, values, None, 1)
    # the same bytes, written raw and fsynced
    data = os.urandom(16 * MiB)
    t0 = time.perf_counter()
    with open(os.path.join(root, "raw"), "wb") as f:
        for _ in range(results["full"]["bytes"] // len(data) + 1):
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    results["raw_write_seconds"] = time.perf_counter() - t0
    os.unlink(os.path.join(root, "raw"))
    results["unchanged_touched"] = _write(ck, values, {"model", "opt", "table"}, 2)
    results["unchanged_untouched"] = _write(ck, values, set(), 3)
    values["opt"].step()
    results["step"] = _write(ck, values, {"opt"}, 4)
    manifest = ck.list()[-1]
    t0 = time.perf_counter()
    resumed = ck.load(manifest, {"__name__": "__main__"})
    results["resume_seconds"] = time.perf_counter() - t0
    results["resume_failed"] = sorted(resumed.failed)
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            values["model"].state_dict().values(),
            resumed.values["model"].state_dict().values(),
            strict=True,
        )
    )
    results["resume_equal"] = same
    results["checkpoint_bytes"] = manifest.body["bytes"]
    results["size_ratio"] = manifest.body["bytes"] / buffers
    results["full_over_raw"] = results["full"]["seconds"] / results["raw_write_seconds"]
    results["resume_over_build"] = results["resume_seconds"] / built
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.checkpoint", description=__doc__)
    p.add_argument("--mib", type=int, default=1024, help="session size (default 1024)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the checkpoint goes")
    p.add_argument("--out", default=None, help="write checkpoint.json here")
    args = p.parse_args(argv)
    results = run(args.mib, args.dir)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "checkpoint.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
