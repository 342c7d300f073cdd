"""``python -m benchmarks.notebooks DIR``: real notebooks, killed and resumed.

For each ``*.ipynb`` in DIR (public teaching notebooks, with their data files beside
them), the code cells run on a python3 and a greed kernel (default settings,
``checkpoint="auto"``), taking turns cell by cell. Step counts are trimmed: a
``range(N)`` or ``max_steps = N`` with N of 1,000 or more becomes ``--steps``. A prelude
changes into DIR and seeds ``random`` and torch on both kernels (the lectures draw some
tensors unseeded). Then, 5 s after greed's last cell, greed is killed (SIGKILL); a new
greed kernel of the same notebook runs ``%greed resume``, and every name of python3's
final namespace is compared with the resumed one: values (tensors and arrays by their
bytes, dtype, shape, ``requires_grad`` and ``.grad``; modules and optimizers by their
state), and which names and list elements are the same object. Names greed listed as
not storable are reported apart.

Also measured: the run time of each kernel's cells (the overhead ratio, cells taking
turns); the time each request waited before the kernel began it (the reply's
``started``), greed's over python3's as a share of python3's cell time: what greed's
work between cells (its checkpoints) made the cells wait; the time from
``%greed resume`` to every name bound, and the checkpoint's size. Writes
notebooks.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import time
import typing as t
import uuid
from pathlib import Path

from .harness import Kernel
from .sandbox import Sandbox

PRELUDE = """\
%cd {dir}
def _greed_bench_seed():
    import random, torch
    random.seed(0)
    torch.manual_seed(0)
