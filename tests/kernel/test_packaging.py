"""The wheel installs a `greed` kernel that Jupyter finds, and `install` writes working specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from greed_kernel import __version__
from greed_kernel.kernelspec import DISPLAY_NAME, LOGO_FILES, kernel_dict

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
LOGOS = ("logo-32x32.png", "logo-64x64.png")


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path
    env: dict[str, str]  # Jupyter dirs of its own, no JUPYTER_PATH: only what the venv installed
    cwd: Path  # outside the checkout, so `-m greed_kernel` can't import the source tree

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.python), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        timeout=120,
    )
    (path,) = out.glob("greed_kernel-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory, jupyter_sandbox) -> Venv:
    """A new virtualenv with only the wheel installed; its dependencies are borrowed
    from this interpreter's site-packages through a .pth file."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / "env")],
        check=True,
        timeout=120,
    )
    python = root / "env" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_borrowed_site_packages.pth").write_text("\n".join(sorted(borrowed)) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHON"))}
    for name in ("HOME", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        (root / name.lower()).mkdir()
        env[name] = str(root / name.lower())
    env["IPYTHONDIR"] = str(root / "home" / ".ipython")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    cwd = root / "work"
    cwd.mkdir()
    v = Venv(root=root / "env", python=python, env=env, cwd=cwd)
    # --ignore-installed: the editable install seen through the .pth is not ours to remove.
    v.run("-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel))
    return v


def test_static_spec_matches_ipykernel() -> None:
    """kernelspec/kernel.json (shipped in the wheel) is what `install` writes, bar the
    interpreter, and declares what ipykernel's own python3 spec declares."""
    from ipykernel.kernelspec import get_kernel_dict

    static = json.loads((REPO / "kernelspec" / "kernel.json").read_text())
    assert static == kernel_dict(executable="python")
    ipk = get_kernel_dict()
    assert static["metadata"] == ipk["metadata"]
    assert static["kernel_protocol_version"] == ipk["kernel_protocol_version"]
    assert static["argv"][1] == "-Xfrozen_modules=off"
    for logo in LOGO_FILES:
        assert (REPO / "kernelspec" / logo).is_file()


def test_wheel_contents(wheel: Path) -> None:
    assert wheel.name.startswith(f"greed_kernel-{__version__}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"greed_kernel-{__version__}.data/data/share/jupyter/kernels/greed"
    for logo in LOGO_FILES:
        assert f"{data}/{logo}" in names
    assert f"{data}/kernel.json" in names
    assert {"greed_kernel/__init__.py", "greed_kernel/__main__.py"} <= names
    assert "greed_kernel/frontends/protocol.schema.json" in names  # the comm protocol's one schema
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "scripts/"))]


def test_wheel_installs_the_spec(venv: Venv) -> None:
    where = venv.run("-c", "import greed_kernel; print(greed_kernel.__file__)").stdout
    assert Path(where.strip()).is_relative_to(venv.root)
    listing = json.loads(venv.run("-m", "jupyter_client.kernelspecapp", "list", "--json").stdout)
    greed = listing["kernelspecs"]["greed"]
    assert Path(greed["resource_dir"]) == venv.root / "share" / "jupyter" / "kernels" / "greed"
    assert greed["spec"]["display_name"] == DISPLAY_NAME
    assert greed["spec"]["argv"][:4] == ["python", "-Xfrozen_modules=off", "-m", "greed_kernel"]
    for logo in LOGOS:
        assert (Path(greed["resource_dir"]) / logo).stat().st_size > 0

    # --sys-prefix replaces it in place with one that names this interpreter.
    venv.run("-m", "greed_kernel", "install", "--sys-prefix")
    spec = json.loads((Path(greed["resource_dir"]) / "kernel.json").read_text())
    assert spec["argv"][0] == str(venv.python)


def test_install_prefix_starts_a_kernel(venv: Venv, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    first = venv.run("-m", "greed_kernel", "install", "--prefix", str(prefix))
    spec_dir = prefix / "share" / "jupyter" / "kernels" / "greed"
    assert str(spec_dir) in first.stdout
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][0] == str(venv.python)
    assert spec["display_name"] == DISPLAY_NAME
    for logo in LOGO_FILES:  # copied from the wheel's share/jupyter/kernels/greed
        assert (spec_dir / logo).is_file()

    # Twice is harmless: same spec, nothing else in the directory.
    venv.run("-m", "greed_kernel", "install", "--prefix", str(prefix))
    assert json.loads((spec_dir / "kernel.json").read_text()) == spec
    assert sorted(p.name for p in spec_dir.iterdir()) == sorted(["kernel.json", *LOGO_FILES])

    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    with KernelHarness(kernel_spec_manager=ksm, cwd=str(venv.cwd)) as k:
        result = k.execute(
            "import sys, greed_kernel\n"
            "print(sys.executable)\n"
            "print(greed_kernel.__file__)\n"
            "type(get_ipython().kernel).__name__"
        )
        assert result.status == "ok", result
        executable, module = result.stdout.split()
        assert executable == str(venv.python)
        assert Path(module).is_relative_to(venv.root)
        assert result.data == "'GreedKernel'"


def test_install_name_and_display_name(venv: Venv, tmp_path: Path) -> None:
    venv.run(
        "-m",
        "greed_kernel",
        "install",
        "--prefix",
        str(tmp_path),
        "--name",
        "greed-test",
        "--display-name",
        "Greed Test",
    )
    spec = json.loads((tmp_path / "share/jupyter/kernels/greed-test/kernel.json").read_text())
    assert spec["display_name"] == "Greed Test"
    assert not (tmp_path / "share/jupyter/kernels/greed").exists()


def test_install_user(venv: Venv) -> None:
    out = venv.run("-m", "greed_kernel", "install", "--user").stdout
    spec_dir = Path(venv.env["JUPYTER_DATA_DIR"]) / "kernels" / "greed"
    assert str(spec_dir) in out
    assert json.loads((spec_dir / "kernel.json").read_text())["argv"][0] == str(venv.python)


def test_install_bad_arguments(venv: Venv) -> None:
    for args in (["--bogus"], ["--user", "--prefix", "x"], ["--name", "no spaces"]):
        proc = venv.run("-m", "greed_kernel", "install", *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("usage: python -m greed_kernel install"), proc.stderr
        assert proc.stdout == ""


def test_install_help(venv: Venv) -> None:
    out = venv.run("-m", "greed_kernel", "install", "--help").stdout
    for option in ("--user", "--sys-prefix", "--prefix DIR", "--name NAME", "--display-name"):
        assert option in out


def test_help_all_lists_greed_traits(venv: Venv) -> None:
    out = venv.run("-m", "greed_kernel", "--help-all").stdout
    assert "--GreedKernel.cleanup_interval=<Int>" in out
    assert "Run a cleanup after every N user executions (0 disables)." in out
    assert "--GreedKernelApp.kernel_class" in out
