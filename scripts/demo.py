"""The same leaky PyTorch session on the stock python3 kernel and on greed, side by side.

    python scripts/demo.py [--steps 12] [--out out/demo] [--json FILE] [--no-plot]

Both kernels run the same cells, taking turns cell by cell, in a throw-away Jupyter
directory (the `greed` spec is written there for this interpreter; `python3` is
ipykernel's own). Each step of the session leaks the way notebooks do:

* a 16 MiB feature tensor computed once and never used again (a stale value),
* a 16 MiB temporary named ``_temp_N``,
* an 8 MiB tensor displayed as a cell's result (so IPython's ``Out`` keeps it),
* a failing call whose traceback frame holds a 64 MiB tensor (``sys.last_traceback``).

Greed runs with a short ``recent_window`` (3 s instead of 300 s) and a cleanup every
20 executions (instead of 100), so the whole point fits in well under a minute; after
the last step and a pause of ``recent_window`` it is asked for one more cleanup. Then
both kernels' memory is read from /proc/PID/status (RssAnon: anonymous memory; VmRSS:
all resident memory), and a last cell prints a checksum (SHA-256 of the bytes) of
every value the session computed: greed's must equal python3's.

Prints a side-by-side table and greed's cleanups; saves a plot of both kernels' memory
cell by cell (OUT/demo-memory.png) unless --no-plot. OUT defaults to the checkout's
``out/demo``, which git ignores, so a run leaves the checkout clean; ``make
docs-pictures`` writes the plot the docs show (``--out docs``). Exit status 1 if a cell
failed unexpectedly or the checksums differ. Needs torch (and matplotlib for the plot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from greed_kernel.frontends.client import GreedClient
from greed_kernel.kernelspec import KERNEL_NAME, write_kernel_spec

MiB = 1 << 20
#: Where the plot goes without --out: ignored by git (.gitignore's /out/).
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "out" / "demo"
RECENT_WINDOW = 3.0
CLEANUP_INTERVAL = 20
GREED_ARGS = [
    f"--GreedKernel.recent_window={RECENT_WINDOW}",
    f"--GreedKernel.cleanup_interval={CLEANUP_INTERVAL}",
]
JUPYTER_DIRS = ("data", "config", "runtime", "path", "ipython", "home")

SETUP = """\
import hashlib
import torch

torch.set_num_threads(1)


def digest(t):
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