_greed_bench_seed()
del _greed_bench_seed
"""

PROBE = r"""
def _greed_bench_probe():
    import hashlib, json, sys, types, random
    ns = get_ipython().user_ns
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    skip = {"In", "Out", "exit", "quit", "get_ipython"}
    names = sorted(n for n in ns if not n.startswith("_") and n not in skip)
    top = {id(ns[n]): n for n in names}
    def h(b):
        return hashlib.sha1(b).hexdigest()[:16]
    def fp(v, depth=0):
        if depth and id(v) in top and not isinstance(v, (int, float, str, bool)):
            return ["is", top[id(v)]]
        if torch is not None and isinstance(v, torch.Tensor):
            x = v.detach().cpu().contiguous()
            data = x.reshape(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b""
            kept = v.is_leaf or v.retains_grad  # (no warning for a non-leaf's .grad)
            grad = fp(v.grad, depth + 1) if kept and v.grad is not None else None
            return ["tensor", str(v.dtype), list(v.shape), v.requires_grad, h(data), grad]
        if np is not None and isinstance(v, np.ndarray):
            return ["ndarray", str(v.dtype), list(v.shape), h(np.ascontiguousarray(v).tobytes())]
        if isinstance(v, (int, float, str, bool, complex, bytes, type(None))):
            return repr(v)
        if depth > 4:
            return type(v).__name__
        if isinstance(v, (list, tuple)):
            return [type(v).__name__, len(v), [fp(x, depth + 1) for x in v[:5000]]]
        if isinstance(v, dict):
            return ["dict", sorted([repr(k), fp(x, depth + 1)] for k, x in list(v.items())[:5000])]
        if torch is not None and isinstance(v, torch.nn.Module):
            params = v.named_parameters()
            grads = {k: fp(p.grad, depth + 1) for k, p in params if p.grad is not None}
            return ["module", type(v).__name__, fp(v.state_dict(), depth + 1), grads]
        if torch is not None and isinstance(v, torch.optim.Optimizer):
            return ["optimizer", fp(v.state_dict(), depth + 1)]
        if torch is not None and isinstance(v, torch.Generator):
            return ["generator", fp(v.get_state(), depth + 1)]
        if isinstance(v, (types.FunctionType, type)):
            return [type(v).__name__, v.__qualname__]
        if isinstance(v, types.ModuleType):
            return ["module", v.__name__]
        return [type(v).__name__]
    out = {n: fp(ns[n]) for n in names}
    draws = [random.random()]
    if torch is not None:
        draws.append(float(torch.rand(1)))
    out["<next random draws>"] = draws
    return json.dumps(out, default=repr)
print(_greed_bench_probe())
del _greed_bench_probe
"""

_STEPS = [
    re.compile(r"(\brange\()([0-9_]{4,})(\))"),
    re.compile(r"(\bmax_steps\s*=\s*)([0-9_]{4,})()"),
]


def trimmed(source: str, steps: int) -> str:
    for pattern in _STEPS:
        source = pattern.sub(
            lambda m: f"{m.group(1)}{min(int(m.group(2).replace('_', '')), steps)}{m.group(3)}",
            source,
        )
    return source


def code_cells(path: Path, steps: int) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return [trimmed(source, steps) for source in code]


def _probe(k: Kernel) -> dict[str, t.Any]:
    run = k.must_run(PROBE, timeout=600)
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_notebook(sandbox: Sandbox, path: Path, steps: int) -> dict[str, t.Any]:
    cells = code_cells(path, steps)
    session = f"bench/{uuid.uuid4().hex}/{path.name}"
    prelude = PRELUDE.format(dir=path.parent)
    python3 = Kernel(sandbox, "python3", "python3")
    sandbox.env["JPY_SESSION_NAME"] = session
    greed = Kernel(sandbox, "greed", "greed")
    seconds = {"python3": 0.0, "greed": 0.0}
    waits = {"python3": 0.0, "greed": 0.0}  # request sent -> the kernel began it
    longest: list[tuple[float, int]] = []  # greed's waits (ms) and their cells
    failed: dict[str, list[int]] = {"python3": [], "greed": []}
    try:
        python3.start()
        greed.start()
        for k in (python3, greed):
            k.must_run(prelude, timeout=120)
        for i, cell in enumerate(cells):
            for k in (python3, greed) if i % 2 == 0 else (greed, python3):
                run = k.run(cell, timeout=1800)
                seconds[k.label] += run.latency_s
                waits[k.label] += run.wait_s or 0.0
                if k is greed:
                    longest.append((round((run.wait_s or 0.0) * 1000.0, 2), i))
                if run.status != "ok":
                    failed[k.label].append(i)
        wanted = _probe(python3)
        time.sleep(5.0)  # the moment: 5 s after the last cell
        log = greed.log_tail(4000)
        os.kill(greed.pid, signal.SIGKILL)
        greed.shutdown()
        greed = Kernel(sandbox, "greed", "greed-resumed")
        greed.start()
        # the notice goes to stderr; the first cell shows it, and it is not read here
        greed.must_run("1", timeout=120)
        t0 = time.perf_counter()
        resumed = greed.must_run("%greed resume", timeout=600)
        resume_s = time.perf_counter() - t0
        listed = re.findall(r"^Not stored: (\w+) \(", resumed.stdout, re.M)
        got = _probe(greed)
        latest = greed.must_run("%greed checkpoints", timeout=60).stdout
    finally:
        sandbox.env.pop("JPY_SESSION_NAME", None)
        python3.shutdown()
        greed.shutdown()
    differ = sorted(n for n in wanted if n not in listed and got.get(n) != wanted[n])
    return {
        "notebook": path.name,
        "cells": len(cells),
        "steps": steps,
        "failed_cells": failed,
        "seconds": seconds,
        "overhead_ratio": seconds["greed"] / seconds["python3"] if seconds["python3"] else None,
        "wait_s": waits,
        "greed_longest_waits_ms": sorted(longest, reverse=True)[:3],  # (ms, cell index)
        # what greed's work between cells (checkpoints, cleanups) made the cells wait
        "wait_added_ratio": (
            (waits["greed"] - waits["python3"]) / seconds["python3"] if seconds["python3"] else None
        ),
        "resume_seconds": resume_s,
        "names": len(wanted),
        "not_storable": listed,
        "equal": len(wanted) - len(differ) - len([n for n in listed if n in wanted]),
        "differ": differ,
        "differences": {n: [str(wanted[n])[:400], str(got.get(n))[:400]] for n in differ},
        "extra_in_greed": sorted(set(got) - set(wanted)),
        "checkpoints": latest.strip(),
        "resume_said": resumed.stdout[-3000:],
        "greed_log": [line for line in log.splitlines() if "greed" in line][-10:],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.notebooks", description=__doc__)
    p.add_argument("dir", help="a directory of notebooks and their data files")
    p.add_argument("--steps", type=int, default=2000, help="the most steps of a loop")
    p.add_argument("--out", default=None, help="write notebooks.json here")
    args = p.parse_args(argv)
    results = []
    with Sandbox() as sandbox:
        for path in sorted(Path(args.dir).resolve().glob("*.ipynb")):
            print(f"{path.name}: running on python3 and greed", flush=True)
            result = run_notebook(sandbox, path, args.steps)
            print(json.dumps(result, indent=2), flush=True)
            results.append(result)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "notebooks.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
