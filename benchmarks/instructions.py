"""Instructions per trivial cell, counted by callgrind: the work of a cell, without the noise.

Latency differs by tens of microseconds between two processes of the same kernel on a
shared machine; the instructions a process executes for a cell do not (callgrind counts
them, in user space, over all the process's threads). So each kernel runs under
``valgrind --tool=callgrind`` with counting off until it is warm, then counts a batch of
cells of each code:

- ``python3``: the stock kernel;
- ``greed-detached``: a greed kernel with greed detached (``greed.unregister()``: no
  shell events, no tree hook; greed's ``do_execute`` remains, reading one flag per cell):
  the greed process doing python3's work, if it adds none;
- ``greed``: greed attached, its periodic cleanups and optimisations off, so that the
  count is the work greed adds to every cell;
- ``greed-defaults``: greed as installed; the periodic work (a full collection every 50
  cells) is then spread over the cells.

Each thread is counted apart (``--separate-threads=yes``): the main thread, which runs
the cells, repeats its count within a few thousand instructions per cell, where the
helper threads' polling moves the total by tens of thousands.

Instructions are not time: system calls, waiting and cache misses are not in them, and
python3's trivial cell spends most of its time there. They say where the extra work is,
not how long it takes. Needs ``valgrind`` (with ``callgrind_control``) on PATH; without
it the suite is skipped with a note.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import typing as t
from pathlib import Path

from .harness import Kernel
from .probes import DETACH
from .sandbox import Sandbox

Progress = t.Callable[[str], None]

CODES = ("x = 1", "x + 1")
_NO_PERIODIC = ("--GreedKernel.cleanup_interval=0", "--GreedKernel.optimize_interval=0")
#: (label, spec, kernel arguments, detach greed)
VARIANTS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("python3", "python3", (), False),
    ("greed-detached", "greed", _NO_PERIODIC, True),
    ("greed", "greed", _NO_PERIODIC, False),
    ("greed-defaults", "greed", (), False),
)


def missing() -> str | None:
    """Why the suite cannot run here (None: it can)."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH"
    return None


def _wrap_specs(sandbox: Sandbox, out: Path) -> None:
    """callgrind-python3 and callgrind-greed: the sandbox's specs run under callgrind,
    counting nothing until told to."""
    for spec in ("python3", "greed"):
        source = json.loads((sandbox.kernels_dir / spec / "kernel.json").read_text("utf-8"))
        source["argv"] = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            # a dump per thread: the main thread's count repeats within a few thousand
            # instructions per cell, where the helper threads' polling moves the total
            # by tens of thousands
            "--separate-threads=yes",
            f"--callgrind-out-file={out}/{spec}.%p",
            *source["argv"],
        ]
        source["display_name"] = f"{source['display_name']} (callgrind)"
        spec_dir = sandbox.kernels_dir / f"callgrind-{spec}"
        spec_dir.mkdir(exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps(source), encoding="utf-8")


def _control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=300
    )


def totals(path: Path) -> int:
    """The instructions counted in one callgrind dump (its ``totals:`` or ``summary:``)."""
    found: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("totals", "summary") and value.split():
                found[key] = int(value.split()[0])
    if not found:
        raise ValueError(f"{path.name}: no totals in the callgrind dump")
    return found.get("totals", found.get("summary", 0))


def counted(dumps: t.Iterable[Path]) -> tuple[int, int | None]:
    """The instructions in one dump's files: all threads, and the main thread's (the
    file ending in ``-01`` under ``--separate-threads=yes``; None without it)."""
    total, main = 0, None
    for path in dumps:
        n = totals(path)
        total += n
        if path.name.endswith("-01"):
            main = n
    return total, main


def _count(kernel: Kernel, out: Path, spec: str, code: str, cells: int) -> tuple[int, int | None]:
    """Instructions for *cells* cells of *code* (counting on only around them): all
    threads, and the main thread."""
    before = set(out.glob(f"{spec}.{kernel.pid}*"))
    _control(kernel.pid, "--zero")
    _control(kernel.pid, "--instr=on")
    for _ in range(cells):
        kernel.must_run(code)
    _control(kernel.pid, "--instr=off")
    _control(kernel.pid, "--dump")
    new = set(out.glob(f"{spec}.{kernel.pid}*")) - before
    if not new:
        raise RuntimeError(f"{kernel.label}: callgrind wrote no dump")
    return counted(new)


