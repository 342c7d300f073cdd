"""Smoke run of the benchmarks (``python -m benchmarks --quick``): it completes and
writes every expected file with the expected keys. No timing is asserted."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent

CSV_COLUMNS = {
    "soak.csv": {"kernel", "cell", "kind", "expect", "status", "latency_ms", "rss_bytes"},
    "trivial.csv": {"kernel", "i", "code", "latency_ms"},
    "housekeeping.csv": {"sweep", "size", "op", "phase", "rep", "duration_ms", "tracked_objects"},
    "startup.csv": {"kernel", "rep", "seconds"},
}
HEADLINE = {
    "rss_growth_ratio",
    "peak_rss_ratio",
    "latency_ratio",
    "latency_paired_ratio",
    "latency_drift",
    "latency_drift_relative",
    "rss_growth_ratio_paced",
    "peak_rss_ratio_paced",
    "trivial_added_ms",
    "startup_ratio",
    "cleanup_ms",
    "cleanup_next_ms",
    "optimize_ms",
    "optimize_next_ms",
}
CHECKS = {"identical_result", "identical_result_paced", "state_preserved", "expected_statuses"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--cells", "20", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_writes_every_file(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    for name, columns in CSV_COLUMNS.items():
        with open(out / name, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows, name
        assert columns <= set(rows[0]), (name, rows[0].keys())
    for name in ("soak_rss.png", "soak_latency.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) < 500_000, name
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("# ")


def test_soak_rows_cover_every_kernel_and_cell(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    with open(out / "soak.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kernels = {r["kernel"] for r in rows}
    assert kernels == {"python3", "greed", "greed-paced"}
    for kernel in kernels:
        assert sorted(int(r["cell"]) for r in rows if r["kernel"] == kernel) == list(range(1, 21))


def test_summary_keys(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["quick"] is True
    env = summary["environment"]
    assert {"machine", "versions", "loadavg", "loadavg_start", "greed_kernel_source"} <= set(env)
    assert {"cores", "ram_bytes", "cpu_model"} <= set(env["machine"])
    assert {"python", "ipykernel", "IPython", "torch"} <= set(env["versions"])
    assert set(summary["results"]) == {"soak", "trivial", "housekeeping", "startup"}
    metrics = summary["headline"]["metrics"]
    assert set(metrics) >= HEADLINE
    for metric in metrics.values():
        assert {"label", "value", "unit", "target", "op", "met"} <= set(metric)
    assert set(summary["headline"]["checks"]) == CHECKS
    soak = summary["results"]["soak"]["kernels"]
    assert {"python3", "greed", "greed-paced"} == set(soak)
    for kernel in soak.values():
        assert {"rss_start", "rss_end", "rss_peak", "rss_growth", "latency_median_ms"} <= set(
            kernel
        )
        assert {"state_dict_sha256", "param_sum", "last_loss", "steps"} == set(kernel["result"])
    assert "greed_stats" in soak["greed"]
    housekeeping = summary["results"]["housekeeping"]
    for sweep in ("namespace", "objects"):
        assert housekeeping[sweep]
        for entry in housekeeping[sweep]:
            assert {"cleanup_first_ms", "cleanup_next_ms", "optimize_first_ms"} <= set(entry)
    # the printed table names every headline metric
    for metric in metrics.values():
        assert metric["label"] in stdout


def test_report_only_rewrites_from_the_data(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    before = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (out / "soak_rss.png").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--report-only", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert after["results"] == before["results"]
    assert after["headline"] == before["headline"]
    assert (out / "soak_rss.png").read_bytes().startswith(b"\x89PNG")
