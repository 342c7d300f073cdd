"""The JupyterLab extension's unit tests (jest, labextension/test/) and its committed build.

`jlpm test` needs labextension/node_modules (`make labext`, which CI does not run): the
jest test is skipped without it. The checks of the prebuilt output in
greed_kernel/labextension, which `pip install` ships, need no Node and always run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "labextension"
PREBUILT = REPO / "greed_kernel" / "labextension"


def _jlpm() -> str | None:
    """The jlpm next to this interpreter (the venv's), else one on PATH."""
    here = Path(sys.executable).parent / ("jlpm.exe" if os.name == "nt" else "jlpm")
    return str(here) if here.exists() else shutil.which("jlpm")


def test_jest_unit_tests() -> None:
    if not (SOURCE / "node_modules").is_dir():
        pytest.skip(
            "labextension/node_modules is missing: run `make labext` (Node.js and jlpm) "
            "to install the extension's JavaScript dependencies and run its jest tests"
        )
    jlpm = _jlpm()
    if jlpm is None or shutil.which("node") is None:
        pytest.skip("jlpm or node is not on this machine (install the `lab` extra and Node.js)")
    proc = subprocess.run(
        [jlpm, "test", "--ci"],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "CI": "true", "FORCE_COLOR": "0"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = re.search(r"Tests:\s+(?:(\d+) failed, )?(\d+) passed", out)
    assert summary and not summary.group(1), out[-3000:]
    assert int(summary.group(2)) >= 20, out[-3000:]


def test_prebuilt_extension_matches_the_source() -> None:
    """The committed build is the source's package (name, version), complete."""
    source = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))
    built = json.loads((PREBUILT / "package.json").read_text(encoding="utf-8"))
    assert built["name"] == source["name"] == "greed-kernel-lab"
    assert built["version"] == source["version"]
    assert source["jupyterlab"]["outputDir"] == "../greed_kernel/labextension"
    build = built["jupyterlab"]["_build"]
    assert (PREBUILT / build["load"]).is_file(), build
    assert re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", build["load"]), build
    # One remoteEntry: a rebuild replaces static/ whole, so no stale bundle stays behind.
    assert len(list((PREBUILT / "static").glob("remoteEntry.*.js"))) == 1
    install = json.loads((SOURCE / "install.json").read_text(encoding="utf-8"))
    assert install["packageManager"] == "python"
    assert install["packageName"] == "greed-kernel"
