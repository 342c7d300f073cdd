"""Smoke run of the side-by-side demo (``scripts/demo.py``, what ``make demo`` runs) on a
short session: both kernels finish every cell, greed cleans up, the checksums agree.
No memory figure is asserted beyond greed ending below python3."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

# the demo's processes import these; this one need not (find_spec: no import at collection)
if importlib.util.find_spec("torch") is None:
    pytest.skip("the demo's session is a PyTorch one", allow_module_level=True)
if importlib.util.find_spec("matplotlib") is None:
    pytest.skip("the demo plots with matplotlib", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_agrees(tmp_path: Path) -> None:
    summary = tmp_path / "demo.json"
    command = [sys.executable, "scripts/demo.py", "--steps", "3", "--out", str(tmp_path)]
    proc = subprocess.run(
        [*command, "--json", str(summary)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["identical"] and result["values"] == 6 and not result["failures"]
    assert result["greed"]["cleanups"] >= 1
    assert result["greed"]["errorsReleased"] >= 1
    assert {"_temp_0", "_temp_1", "_temp_2"} <= set(result["greed"]["deleted"])
    assert result["end"]["greed"]["anon"] < result["end"]["python3"]["anon"]
    assert (tmp_path / "demo-memory.png").stat().st_size > 10_000
    assert "checksums of the 6 values the session computed: identical" in proc.stdout
