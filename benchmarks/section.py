"""What a section of paging costs the kernel's other threads: the GIL is held while
a region is copied and remapped (greed_kernel/pageio.py), so a thread that wakes
every millisecond (as the kernel's IOPub thread wakes to send) waits up to one
region's copy. Cut smaller, the waits are shorter and there are more sections.

``python -m benchmarks.section --out DIR`` pages out a 1 GiB tensor with regions
of 16, 64 and 256 MiB, in alternating order, and writes ``DIR/section.json``: the
page-out's time and the longest wait of a thread sleeping 1 ms at a time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import typing as t
from pathlib import Path

MiB = 1 << 20
SIZES = (16, 64, 256)


def _one(region_mib: int, directory: str, nbytes: int) -> dict[str, t.Any]:
    import torch

    from greed_kernel.memory.paging import Pager
    from greed_kernel.memory.sizes import owned_buffers

    pager = Pager(directory, region_bytes=region_mib * MiB)
    tensor = torch.randn(nbytes // 4)
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:  # a plain time.sleep line: a known wait, paging goes on
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick, name="ticker")
    ticker.start()
    try:
        start = time.perf_counter()
        result = pager.page_out(owned_buffers(tensor))
        seconds = time.perf_counter() - start
    finally:
        stop.set()
        ticker.join()
    row = {
        "region_mib": region_mib,
        "paged_bytes": result.bytes,
        "page_out_s": seconds,
        "longest_wait_ms": max(gaps) * 1000 if gaps else None,
        "skipped": result.skipped,
    }
    del tensor
    pager.close()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.section")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
        for rep in range(args.reps):
            order = SIZES if rep % 2 == 0 else SIZES[::-1]
            rows += [_one(size, directory, args.mib * MiB) for size in order]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "section.json").write_text(json.dumps({"mib": args.mib, "rows": rows}, indent=1))
    for size in SIZES:
        mine = [r for r in rows if r["region_mib"] == size]
        waits = ", ".join(f"{r['longest_wait_ms']:.1f}" for r in mine)
        times = ", ".join(f"{r['page_out_s']:.2f}" for r in mine)
        print(
            f"region {size:>3} MiB: page-out {times} s; longest wait of a 1 ms sleeper {waits} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
