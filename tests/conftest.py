"""Fixtures: a sandboxed Jupyter environment with the `greed` spec, and kernels in it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from greed_kernel.kernelspec import KERNEL_NAME, write_kernel_spec

from kernel_harness import KernelHarness

SANDBOX_VARS = (
    "HOME",
    "JUPYTER_DATA_DIR",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_PATH",
    "IPYTHONDIR",
    "JUPYTER_PLATFORM_DIRS",
)


@dataclass(frozen=True)
class Sandbox:
    root: Path
    env: dict[str, str]  # the whole environment tests run in (os.environ while active)
    spec_dir: Path  # where the `greed` spec is

    def environ(self, **overrides: str | None) -> dict[str, str]:
        """A copy of the sandbox environment, for subprocesses; None removes a variable."""
        env = dict(os.environ)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


@pytest.fixture(scope="session", autouse=True)
def jupyter_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Point every Jupyter and IPython directory at a temporary tree for the session.

    No test reads or writes the real user's Jupyter files, and the `greed` spec
    the tests start is this checkout's, run by this interpreter.
    """
    root = tmp_path_factory.mktemp("jupyter")
    values = {
        "HOME": root / "home",
        "JUPYTER_DATA_DIR": root / "data",
        "JUPYTER_CONFIG_DIR": root / "config",
        "JUPYTER_RUNTIME_DIR": root / "runtime",
        "JUPYTER_PATH": root / "path",
        "IPYTHONDIR": root / "ipython",
    }
    for path in values.values():
        path.mkdir(parents=True)
    saved = {key: os.environ.get(key) for key in SANDBOX_VARS}
    os.environ.update({key: str(path) for key, path in values.items()})
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    spec_dir = write_kernel_spec(
        values["JUPYTER_PATH"] / "kernels" / KERNEL_NAME, executable=sys.executable
    )
    try:
        yield Sandbox(root=root, env=dict(os.environ), spec_dir=spec_dir)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def kernel(jupyter_sandbox: Sandbox) -> Iterator[KernelHarness]:
    """One Greed kernel with the default configuration, shared by a test module."""
    with KernelHarness() as k:
        yield k


@pytest.fixture
def new_kernel(
    jupyter_sandbox: Sandbox,
) -> Iterator[Callable[..., contextlib.AbstractContextManager[KernelHarness]]]:
    """Factory of private kernels: ``with new_kernel("--GreedKernel.x=1") as k: ...``."""
    started: list[KernelHarness] = []

    @contextlib.contextmanager
    def factory(*extra_arguments: str, **kwargs: object) -> Iterator[KernelHarness]:
        k = KernelHarness(*extra_arguments, **kwargs)  # type: ignore[arg-type]
        started.append(k)
        try:
            yield k
        finally:
            k.shutdown()

    yield factory
    for k in started:  # a test that forgot its `with` still frees the process
        k.shutdown()
