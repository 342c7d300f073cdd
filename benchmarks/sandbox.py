"""A private Jupyter sandbox for the benchmarks' kernels.

The sandbox is a temporary directory holding the kernel specs, all run by this
interpreter: ``python3`` (written by ``python -m ipykernel install --prefix``,
exactly what users of the stock kernel get), ``greed`` (written by
``greed_kernel.kernelspec.write_kernel_spec``) and ``python3-greed-modules``.
Jupyter, IPython and matplotlib read and write only inside it, and every kernel
gets its own IPython directory (its own history database), as a kernel does in
real use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from greed_kernel.kernelspec import write_kernel_spec

#: Environment variables that point Jupyter, IPython and matplotlib into the sandbox.
_SANDBOX_DIRS = {
    "HOME": "home",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTER_PATH": "path",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "mpl",
}


#: What the ``python3-greed-modules`` kernel runs: ipykernel_launcher's own steps (drop
#: the empty path entry, launch IPKernelApp), after importing greed's modules.
GREED_MODULES_LAUNCHER = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "import greed_kernel.kernel, greed_kernel.engine.greed\n"
    "import greed_kernel.frontends.channel, greed_kernel.frontends.magics\n"
    "from ipykernel.kernelapp import launch_new_instance\n"
    "launch_new_instance()"
)


class Sandbox:
    """A temporary Jupyter environment with the ``python3`` and ``greed`` specs."""

    def __init__(self, root: str | Path | None = None) -> None:
        self._own = root is None
        self.root = Path(tempfile.mkdtemp(prefix="greed-bench-") if root is None else root)
        self.env: dict[str, str] = dict(os.environ)
        for var, sub in _SANDBOX_DIRS.items():
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)
        self.env["JUPYTER_PLATFORM_DIRS"] = "1"
        # One thread per kernel everywhere (the workload also sets it in torch): the
        # kernels take turns, and a 2-core machine must not be oversubscribed.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            self.env[var] = "1"
        self.env.pop("MPLBACKEND", None)  # the workload picks Agg itself
        prefix = self.root / "prefix"
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix)],
            check=True,
            env=self.env,
            capture_output=True,
        )
        self.kernels_dir = prefix / "share" / "jupyter" / "kernels"
        write_kernel_spec(self.kernels_dir / "greed", executable=sys.executable)
        self._write_greed_modules_spec()
        self._kernel_count = 0
        self._saved_environ: dict[str, str] | None = None

    def _write_greed_modules_spec(self) -> None:
        """``python3-greed-modules``: the python3 spec, its kernel (IPythonKernel, nothing
        of greed running) started the way ipykernel_launcher starts it, after importing
        the modules a greed kernel imports."""
        spec = json.loads((self.kernels_dir / "python3" / "kernel.json").read_text("utf-8"))
        argv = spec["argv"]
        at = argv.index("-m")
        argv[at : at + 2] = ["-c", GREED_MODULES_LAUNCHER]
        spec["display_name"] = "Python 3 (ipykernel), greed's modules imported"
        target = self.kernels_dir / "python3-greed-modules"
        target.mkdir(exist_ok=True)
        (target / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")

    def activate(self) -> None:
        """Make this process use the sandbox too (connection files, runtime dir)."""
        if self._saved_environ is None:
            self._saved_environ = dict(os.environ)
            os.environ.update(self.env)

    def spec_manager(self) -> KernelSpecManager:
        """A spec manager that sees the sandbox's two specs and nothing else."""
        return KernelSpecManager(kernel_dirs=[str(self.kernels_dir)], ensure_native_kernel=False)

    def kernel_env(self) -> dict[str, str]:
        """The environment of a new kernel: the sandbox's, with a private IPython dir."""
        self._kernel_count += 1
        ipython_dir = self.root / "ipython" / f"kernel-{self._kernel_count}"
        ipython_dir.mkdir(parents=True, exist_ok=True)
        return {**self.env, "IPYTHONDIR": str(ipython_dir)}

    def cleanup(self) -> None:
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
