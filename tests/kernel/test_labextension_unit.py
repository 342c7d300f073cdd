"""The JupyterLab extension's committed build (greed_kernel/labextension) and its checks.

The JavaScript side (jest, eslint, prettier, the build compared with the committed one)
runs in scripts/check_labextension.sh, which CI runs (`make labext-check`): it needs Node
and labextension/node_modules. These tests need neither and always run: the committed
build is the source's package, complete, with the source's settings schemas and the
plugins they belong to; no `any` in the TypeScript; and the script runs every step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "labextension"
PREBUILT = REPO / "greed_kernel" / "labextension"
SCHEMAS = PREBUILT / "schemas" / "greed-kernel-lab"
CHECK = REPO / "scripts" / "check_labextension.sh"
PLUGINS = {
    "greed-kernel-lab:connections",
    "greed-kernel-lab:panel",
    "greed-kernel-lab:status-item",
}


def _bundle() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (PREBUILT / "static").glob("*.js"))


def test_prebuilt_extension_matches_the_source() -> None:
    """The committed build is the source's package (name, version), complete."""
    source = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))
    built = json.loads((PREBUILT / "package.json").read_text(encoding="utf-8"))
    assert built["name"] == source["name"] == "greed-kernel-lab"
    assert built["version"] == source["version"]
    assert built["dependencies"] == source["dependencies"]
    assert source["jupyterlab"]["outputDir"] == "../greed_kernel/labextension"
    assert source["jupyterlab"]["schemaDir"] == "schema"
    build = built["jupyterlab"]["_build"]
    assert (PREBUILT / build["load"]).is_file(), build
    assert re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", build["load"]), build
    # One remoteEntry: a rebuild replaces static/ whole, so no stale bundle stays behind.
    assert len(list((PREBUILT / "static").glob("remoteEntry.*.js"))) == 1
    install = json.loads((SOURCE / "install.json").read_text(encoding="utf-8"))
    assert install["packageManager"] == "python"
    assert install["packageName"] == "greed-kernel"


def test_prebuilt_schemas_are_the_sources() -> None:
    """Each settings schema is in the build as written, and belongs to a plugin in it."""
    sources = {p.name: p for p in (SOURCE / "schema").glob("*.json")}
    assert set(sources) == {"connections.json", "status-item.json"}, sorted(sources)
    built = {p.name for p in SCHEMAS.glob("*.json")}
    assert built == set(sources), f"schemas in the build {sorted(built)}, sources {sorted(sources)}"
    bundle = _bundle()
    for name, path in sources.items():
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert json.loads((SCHEMAS / name).read_text(encoding="utf-8")) == schema, name
        assert schema["additionalProperties"] is False, name
        # JupyterLab finds a plugin's schema by the part of its id after the colon.
        plugin = f"greed-kernel-lab:{name.removesuffix('.json')}"
        assert plugin in PLUGINS and plugin in bundle, plugin
    connections = json.loads((SCHEMAS / "connections.json").read_text(encoding="utf-8"))
    rate = connections["properties"]["refreshRate"]
    assert (rate["type"], rate["default"]) == ("number", 5), rate
    status = json.loads((SCHEMAS / "status-item.json").read_text(encoding="utf-8"))
    show = status["properties"]["showStatusItem"]
    assert (show["type"], show["default"]) == ("boolean", True), show


def test_prebuilt_bundle_has_every_plugin() -> None:
    bundle = _bundle()
    for plugin in sorted(PLUGINS):
        assert f'"{plugin}"' in bundle or f"'{plugin}'" in bundle, plugin
    assert "greed-kernel-lab:IGreedConnections" in bundle  # the service's token


def test_no_any_in_the_typescript() -> None:
    """No `any` (eslint forbids it too: @typescript-eslint/no-explicit-any is an error)."""
    config = (SOURCE / "eslint.config.mjs").read_text(encoding="utf-8")
    assert re.search(r"'@typescript-eslint/no-explicit-any':\s*'error'", config), config
    pattern = re.compile(r"(:\s*any\b|\bas any\b|<any>|\bany\[\])")
    offenders = [
        f"{path.relative_to(SOURCE)}:{n}: {line.strip()}"
        for path in sorted([*SOURCE.glob("src/*.ts"), *SOURCE.glob("test/*.ts")])
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_check_script_runs_every_step() -> None:
    """scripts/check_labextension.sh: executable, valid bash, every step, in order."""
    assert CHECK.is_file() and os.access(CHECK, os.X_OK), CHECK
    proc = subprocess.run(["bash", "-n", str(CHECK)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    text = CHECK.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    steps = [
        "jlpm install --immutable",
        "jlpm test --ci",
        "jlpm eslint:check",
        "jlpm prettier:check",
        "jlpm build:prod",
        "git status --porcelain",
    ]
    # each step, in this order, in the commands (not in the comments at the top)
    position = text.index("set -euo pipefail")
    for step in steps:
        found = text.find(step, position)
        assert found >= 0, f"{step!r} missing, or out of order"
        position = found + len(step)
    scripts = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))["scripts"]
    for name in ("test", "eslint:check", "prettier:check", "lint:check", "build:prod"):
        assert name in scripts, name