def seeded(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def diverge(i):
    workspace = seeded(10_000 + i, 4096, 4096)  # 64 MiB, held by the traceback
    raise RuntimeError(f"step {i}: loss is nan ({workspace.shape[0]} rows)")


results = {}
"""


def step_cells(i: int) -> list[tuple[str, bool]]:
    """The cells of step ``i``, each with whether it is meant to fail."""
    return [
        (f"feats_{i} = seeded({i}, 4096, 1024)  # 16 MiB, never used again", False),
        (f"_temp_{i} = feats_{i} * 2  # 16 MiB temporary", False),
        (f"results[{i}] = digest(_temp_{i})", False),
        (f"feats_{i}[:2048] + 1  # 8 MiB result: Out keeps it", False),
        (f"diverge({i})", True),
    ]


def check_cell(steps: int) -> str:
    values = ", ".join(f"'feats_{i}': digest(feats_{i})" for i in range(steps))
    return f"import json\nprint(json.dumps({{{values}, 'results': results}}, sort_keys=True))"


# -- kernels --------------------------------------------------------------------------
@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """Point every Jupyter and IPython directory at a temporary tree; write greed's spec."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="greed-demo-") as tmp:
        root = Path(tmp)
        for name in JUPYTER_DIRS:
            (root / name).mkdir()
        os.environ.update(
            HOME=str(root / "home"),
            JUPYTER_DATA_DIR=str(root / "data"),
            JUPYTER_CONFIG_DIR=str(root / "config"),
            JUPYTER_RUNTIME_DIR=str(root / "runtime"),
            JUPYTER_PATH=str(root / "path"),
            IPYTHONDIR=str(root / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        write_kernel_spec(root / "path" / "kernels" / KERNEL_NAME, executable=sys.executable)
        try:
            yield root
        finally:
            os.environ.clear()
            os.environ.update(saved)


def memory(pid: int) -> dict[str, int]:
    """RssAnon and VmRSS of a process, in bytes (0 when unreadable)."""
    found = {"anon": 0, "rss": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmRSS"):
                    found["anon" if key == "RssAnon" else "rss"] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


@dataclass
class Kernel:
    """A kernel process, a client, and what the session did on it."""

    name: str
    km: KernelManager
    kc: Any
    greed: GreedClient | None = None
    pid: int = 0
    samples: list[dict[str, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def run(self, code: str, expect_error: bool = False) -> str:
        """Run a cell; returns its stdout. Records a failure if it did not end as meant."""
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        start = time.perf_counter()
        if self.greed is not None:
            reply = self.greed.execute(code, timeout=120, output_hook=hook)
        else:
            reply = self.kc.execute_interactive(code, timeout=120, output_hook=hook)["content"]
        self.seconds += time.perf_counter() - start
        if (reply["status"] == "error") != expect_error:
            first = code.splitlines()[0] if code else ""
            self.failures.append(f"{first!r}: {reply['status']} {'; '.join(errors)}")
        self.samples.append(memory(self.pid))
        return "".join(out)


def start(name: str, args: list[str]) -> Kernel:
    km = KernelManager(kernel_name=name)
    km.start_kernel(extra_arguments=args)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=90)
    kernel = Kernel(name, km, kc)
    reply = kc.execute_interactive(
        "", silent=True, user_expressions={"pid": "__import__('os').getpid()"}, timeout=30
    )
    kernel.pid = int(reply["content"]["user_expressions"]["pid"]["data"]["text/plain"])
    if name == KERNEL_NAME:
        kernel.greed = GreedClient(kc)
    return kernel


def stop(kernel: Kernel) -> None:
    with contextlib.suppress(Exception):
        if kernel.greed is not None:
            kernel.greed.close()
    with contextlib.suppress(Exception):
        kernel.kc.stop_channels()
    with contextlib.suppress(Exception):
        kernel.km.shutdown_kernel(now=False)
    with contextlib.suppress(Exception):
        kernel.km.cleanup_resources()


# -- the session ----------------------------------------------------------------------
def session(kernels: list[Kernel], steps: int) -> dict[str, Any]:
    """Run the session on every kernel, taking turns cell by cell."""
    cells = [(SETUP, False)] + [cell for i in range(steps) for cell in step_cells(i)]
    for code, expect_error in cells:
        for k in kernels:
            k.run(code, expect_error)
    greed = next(k for k in kernels if k.greed is not None)
    time.sleep(RECENT_WINDOW)  # a pause to read the output: the last step is stale too
    assert greed.greed is not None
    greed.greed.cleanup()
    time.sleep(0.5)  # let paged memory leave
    end = {k.name: memory(k.pid) for k in kernels}
    checks = {k.name: k.run(check_cell(steps)) for k in kernels}
    after_check = {k.name: memory(k.pid) for k in kernels}
    parsed: dict[str, Any] = {}
    for name, text in checks.items():
        try:
            parsed[name] = json.loads(text)
        except ValueError:
            parsed[name] = None
    return {"end": end, "after_check": after_check, "checksums": parsed}


def cleanup_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What greed's cleanups did, from their reports (fields read with .get())."""
    reports = [e.get("report") or {} for e in events]
    reports = [r for r in reports if r.get("kind", "cleanup") == "cleanup"]

    def count(value: Any) -> int:
        if isinstance(value, list):
            return len(value)
        return int(value or 0)

    deleted: set[str] = set()
    paged: set[str] = set()
    for r in reports:
        deleted.update(r.get("deleted") or [])
        paged.update(r.get("paged") or [])
    last = reports[-1] if reports else {}
    paged_bytes = sum(int(r.get("pagedBytes") or 0) for r in reports)
    return {
        "cleanups": len(reports),
        "triggers": [r.get("trigger") for r in reports],
        "freedBytes": sum(int(r.get("freedBytes") or 0) for r in reports),
        "outputsReleased": sum(count(r.get("outputsReleased")) for r in reports),
        "errorsReleased": sum(bool(r.get("errorReleased")) for r in reports),
        "deleted": sorted(deleted),
        "paged": sorted(paged),
        "pagedBytes": paged_bytes,
        "last": {
            key: last.get(key)
            for key in (
                "trigger",
                "freedBytes",
                "outputsReleased",
                "errorReleased",
                "deleted",
                "paged",
                "pagedBytes",
            )
            if key in last
        },
    }


# -- output ---------------------------------------------------------------------------
def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MiB:,.0f} MiB"


def wrap_items(items: list[str], width: int = 88) -> str:
    """``items`` joined by '; ', broken into lines between items only."""
    lines = [items[0]]
    for item in items[1:]:
        if len(lines[-1]) + 2 + len(item) + 1 > width:
            lines[-1] += ";"
            lines.append(item)
        else:
            lines[-1] += "; " + item
    return "\n".join(lines)


def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            f"{row[0]:<{widths[0]}}   {row[1]:>{widths[1]}}   {row[2]:>{widths[2]}}".rstrip()
        )
        if n == 0:
            lines.append("-" * (sum(widths) + 6))
    return "\n".join(lines)


def plot(kernels: list[Kernel], greed_cleanups: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    colours = {"python3": "#d62728", KERNEL_NAME: "#2ca02c"}
    for k in kernels:
        xs = range(1, len(k.samples) + 1)
        colour = colours.get(k.name)
        ax.plot(xs, [s["anon"] / MiB for s in k.samples], color=colour, label=f"{k.name} RssAnon")
        ax.plot(
            xs,
            [s["rss"] / MiB for s in k.samples],
            color=colour,
            linestyle="--",
            linewidth=1,
            label=f"{k.name} VmRSS",
        )
    for n, cell in enumerate(greed_cleanups):
        ax.axvline(cell, color="#2ca02c", alpha=0.25, label="greed cleanup" if n == 0 else None)
    ax.set_xlabel("cell")
    ax.set_ylabel("kernel memory (MiB)")
    ax.set_title("The same leaky PyTorch session on python3 and on greed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="leaky steps (5 cells each)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where the plot goes ({DEFAULT_OUT})"
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with sandbox():
        kernels: list[Kernel] = []
        try:
            kernels.append(start("python3", []))
            kernels.append(start(KERNEL_NAME, GREED_ARGS))
            greed = kernels[1]
            assert greed.greed is not None
            events: list[dict[str, Any]] = []
            cleanup_cells: list[int] = []

            def on_cleanup(event: dict[str, Any]) -> None:
                events.append(event)
                cleanup_cells.append(len(greed.samples) + 1)

            greed.greed.on("execution:cleanup", on_cleanup)
            result = session(kernels, args.steps)
            greed.greed.poll(0.5)
        finally:
            for k in kernels:
                stop(k)
    elapsed = time.perf_counter() - started

    py3, gr = kernels
    sums = result["checksums"]
    identical = sums["python3"] is not None and sums["python3"] == sums[KERNEL_NAME]
    n_values = len(sums["python3"] or {}) - 1 + len((sums["python3"] or {}).get("results", {}))
    done = cleanup_summary(events)
    end, after = result["end"], result["after_check"]

    def peak(k: Kernel, key: str) -> int:
        return max((s[key] for s in k.samples), default=0)

    def row(label: str, values: dict[str, dict[str, int]], key: str) -> tuple[str, str, str]:
        return (label, mib(values["python3"][key]), mib(values[KERNEL_NAME][key]))

    peaks = {k.name: {"anon": peak(k, "anon"), "rss": peak(k, "rss")} for k in kernels}
    rows = [
        ("", "python3", "greed"),
        ("cells run", str(len(py3.samples)), str(len(gr.samples))),
        ("time in cells", f"{py3.seconds:.1f} s", f"{gr.seconds:.1f} s"),
        row("anonymous memory (RssAnon) at the end", end, "anon"),
        row("resident memory (VmRSS) at the end", end, "rss"),
        row("peak RssAnon", peaks, "anon"),
        row("peak VmRSS", peaks, "rss"),
        row("RssAnon after the checksum cell", after, "anon"),
        row("VmRSS after the checksum cell", after, "rss"),
    ]
    config = (gr.greed.hello.get("config") or {}) if gr.greed is not None else {}
    print(
        f"greed ran with evict={config.get('evict', '?')}, recent_window={RECENT_WINDOW:g} s, "
        f"cleanup_interval={CLEANUP_INTERVAL}\n"
    )
    print(table(rows))
    verdict = "identical" if identical else "DIFFERENT"
    print(f"\nchecksums of the {n_values} values the session computed: {verdict}")
    temporaries = [n for n in done["deleted"] if n.startswith("_temp_")]
    items = [
        f"greed: {done['cleanups']} cleanups ({', '.join(map(str, done['triggers']))})",
        f"RSS freed {mib(done['freedBytes'])}",
        f"output-cache entries released {done['outputsReleased']}",
        f"stored errors released {done['errorsReleased']}",
        f"temporaries deleted {len(temporaries)}",
        f"values paged out {len(done['paged'])} ({mib(done['pagedBytes'])})",
    ]
    print(wrap_items(items))
    print(f"last cleanup report: {json.dumps(done['last'])}")
    failures = [f"{k.name}: {f}" for k in kernels for f in k.failures]
    for failure in failures:
        print(f"!!! unexpected: {failure}", file=sys.stderr)
    if not args.no_plot:
        path = args.out / "demo-memory.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        plot(kernels, cleanup_cells, path)
        print(f"plot: {path}")
    print(f"demo: {elapsed:.0f} s in all")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "identical": identical,
                    "values": n_values,
                    "end": end,
                    "afterCheck": after,
                    "peak": peaks,
                    "greed": done,
                    "failures": failures,
                    "seconds": elapsed,
                },
                indent=1,
            )
            + "\n"
        )  # fmt: skip
    return 0 if identical and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
