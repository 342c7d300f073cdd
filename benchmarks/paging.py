"""Paging cost against raw file I/O of the same bytes, in a fresh process.

    python -m benchmarks.paging [--mib 512] [--reps 5]   # prints one JSON object

Run by the ``paging`` suite (``python -m benchmarks --only paging``) in a
subprocess of its own, so that nothing else lives in its heap. For each
repetition it allocates two tensors of the same size with the same contents,
A and B (int64, resident, every page written), and then:

* **write**: a raw write of A's whole pages to a new unnamed file in the
  directory greed's ``Pager`` uses (``O_TMPFILE``, ``posix_fallocate``,
  ``pwrite`` in 256 MiB chunks, ``fdatasync``: what the pager does) against
  ``Pager.page_out`` of B (which also reads /proc/self/maps and maps the file
  over B). The order of the two alternates between repetitions.
* **first use, warm**: B's first full read after paging (``B.sum()``: every
  page faults in from the page cache, which still holds what was just
  written) against the same sum over resident A and against a raw ``preadv``
  of A's file into a resident buffer (page cache, also warm).
* **first use, cold**: the same after dropping those pages from the page cache
  (``madvise(MADV_DONTNEED)`` on B's now file-backed range, then
  ``posix_fadvise(POSIX_FADV_DONTNEED)`` on both files; clean pages only, so
  nothing is lost). ``read_bytes`` from /proc/self/io says how much really came
  from the disk.

Every sum is checked against A's: paging must not change a bit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import os
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from .sandbox import Sandbox

MiB = 1 << 20
WRITE_CHUNK = 256 << 20


def _io_read_bytes() -> int | None:
    """Bytes this process caused to be read from storage (/proc/self/io)."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _view(address: int, length: int) -> memoryview:
    return memoryview((ctypes.c_char * length).from_address(address)).cast("B")


def _timed(fn: t.Callable[[], t.Any]) -> tuple[float, t.Any, int | None]:
    before = _io_read_bytes()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    after = _io_read_bytes()
    return seconds, value, None if before is None or after is None else after - before


def _raw_write(directory: str, lo: int, hi: int) -> int:
    """Write [lo, hi) of our memory to a new unnamed file as the pager does; its fd."""
    fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    with contextlib.suppress(OSError):
        os.posix_fallocate(fd, 0, hi - lo)
    done = 0
    while done < hi - lo:
        n = min(WRITE_CHUNK, hi - lo - done)
        done += os.pwrite(fd, _view(lo + done, n), done)
    os.fdatasync(fd)
    return fd


def _raw_read(fd: int, into: memoryview) -> int:
    done = 0
    while done < len(into):
        n = os.preadv(fd, [into[done : done + WRITE_CHUNK]], done)
        if n <= 0:
            raise OSError("short read")
        done += n
    return done


