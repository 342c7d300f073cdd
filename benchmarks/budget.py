"""The budget suite: a session that outgrows a memory limit, on python3 and greed.

Each cell creates a block and reads the two before it; greed runs under
``--GreedKernel.memory_limit`` and pages out what the cells no longer read, python3
runs as it is. Once plainly, and once with a watchdog that kills a kernel whose
anonymous RSS passes the limit, as an out-of-memory killer would. After each cell,
greed's budget cleanup (if it ran one) is read from its comm.
"""

from __future__ import annotations

import contextlib
import typing as t

from .greedcomm import Comm, budget_cleanup, greed_stats
from .harness import Kernel, KernelError, Watchdog
from .kernels import MiB, Progress, ratio, rotated
from .sandbox import Sandbox

BUDGET_LIMIT = 1536 * MiB  # 1.5 GiB: --GreedKernel.memory_limit=1610612736

_BUDGET_SETUP = """\
import hashlib
import torch

torch.set_num_threads(1)
BLOCK_ITEMS = {items}


def make_block(i):
    block = torch.arange(BLOCK_ITEMS, dtype=torch.int64)
    return block.mul_(2 * i + 1)  # in place: one allocation per block


def read_block(block):
    return int(block.sum())  # reads every byte


def digest(block):
    return hashlib.sha256(memoryview(block.numpy())).hexdigest()[:16]
"""


def budget_cells(blocks: int) -> list[tuple[str, str]]:
    """The session: (kind, code). Cell i creates block i and reads blocks i-1 and
    i-2 (each block is read in the two cells after the one creating it); the last
    cell checks every block (a SHA-256 of its bytes)."""
    cells = []
    for i in range(1, blocks + 3):
        lines = [f"block_{i} = make_block({i})"] if i <= blocks else []
        reads = [j for j in (i - 1, i - 2) if 1 <= j <= blocks]
        lines.append("(" + "".join(f"read_block(block_{j}), " for j in reads) + ")")
        cells.append(("create" if i <= blocks else "read", "\n".join(lines)))
    cells.append(("check", f"[digest(globals()[f'block_{{i}}']) for i in range(1, {blocks + 1})]"))
    return cells


