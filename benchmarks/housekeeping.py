"""The housekeeping suite: what a cleanup and an optimisation cost.

In one greed kernel, namespaces of growing size and growing numbers of gc-tracked
objects are created by user cells; after each creation a cleanup or an
optimisation is asked for on greed's comm (:mod:`benchmarks.greedcomm`), and its
report's duration kept.
"""

from __future__ import annotations

import ast
import typing as t
from collections.abc import Sequence

from .greedcomm import Comm
from .kernels import GREED, Progress, median, started
from .sandbox import Sandbox

_COUNT_EXPR = "(len(__import__('gc').get_objects()), __import__('gc').get_freeze_count())"

NAMESPACE_CREATE = (
    'globals().update({{f"v{{i}}": (i, str(i), [i], {{"k": i}}, float(i))[i % 5] '
    "for i in range({n})}})"
)
NAMESPACE_DELETE = (
    "for _k in [k for k in globals() if k[:1] == 'v' and k[1:].isdigit()]:\n"
    "    del globals()[_k]\n"
    "del _k"
)
# two gc-tracked objects per element: a tuple or a dict, and the list inside it
OBJECTS_CREATE = 'bench_objs = [(i, [i]) if i % 2 else {{"i": i, "l": [i]}} for i in range({half})]'
OBJECTS_DELETE = "del bench_objs"


def housekeeping(
    sandbox: Sandbox,
    namespace_sizes: Sequence[int],
    object_counts: Sequence[int],
    reps: int,
    first_reps: int,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Time a cleanup and an optimisation, each asked for on greed's comm (their
    reports' durationMs).

    In a greed kernel that imported torch and numpy, for each size and each
    operation: create the variables or objects (a user cell), run the operation
    once ("first": right after the creation), delete them and settle (an untimed
    cleanup); ``first_reps`` times. After the last first run, ``reps`` more runs
    time the steady state ("next"). With ``GreedKernel.gc_freeze`` off (the
    default now) every cleanup and optimisation does a full ``gc.collect(2)``
    over every tracked object, so first and next runs cost about the same; the
    ``frozen_objects`` column shows the permanent generation (0 unless frozen).
    """
    rows: list[dict[str, t.Any]] = []
    results: dict[str, t.Any] = {
        "reps": reps,
        "first_reps": first_reps,
        "namespace": [],
        "objects": [],
    }
    with started(sandbox, (GREED,)) as (k,), Comm(k) as comm:
        k.must_run("import gc\nimport numpy as np\nimport torch\ntorch.set_num_threads(1)")
        k.must_run("%greed preserve bench_objs")  # a long-lived structure, never paged
        comm_op(comm, "cleanup")  # settle: collect what the imports left
        sweeps = [
            ("namespace", n, NAMESPACE_CREATE.format(n=n), NAMESPACE_DELETE)
            for n in namespace_sizes
        ] + [
            ("objects", n, OBJECTS_CREATE.format(half=n // 2), OBJECTS_DELETE)
            for n in object_counts
        ]
        for sweep, size, create, delete in sweeps:
            entry: dict[str, t.Any] = {"size": size}
            for op in ("cleanup", "optimize"):
                for rep in range(first_reps):
                    k.must_run(create)
                    tracked, frozen = ast.literal_eval(k.evaluate(c=_COUNT_EXPR)["c"])
                    entry.setdefault("tracked_objects", tracked)
                    entry.setdefault("frozen_objects", frozen)
                    plan = [("first", rep)]
                    if rep == first_reps - 1:
                        plan += [("next", i) for i in range(reps)]
                    for phase, i in plan:
                        ms, collected, rss_before, rss_after = comm_op(comm, op)
                        rows.append(
                            {
                                "sweep": sweep,
                                "size": size,
                                "op": op,
                                "phase": phase,
                                "rep": i + 1,
                                "tracked_objects": tracked,
                                "frozen_objects": frozen,
                                "duration_ms": round(ms, 4),
                                "gc_collected": collected,
                                "rss_before": rss_before,
                                "rss_after": rss_after,
                            }
                        )
                    k.must_run(delete)
                    comm_op(comm, "cleanup")  # settle before the next creation
                for phase in ("first", "next"):
                    entry[f"{op}_{phase}_ms"] = median(
                        [
                            r["duration_ms"]
                            for r in rows
                            if (r["sweep"], r["size"], r["op"], r["phase"])
                            == (sweep, size, op, phase)
                        ]
                    )
            results[sweep].append(entry)
            progress(
                f"  housekeeping: {sweep} {size:,} ({entry['tracked_objects']:,} gc objects, "
                f"{entry['frozen_objects']:,} frozen): cleanup first "
                f"{entry['cleanup_first_ms']:.1f} ms, next "
                f"{entry['cleanup_next_ms']:.1f} ms; optimize first "
                f"{entry['optimize_first_ms']:.1f} ms, next {entry['optimize_next_ms']:.1f} ms"
            )
    return rows, results


def comm_op(comm: Comm, op: str) -> list[t.Any]:
    """Run a cleanup or an optimisation through the comm; its report's duration (ms),
    objects collected and RSS before and after."""
    r = comm.run(op)
    return [r["durationMs"], r.get("gcCollected"), r.get("rssBefore"), r.get("rssAfter")]
