"""Swap paging (``MADV_PAGEOUT``) cost: page-out and page-in of 256 MiB to 1 GiB.

    python -m benchmarks.swap --out DIR [--mib 256,512,1024] [--reps 3] [--dir PATH]

Writes DIR/swap.json and prints a table. Uses the machine's swap when it has
room enough; otherwise, as root, turns on a swap file of its own for the run
(in --dir, a directory on a disk, default the temporary directory or
/var/tmp when that is tmpfs) and always turns it off and removes it. Swap is
then on for the whole machine: run it alone. Without root and without swap,
or without MADV_PAGEOUT, it writes the reason instead of numbers.

For each size and repetition, one int64 array, every page written, and:

* **file write**: what file paging pays to write the same bytes (a new
  unnamed file in the same directory, ``pwrite``, ``fdatasync``);
* **page out**: ``swap.page_out`` of the array's whole pages (the writes are
  started; the pages leave RssAnon and stay in the swap cache);
* **page in, warm**: one read per page, while the pages are still in the swap
  cache (minor faults only);
* **page out again**: the same bytes, unchanged since: clean swap-cache pages
  are freed without being written;
* **page in, cold**: one read per page, now from the swap device;
* **page in, prefetched**: paged out again, then ``MADV_WILLNEED`` (Linux
  starts reading the whole range) and one read per page, timed together.

Every repetition checks the array's CRC-32 against the one before paging.
``pswpout``/``pswpin`` from /proc/vmstat say what went to and came from swap.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import zlib
from pathlib import Path

from greed_kernel.memory import procmaps, swap
from greed_kernel.memory.procmaps import PAGE

MiB = 1 << 20
GiB = 1 << 30
WRITE_CHUNK = 256 << 20


def _vmstat(*keys: str) -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/vmstat") as f:
        for line in f:
            name, _, value = line.partition(" ")
            if name in keys:
                values[name] = int(value)
    return values


def _rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _madvise() -> t.Any:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.madvise
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return fn


def _file_write(directory: str, lo: int, hi: int) -> float:
    """Seconds to write [lo, hi) to a new unnamed file and fdatasync it."""
    view = memoryview((ctypes.c_char * (hi - lo)).from_address(lo)).cast("B")
    t0 = time.perf_counter()
    fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        done = 0
        while done < hi - lo:
            done += os.pwrite(fd, view[done : done + WRITE_CHUNK], done)
        os.fdatasync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def _one(np: t.Any, directory: str, nbytes: int, rep: int) -> dict[str, t.Any]:
    madvise = _madvise()
    array = np.arange(nbytes // 8, dtype=np.int64) * (2 * rep + 3)
    crc = zlib.crc32(memoryview(array).cast("B"))
    lo = -(-array.ctypes.data // PAGE) * PAGE
    hi = (array.ctypes.data + array.nbytes) // PAGE * PAGE
    length = hi - lo
    pages = np.frombuffer((ctypes.c_char * length).from_address(lo), dtype=np.uint8)[::PAGE]
    row: dict[str, t.Any] = {"mib": nbytes // MiB, "rep": rep + 1, "bytes": length}

    def timed(key: str, fn: t.Callable[[], object]) -> None:
        before = _vmstat("pswpout", "pswpin")
        t0 = time.perf_counter()
        fn()
        row[f"{key}_s"] = seconds = time.perf_counter() - t0
        row[f"{key}_gib_s"] = length / seconds / GiB if seconds > 0 else None
        after = _vmstat("pswpout", "pswpin")
        row[f"{key}_swap_out_bytes"] = (after["pswpout"] - before["pswpout"]) * PAGE
        row[f"{key}_swap_in_bytes"] = (after["pswpin"] - before["pswpin"]) * PAGE

    row["file_write_s"] = _file_write(directory, lo, hi)
    row["file_write_gib_s"] = length / row["file_write_s"] / GiB
    rss = _rss_anon()
    timed("page_out", lambda: swap.page_out([(lo, hi)]))
    row["rss_anon_drop_bytes"] = rss - _rss_anon()
    row["swapped_bytes"] = swap.swapped_bytes([(lo, hi)])
    timed("page_in_warm", lambda: int(pages.sum()))
    timed("page_out_again", lambda: swap.page_out([(lo, hi)]))
    timed("page_in_cold", lambda: int(pages.sum()))
    swap.page_out([(lo, hi)])

    def prefetched() -> None:
        madvise(lo, length, mmap.MADV_WILLNEED)
        int(pages.sum())

    timed("page_in_prefetched", prefetched)
    row["identical"] = zlib.crc32(memoryview(array).cast("B")) == crc
    return row


TIMES = ("file_write", "page_out", "page_in_warm", "page_out_again", "page_in_cold")


def summarise(rows: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Per size: the median seconds and GiB/s of each step."""
    sizes: dict[str, t.Any] = {}
    for mib in sorted({r["mib"] for r in rows}):
        mine = [r for r in rows if r["mib"] == mib]
        entry: dict[str, t.Any] = {}
        for key in (*TIMES, "page_in_prefetched"):
            entry[f"{key}_s"] = statistics.median(r[f"{key}_s"] for r in mine)
            entry[f"{key}_gib_s"] = statistics.median(r[f"{key}_gib_s"] or 0 for r in mine)
        entry["swapped_fraction"] = min(r["swapped_bytes"] / r["bytes"] for r in mine)
        sizes[str(mib)] = entry
    return {"sizes": sizes, "identical": all(r["identical"] for r in rows)}


