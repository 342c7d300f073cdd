"""Every notebook in notebooks/ runs on the Greed kernel without a cell error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(180)

NOTEBOOKS = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb")
    if not p.name.endswith(".executed.ipynb")
)


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ has no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, jupyter_sandbox) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "greed"
    for cell in nb.cells:  # committed notebooks carry no outputs
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source
    NotebookClient(
        nb,
        kernel_name="greed",
        timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()  # raises CellExecutionError on the first failing cell
    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert ran
    errors = [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)
    ]
    assert not errors
