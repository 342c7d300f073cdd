"""Fixtures: a sandboxed Jupyter environment with the `greed` spec, and kernels in it."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from greed_kernel.kernelspec import KERNEL_NAME, write_kernel_spec

from kernel_harness import KernelHarness

# jsonschema (tests/protocol_schema.py) imports rfc3987_syntax, the optional checker of
# the "iri" format, when it is installed (jupyter_events installs it); it builds a
# grammar at import: 1.4 s of CPU in every test process. Our validators check no
# format, so the import is refused here: a None entry in sys.modules makes `import`
# raise ImportError, which jsonschema expects of an optional checker.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

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


# -- tiers ----------------------------------------------------------------------------
# A test's tier is its folder's: each folder's conftest.py marks the tests in it.
#   tests/unit       pure       pure logic, no kernel and no IPython shell
#   tests/inprocess  inprocess  an IPython shell or Greed's engine in the test process
#   tests/kernel     kernel     real kernel processes or other heavy subprocesses
#   tests/browser    browser    JupyterLab in a headless browser
# A module whose tests mix tiers is split, or goes to the heavier folder. `smoke` and
# `swap` are marked by the tests themselves. `make test-fast` runs pure and inprocess;
# `make test-matrix` runs those and `smoke`.
TIERS = ("pure", "inprocess", "kernel", "browser")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: every collected test is checked
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test without exactly one tier: a file outside the tier folders, or a test
    that marks itself with a tier other than its folder's."""
    wrong = [
        item.nodeid
        for item in items
        if sum(item.get_closest_marker(tier) is not None for tier in TIERS) != 1
    ]
    if wrong:
        raise pytest.UsageError(
            "each test needs exactly one tier marker, from its folder (tests/unit, "
            "tests/inprocess, tests/kernel or tests/browser); not so: " + ", ".join(wrong)
        )


@pytest.fixture(scope="module", autouse=True)
def _heap_frozen_per_module() -> None:
    """Before each test module, collect and move what is alive (torch, IPython,
    hypothesis, the modules and leftovers of earlier test files) to the permanent
    generation. The full collections that in-process shells and engines run (every
    IPython reset, every cleanup) then walk what this module made, not the whole heap
    of this worker again and again. What the tests themselves make is collected as
    before."""
    gc.collect()
    gc.freeze()


# -- optional dependencies ------------------------------------------------------------
# torch (and the like) are not installed everywhere: `make test-matrix` runs the suite
# on interpreters whose venvs have no torch. A test module that needs one of these when
# it is imported (an import, a skipif condition) is skipped as a whole, with the reason,
# instead of failing to collect. (Inside a test, use pytest.importorskip.)
OPTIONAL_MODULES = frozenset(
    {"torch", "numpy", "pandas", "matplotlib", "playwright", "pexpect", "sklearn"}
)


def _missing_optional(error: BaseException) -> str | None:
    """The optional module whose absence caused ``error`` (through its causes), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            root = current.name.partition(".")[0]
            if root in OPTIONAL_MODULES:
                return root
        current = current.__cause__ or current.__context__
    return None


class _OptionalDepsModule(pytest.Module):
    """A test module that, when an optional dependency it imports is missing, is skipped."""

    def _getobj(self) -> object:
        try:
            return super()._getobj()
        except pytest.Collector.CollectError as error:
            missing = _missing_optional(error)
            if missing is None:
                raise
            reason = f"{self.path.name} needs {missing}, not installed in this environment"
            raise pytest.skip.Exception(reason, allow_module_level=True) from None


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
    return _OptionalDepsModule.from_parent(parent, path=module_path)


@pytest.fixture
def runner_threads_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runner's own threads (pytest-xdist's execnet channel) and those other
    tests left are not the user's: paging in this process judges only the threads a
    test starts (tests/inprocess.py: only_new_threads)."""
    from inprocess import only_new_threads

    only_new_threads(monkeypatch)