def _disk_directory(given: str | None) -> str:
    if given:
        return given
    default = tempfile.gettempdir()
    return "/var/tmp" if procmaps.is_ram_backed(default) else default


def _listed(path: str) -> bool:
    """Whether /proc/swaps lists `path` (a swapon that timed out may still have worked)."""
    try:
        with open("/proc/swaps") as f:
            return any(line.split()[:1] == [path] for line in f)
    except OSError:
        return False


class NoSwap(Exception):
    """No swap with room, and none could be turned on (the message says why)."""


@contextlib.contextmanager
def _swap_for(need: int, directory: str) -> t.Iterator[str]:
    """Swap with `need` bytes of room: the machine's, or a file of ours (as root)."""
    if swap.room() >= need:
        yield "the machine's swap"
        return
    if os.geteuid() != 0:
        raise NoSwap(f"swap room is {swap.room()} bytes and a swap file needs root")
    if procmaps.is_ram_backed(directory):
        raise NoSwap(f"{directory} is in RAM; a swap file needs a disk (--dir)")
    path = os.path.join(directory, f"greed-bench-swap-{os.getpid()}")
    on = False
    try:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, need)
            finally:
                os.close(fd)
            for command in (["mkswap", path], ["swapon", path]):
                done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    raise NoSwap(f"{command[0]} failed: {done.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as error:
            raise NoSwap(f"no swap file in {directory}: {error}") from error
        on = True
        fs = procmaps.filesystem_type(directory)
        yield f"a {need // MiB} MiB swap file on {fs}, for this run"
    finally:
        if on or _listed(path):
            subprocess.run(["swapoff", path], check=False, capture_output=True, timeout=600)
        with contextlib.suppress(OSError):
            os.unlink(path)


def measure(sizes_mib: list[int], reps: int, directory: str) -> dict[str, t.Any]:
    import numpy as np

    result: dict[str, t.Any] = {"sizes_mib": sizes_mib, "reps": reps, "kernel": os.uname().release}
    if not swap.supported():
        return result | {"skipped": "MADV_PAGEOUT is not supported here"}
    # twice the largest size plus a margin: Linux frees a swap slot on page-in when
    # swap is more than half full, and page_out_again then writes again
    need = 2 * max(sizes_mib) * MiB + 256 * MiB
    try:
        with _swap_for(need, directory) as where:
            result["swap"] = where
            result["directory_filesystem"] = procmaps.filesystem_type(directory)
            rows = [_one(np, directory, mib * MiB, rep) for mib in sizes_mib for rep in range(reps)]
    except NoSwap as error:
        return result | {"skipped": str(error)}
    return result | {"rows": rows, **summarise(rows)}


def _table(result: dict[str, t.Any]) -> str:
    if "skipped" in result:
        return f"swap: skipped: {result['skipped']}"
    lines = [
        f"swap paging ({result['swap']}), GiB/s, median of {result['reps']}",
        "MiB   file-write  page-out  in-warm  out-again  in-cold  in-prefetched",
    ]
    for mib, e in result["sizes"].items():
        lines.append(
            f"{mib:>5} {e['file_write_gib_s']:>10.2f} {e['page_out_gib_s']:>9.2f}"
            f" {e['page_in_warm_gib_s']:>8.2f} {e['page_out_again_gib_s']:>10.2f}"
            f" {e['page_in_cold_gib_s']:>8.2f} {e['page_in_prefetched_gib_s']:>14.2f}"
        )
    lines.append(f"identical: {result['identical']}")
    return "\n".join(lines)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that the swap file is turned off and removed


def main(argv: t.Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.swap")
    p.add_argument("--out", default="docs/benchmarks", help="output directory (swap.json)")
    p.add_argument("--mib", default="256,512,1024", help="comma-separated sizes in MiB")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dir", default=None, help="directory on a disk for the swap file")
    args = p.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    sizes = [int(s) for s in args.mib.split(",") if s.strip()]
    result = measure(sizes, args.reps, _disk_directory(args.dir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "swap.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
