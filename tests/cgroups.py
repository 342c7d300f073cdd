"""Real memory cgroups for the kernel tests: a child cgroup with a limit (v1 or v2,
whichever the machine has), kernel specs whose process starts inside it as a spawner
would start a kernel in a container, and running cells until the kernel dies.

See the notes on memory cgroups: the process must be in the cgroup when it starts, and
every child cgroup a test makes is removed, even when the test fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kernel_harness import ExecResult, KernelHarness

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    """A child memory cgroup of our own, with a limit (cgroup v1 or v2)."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


def _own_memory_cgroup() -> tuple[Path, bool] | None:
    """Our own memory cgroup's directory, and whether it is cgroup v2."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(","):
            return CGROUP_ROOT / "memory" / rel.lstrip("/"), False
    for line in lines:
        hierarchy, controllers, rel = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            return CGROUP_ROOT / rel.lstrip("/"), True
    return None


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Cgroup]:
    """A fresh child cgroup limited to *limit* bytes, removed afterwards (skips the
    test where none can be made: not Linux, not root, no writable memory controller).
    What is still in it at the end was started by the test: it is killed."""
    own = _own_memory_cgroup()
    if own is None or not os.access(own[0], os.W_OK):
        pytest.skip("needs a writable memory cgroup (Linux, root)")
    parent, v2 = own
    path = parent / f"greed-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot make a memory cgroup under {parent}: {e}")
    try:
        limit_file = path / ("memory.max" if v2 else "memory.limit_in_bytes")
        if not limit_file.exists():
            pytest.skip(f"no memory controller in {path}")
        limit_file.write_text(str(limit))
        # no swap either, should a test have turned it on: over the limit is a kill
        swap, value = ("memory.swap.max", "0") if v2 else ("memory.memsw.limit_in_bytes", limit)
        with contextlib.suppress(OSError):  # no swap accounting in this kernel
            (path / swap).write_text(str(value))
        yield Cgroup(path, v2)
    finally:
        _remove_cgroup(path)


def _remove_cgroup(path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError, ValueError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # busy until the killed processes are gone
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cgroup_specs(directory: Path, cgroup: Cgroup, greed_spec: Path) -> KernelSpecManager:
    """python3 and greed specs whose processes start inside *cgroup*, as a spawner
    starts a kernel in a container: a shell moves itself in, then execs the kernel."""
    enter = f'echo $$ > {cgroup.path / "cgroup.procs"} && exec "$@"'
    greed = json.loads((greed_spec / "kernel.json").read_text())
    python3 = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "python3 in a cgroup",
        "language": "python",
    }
    for name, spec in (("greed-cgroup", greed), ("python3-cgroup", python3)):
        spec = {**spec, "argv": ["sh", "-c", enter, "sh", *spec["argv"]]}
        (directory / name).mkdir(parents=True)
        (directory / name / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(directory)])


def run_until_dead(k: KernelHarness, cells: list[str]) -> list[t.Any]:
    """Each cell's result, up to the kernel's death ("died") if it dies. Its outputs
    are read once the kernel has replied (a read that timed out half way would lose
    those it had read)."""
    results: list[t.Any] = []
    for code in cells:
        msg_id = k.submit(code)
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = k.shell_reply(msg_id, timeout=1)
                break
            except TimeoutError:
                if not k.km.is_alive():
                    return [*results, "died"]
                if time.monotonic() > deadline:
                    raise
        outputs: list[t.Any] = []
        k.iopub_until(msg_id, k.is_status("idle"), 60, collect=outputs)
        results.append(ExecResult(msg_id=msg_id, reply=reply["content"], outputs=outputs))
    return results