def instructions(
    sandbox: Sandbox,
    cells: int,
    warmup: int = 20,
    variants: t.Sequence[str] | None = None,
    progress: Progress = print,
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """Instructions per cell of each code on each variant (see the module docstring);
    *variants* names the ones to run (default: all of :data:`VARIANTS`)."""
    why = missing()
    if why is not None:
        progress(f"  instructions: skipped ({why})")
        return [], {"skipped": why, "cells": cells}
    out = sandbox.root / "callgrind"
    out.mkdir(exist_ok=True)
    _wrap_specs(sandbox, out)
    rows: list[dict[str, t.Any]] = []
    t0 = time.monotonic()
    for label, spec, args, detach in VARIANTS:
        if variants is not None and label not in variants:
            continue
        kernel = Kernel(sandbox, f"callgrind-{spec}", label, args)
        try:
            kernel.start(timeout=600)
            if detach:
                kernel.must_run(DETACH)
            for i in range(warmup):
                kernel.must_run(CODES[i % 2])
            for code in CODES:
                total, main = _count(kernel, out, spec, code, cells)
                rows.append(
                    {
                        "kernel": label,
                        "code": code,
                        "cells": cells,
                        "instructions": total,
                        "per_cell": round(total / cells),
                        "main_thread_instructions": main,
                        "main_per_cell": None if main is None else round(main / cells),
                    }
                )
        finally:
            kernel.shutdown()
        progress(f"  instructions: {label} counted, {time.monotonic() - t0:.0f} s")
    return rows, summarise(rows, cells)


def _strace_table(text: str) -> dict[str, int]:
    """Calls per system call (and ``total``) from ``strace -c``'s table."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) in (5, 6) and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    if "total" not in calls:
        raise ValueError("no total in strace's table")
    return calls


def syscalls(
    sandbox: Sandbox, cells: int, warmup: int = 20, progress: Progress = print
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """System calls per ``x = 1`` cell (``strace -c -f`` on the running kernel, all
    threads) of python3, greed detached and greed attached (periodic work off): the
    work in the OS that instructions do not count. The three kernels run side by side,
    cell by cell. Counts of ``futex`` (threads handing the GIL over) depend on timing;
    the others hardly do."""
    if shutil.which("strace") is None:
        progress("  syscalls: skipped (strace not found on PATH)")
        return [], {"skipped": "strace not found on PATH", "cells": cells}
    kernels = [
        Kernel(sandbox, spec, label, args)
        for label, spec, args, _ in VARIANTS
        if label in ("python3", "greed-detached", "greed")
    ]
    tracers: list[tuple[Kernel, subprocess.Popen[str]]] = []
    rows: list[dict[str, t.Any]] = []
    try:
        for k in kernels:
            k.start()
            if k.label == "greed-detached":
                k.must_run(DETACH)
            for i in range(warmup):
                k.must_run(CODES[i % 2])
        for k in kernels:
            threads = len(list(Path(f"/proc/{k.pid}/task").iterdir()))
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-p", str(k.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            tracers.append((k, tracer))
            assert tracer.stderr is not None
            attached = 0
            while attached < threads:  # "attached with N threads", or a line for each
                line = tracer.stderr.readline()
                if not line:
                    raise RuntimeError(f"strace could not attach to {k.label}: ptrace refused?")
                if " attached with " in line:
                    break
                attached += " attached" in line
        for _ in range(cells):
            for k in kernels:
                k.must_run("x = 1")
        for k, tracer in tracers:
            tracer.send_signal(signal.SIGINT)
            _, table = tracer.communicate(timeout=60)
            calls = _strace_table(table)
            rows.append(
                {
                    "kernel": k.label,
                    "cells": cells,
                    "syscalls": calls["total"],
                    "futex": calls.get("futex", 0),
                }
            )
    except (RuntimeError, ValueError) as e:
        progress(f"  syscalls: skipped ({e})")
        return [], {"skipped": str(e), "cells": cells}
    finally:
        for _, tracer in tracers:
            if tracer.poll() is None:
                tracer.kill()
        for k in kernels:
            k.shutdown()
    per_cell = {r["kernel"]: r["syscalls"] / cells for r in rows}
    futex = {r["kernel"]: r["futex"] / cells for r in rows}
    base = per_cell["python3"]
    result = {
        "cells": cells,
        "per_cell": {k: round(v, 1) for k, v in per_cell.items()},
        "futex_per_cell": {k: round(v, 1) for k, v in futex.items()},
        "added_percent": {
            k: round(100.0 * (v - base) / base, 2) for k, v in per_cell.items() if k != "python3"
        },
    }
    progress(
        "  syscalls per x = 1 cell: "
        + ", ".join(f"{k} {v:.1f} (futex {futex[k]:.1f})" for k, v in per_cell.items())
    )
    return rows, result


def summarise(rows: list[dict[str, t.Any]], cells: int) -> dict[str, t.Any]:
    """Per-cell instructions of each variant and code, and what each adds to python3's:
    all threads, and (where counted) the main thread's."""
    per_cell = {(r["kernel"], r["code"]): r["instructions"] / r["cells"] for r in rows}
    main_per_cell = {
        (r["kernel"], r["code"]): r["main_thread_instructions"] / r["cells"]
        for r in rows
        if r.get("main_thread_instructions") is not None
    }
    kernels: dict[str, t.Any] = {}
    for label, *_ in VARIANTS:
        mine = {code: per_cell[(label, code)] for code in CODES if (label, code) in per_cell}
        if not mine:
            continue
        entry: dict[str, t.Any] = {"per_cell": {c: round(v) for c, v in mine.items()}}
        if label != "python3":
            base = {code: per_cell[("python3", code)] for code in mine}
            entry["added_by_code"] = {c: round(v - base[c]) for c, v in mine.items()}
            entry["added_percent_by_code"] = {
                c: round(100.0 * (v - base[c]) / base[c], 3) for c, v in mine.items()
            }
            # the larger of the two codes, as the latency targets read it
            entry["added_percent"] = max(entry["added_percent_by_code"].values())
        main = {c: main_per_cell[(label, c)] for c in CODES if (label, c) in main_per_cell}
        if main:
            entry["main_per_cell"] = {c: round(v) for c, v in main.items()}
            base_main = {
                c: main_per_cell[("python3", c)] for c in main if ("python3", c) in main_per_cell
            }
            if label != "python3" and base_main:
                entry["main_added_by_code"] = {c: round(main[c] - base_main[c]) for c in base_main}
        kernels[label] = entry
    return {"cells": cells, "kernels": kernels}
