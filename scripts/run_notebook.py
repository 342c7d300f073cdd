"""Run a notebook headlessly on the Greed kernel and summarise what happened.

    python scripts/run_notebook.py notebooks/quickstart.ipynb [--kernel greed] [--last 3]

Executes every cell with nbclient, saves the result next to the notebook as
NAME.executed.ipynb, and prints: cells run, errors, elapsed time, and the text
outputs of the last few code cells that produced any. Exit status 1 if a cell
raised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
import zmq
from nbclient import NotebookClient
from traitlets.config import Config


def cell_text(cell: nbformat.NotebookNode) -> str:
    """The text a reader would see under a code cell."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", "") + "\n")
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n")
    return "".join(parts).rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--kernel", default="greed", help="kernel name (default: greed)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--last", type=int, default=3, help="code cells to show at the end")
    args = parser.parse_args(argv)

    nb = nbformat.read(args.notebook, as_version=4)
    # The kernel spec declares CurveZMQ support: encrypt the connection when pyzmq can.
    config = Config()
    config.KernelManager.transport_encryption = "auto" if zmq.has("curve") else "disabled"
    client = NotebookClient(
        nb,
        config=config,
        kernel_name=args.kernel,
        timeout=args.timeout,
        allow_errors=True,
        resources={"metadata": {"path": str(args.notebook.resolve().parent)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start

    out_path = args.notebook.with_name(args.notebook.stem + ".executed.ipynb")
    nbformat.write(nb, out_path)

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code_cells if c.get("execution_count") is not None]
    failed = [
        c for c in code_cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    print(
        f"{args.notebook}: {len(ran)} code cells run on kernel {args.kernel!r} in {elapsed:.1f} s"
    )
    print(f"errors: {len(failed)}")
    print(f"saved:  {out_path}")
    shown = [c for c in code_cells if cell_text(c)][-args.last :] if args.last > 0 else []
    for cell in shown:
        print(f"\n--- Out [{cell.get('execution_count')}] " + "-" * 40)
        print(cell_text(cell))
    for cell in failed:
        print(f"\n!!! cell [{cell.get('execution_count')}] failed:\n{cell.source}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