def measure(mib: int, reps: int) -> dict[str, t.Any]:
    import torch

    from greed_kernel.memory import paging, procmaps

    torch.set_num_threads(1)

    pager = paging.Pager()
    directory = str(pager.directory())
    rows = [_one_rep(torch, pager, directory, mib * MiB // 8, rep) for rep in range(reps)]
    return {
        "mib": mib,
        "reps": reps,
        "directory_filesystem": procmaps.filesystem_type(directory),
        "rows": rows,
        **summarise(rows),
    }


def _one_rep(torch: t.Any, pager: t.Any, directory: str, n: int, rep: int) -> dict[str, t.Any]:
    from greed_kernel.memory import pageio, paging
    from greed_kernel.memory.sizes import owned_buffers

    a = torch.arange(n, dtype=torch.int64).mul_(2 * rep + 3)
    b = a.clone()
    expected = int(a.sum())
    (ptr_b, nbytes_b, owner_b), *_ = owned_buffers(b)
    ptr_a = a.data_ptr()
    lo_a, hi_a = paging.whole_pages(ptr_a, n * 8) or (ptr_a, ptr_a)
    buffer = torch.empty(hi_a - lo_a, dtype=torch.uint8)
    buffer.fill_(1)  # resident: the read does not pay for faulting its pages in
    into = _view(buffer.data_ptr(), hi_a - lo_a)
    row: dict[str, t.Any] = {"rep": rep + 1, "bytes": n * 8}
    checks = []

    def raw_read() -> int:
        return _raw_read(fd_a, into)

    def paged_sum() -> int:
        value = int(b.sum())
        checks.append(value)
        return value

    def resident_sum() -> int:
        value = int(a.sum())
        checks.append(value)
        return value

    order = ("raw", "page") if rep % 2 == 0 else ("page", "raw")
    row["write_order"] = "/".join(order)
    for what in order:
        if what == "raw":
            row["raw_write_s"], fd_a, _ = _timed(lambda: _raw_write(directory, lo_a, hi_a))
            row["raw_write_bytes"] = hi_a - lo_a
        else:
            buffers = [(ptr_b, nbytes_b, owner_b)]
            row["page_out_s"], result, _ = _timed(lambda b=buffers: pager.page_out(b))
            row["page_out_bytes"] = result.bytes
            row["page_out_own_s"] = result.seconds
            row["page_out_skipped"] = dict(result.skipped)
    if row["page_out_bytes"] <= 0:
        raise RuntimeError(f"nothing was paged out: {row['page_out_skipped']}")
    fd_b = os.dup(pager.paged.current.fd)  # the paging file, to drop its cache
    # first use, warm page cache (A's pages are resident; both files are cached)
    for what in ("resident", "raw", "paged") if rep % 2 == 0 else ("paged", "raw", "resident"):
        if what == "resident":
            row["resident_sum_s"], _, _ = _timed(resident_sum)
        elif what == "raw":
            row["raw_read_warm_s"], _, row["raw_read_warm_io"] = _timed(raw_read)
        else:
            row["paged_sum_warm_s"], _, row["paged_sum_warm_io"] = _timed(paged_sum)
    # first use, cold: drop the (clean) pages from the page cache, then again
    lo_b, hi_b = paging.whole_pages(ptr_b, nbytes_b) or (ptr_b, ptr_b)
    pageio.libc().madvise(lo_b, hi_b - lo_b, mmap.MADV_DONTNEED)
    for fd in (fd_a, fd_b):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    for what in ("raw", "paged") if rep % 2 == 0 else ("paged", "raw"):
        if what == "raw":
            row["raw_read_cold_s"], _, row["raw_read_cold_io"] = _timed(raw_read)
        else:
            row["paged_sum_cold_s"], _, row["paged_sum_cold_io"] = _timed(paged_sum)
    row["identical"] = all(v == expected for v in checks) and len(checks) == 3
    os.close(fd_a)
    os.close(fd_b)
    return row


def summarise(rows: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Medians and the ratios against the targets."""

    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(values) if values else None

    def ratio(a: str, b: str) -> float | None:
        values = [r[a] / r[b] for r in rows if r.get(a) is not None and r.get(b)]
        return statistics.median(values) if values else None

    keys = (
        "raw_write_s",
        "page_out_s",
        "page_out_own_s",
        "resident_sum_s",
        "raw_read_warm_s",
        "paged_sum_warm_s",
        "raw_read_cold_s",
        "paged_sum_cold_s",
        "raw_read_warm_io",
        "paged_sum_warm_io",
        "raw_read_cold_io",
        "paged_sum_cold_io",
    )
    return {
        "median": {k: med(k) for k in keys},
        # per repetition, then the median: the two ran back to back
        "write_ratio": ratio("page_out_s", "raw_write_s"),
        "read_ratio_warm": ratio("paged_sum_warm_s", "raw_read_warm_s"),
        "read_ratio_cold": ratio("paged_sum_cold_s", "raw_read_cold_s"),
        "paged_vs_resident_warm": ratio("paged_sum_warm_s", "resident_sum_s"),
        "identical": all(r["identical"] for r in rows),
    }


def suite(
    sandbox: Sandbox, mib: int, reps: int, progress: t.Callable[[str], None] = print
) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """The paging suite: this module in a fresh process (``python -m
    benchmarks.paging``, the sandbox's environment); its rows and results."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.paging", "--mib", str(mib), "--reps", str(reps)],
        cwd=Path(__file__).resolve().parent.parent,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.paging failed:\n{proc.stderr[-3000:]}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = results.pop("rows")
    csv_rows = [
        {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()} for r in rows
    ]
    m = results["median"]
    progress(
        f"  paging {mib} MiB x {reps}: page_out {m['page_out_s']:.3f} s vs raw write "
        f"{m['raw_write_s']:.3f} s; first use warm {m['paged_sum_warm_s']:.3f} s vs raw read "
        f"{m['raw_read_warm_s']:.3f} s (resident sum {m['resident_sum_s']:.3f} s); cold "
        f"{m['paged_sum_cold_s']:.3f} s vs {m['raw_read_cold_s']:.3f} s"
    )
    return csv_rows, results


def main(argv: t.Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paging")
    p.add_argument("--mib", type=int, default=512)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    json.dump(measure(args.mib, args.reps), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