def _budget_session(
    kernels: list[Kernel],
    cells: list[tuple[str, str]],
    limit: int,
    session: str,
    watchdog: bool,
    progress: Progress,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Run the cells on every kernel, interleaved; with ``watchdog``, each kernel is
    killed as soon as its anonymous RSS passes ``limit``."""
    rows: list[dict[str, t.Any]] = []
    dogs = {k.label: Watchdog(k, limit) for k in kernels} if watchdog else {}
    comms = {k.label: Comm(k) for k in kernels if k.spec == "greed"}
    alive = list(kernels)
    out: dict[str, t.Any] = {
        k.label: {"killed": False, "outputs": [], "wall_s": 0.0, "completed_cells": 0}
        for k in kernels
    }
    with contextlib.ExitStack() as stack:
        for dog in dogs.values():
            stack.enter_context(dog)
        for comm in comms.values():
            stack.callback(_close_quietly, comm)
        for index, (kind, code) in enumerate(cells, start=1):
            for k in rotated(list(alive), index):
                r = out[k.label]
                try:
                    run = k.run(code, timeout=300)
                except KernelError as e:
                    dog = dogs.get(k.label)
                    r["killed"] = True
                    r["killed_at_cell"] = index
                    r["killed_anon"] = dog.killed[0] if dog and dog.killed else None
                    r["error"] = str(e).splitlines()[0]
                    alive.remove(k)
                    comms.pop(k.label, None)
                    progress(f"  budget ({session}): {k.label} died in cell {index}")
                    continue
                mem = k.memory()
                r["wall_s"] += run.latency_s
                r["completed_cells"] = index
                r["outputs"].append(run.result if run.status == "ok" else f"error {run.error}")
                row = {
                    "session": session,
                    "kernel": k.label,
                    "cell": index,
                    "kind": kind,
                    "status": run.status,
                    "latency_ms": round(run.latency_s * 1000.0, 3),
                    "rss_bytes": mem["rss"],
                    "rss_anon_bytes": mem["anon"],
                    "rss_file_bytes": mem["file"],
                    "rss_shmem_bytes": mem["shmem"],
                    "anon_ratio": round((mem["anon"] + mem["shmem"]) / limit, 4),
                    "trigger": "",
                    "pressure_before": "",
                    "pressure_after": "",
                    "paged_bytes": "",
                    "cleanup_ms": "",
                }
                if k.label in comms:
                    row.update(budget_cleanup(comms[k.label]))
                rows.append(row)
            if index % 10 == 0 or index == len(cells):
                progress(
                    f"  budget ({session}): cell {index}/{len(cells)}; anonymous RSS / limit: "
                    + ", ".join(
                        f"{r['kernel']} {r['anon_ratio']:.2f}" for r in rows if r["cell"] == index
                    )
                )
    for k in kernels:
        r = out[k.label]
        mine = [row for row in rows if row["kernel"] == k.label]
        anon = [row["rss_anon_bytes"] + row["rss_shmem_bytes"] for row in mine]
        r["anon_peak_after_cell"] = max(anon) if anon else None
        r["anon_peak_ratio"] = max(anon) / limit if anon else None
        r["watchdog_peak"] = dogs[k.label].peak if k.label in dogs else None
        r["rss_peak_after_cell"] = max((row["rss_bytes"] for row in mine), default=None)
        over = [row["cell"] for row in mine if row["anon_ratio"] > 1.0]
        r["first_cell_over_limit"] = over[0] if over else None
        r["cells_over_limit"] = len(over)
        r["cells_over_110pct"] = sum(1 for row in mine if row["anon_ratio"] > 1.10)
        r["memory_cleanups"] = sum(1 for row in mine if row["trigger"] == "memory")
        r["final"] = r["outputs"][-1] if r["completed_cells"] == len(cells) else None
    return rows, out


def budget(
    sandbox: Sandbox,
    blocks: int,
    block_mib: int,
    limit: int | None,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """A session of ``blocks`` blocks of ``block_mib`` MiB under a memory limit.

    greed runs with ``--GreedKernel.memory_limit=limit``; python3 as it is. Twice:
    a plain session (both run every cell; anonymous RSS recorded after each) and a
    session with a watchdog that SIGKILLs a kernel whose anonymous RSS (RssAnon +
    RssShmem, with its children) passes the limit, sampled every 20 ms.

    ``limit`` None (smoke runs): derived from python3's anonymous RSS after the
    setup cell, so that a tiny session still exercises the budget.
    """
    items = block_mib * MiB // 8
    cells = budget_cells(blocks)
    setup = _BUDGET_SETUP.format(items=items)
    results: dict[str, t.Any] = {
        "blocks": blocks,
        "block_bytes": block_mib * MiB,
        "cells": len(cells),
    }
    all_rows: list[dict[str, t.Any]] = []
    for session, watchdog in (("plain", False), ("watchdog", True)):
        kernels: list[Kernel] = []
        try:
            p3 = Kernel(sandbox, "python3", "python3")
            kernels.append(p3)
            p3.start()
            p3.must_run(setup)
            if limit is None:
                limit = p3.anon() + blocks * block_mib * MiB // 2
                results["limit_source"] = (
                    "python3's anonymous RSS after the setup cell + half the blocks"
                )
            results.setdefault("limit", limit)
            results.setdefault("limit_source", "fixed")
            g = Kernel(sandbox, "greed", "greed", (f"--GreedKernel.memory_limit={limit}",))
            kernels.append(g)
            g.start()
            g.must_run(setup)
            base = {k.label: k.memory() for k in kernels}
            rows, out = _budget_session(kernels, cells, limit, session, watchdog, progress)
            for label, r in out.items():
                r["memory_after_setup"] = base[label]
            if any(not r["killed"] for r in out.values()):
                for k in kernels:
                    if k.spec == "greed" and not out[k.label]["killed"]:
                        out[k.label]["greed_stats"] = greed_stats(k)
        finally:
            for k in kernels:
                k.shutdown()
        all_rows += rows
        results[session] = out
    plain, dog = results["plain"], results["watchdog"]
    reference = plain["python3"]["final"]
    ref_outputs = plain["python3"]["outputs"]
    for session in (plain, dog):
        for r in session.values():
            r["outputs_differing_from_python3"] = sum(
                1 for a, b in zip(r["outputs"], ref_outputs, strict=False) if a != b
            )
    for session in (plain, dog):
        for r in session.values():
            r["final_identical_to_python3"] = (
                None if reference is None or r["final"] is None else r["final"] == reference
            )
            r.pop("outputs", None)
    results["wall_ratio"] = ratio(plain["greed"]["wall_s"], plain["python3"]["wall_s"])
    results["python3_killed"] = dog["python3"]["killed"]
    results["greed_intact"] = (
        not dog["greed"]["killed"] and dog["greed"]["final_identical_to_python3"] is True
    )
    return all_rows, results


def _close_quietly(comm: Comm) -> None:
    """Close a comm whose kernel may have died meanwhile."""
    with contextlib.suppress(Exception):
        comm.close()
