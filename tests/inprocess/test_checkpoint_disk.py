"""Checkpoints on a real full and a real read-only disk: a small tmpfs mounted for the
test (root with CAP_SYS_ADMIN; skipped elsewhere). The write fails, is shown in
``%greed status``, is tried again after the backoff, and never changes a cell; the
checkpoint before it stays whole and loadable."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from greed_kernel.engine import checkpointing
from tests.inprocess import InProcess

np = pytest.importorskip("numpy")


def mount(where: Path, *options: str) -> bool:
    ran = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            ",".join(("size=4m", "mode=0700", *options)),
            "tmpfs",
            where,
        ],
        capture_output=True,
    )
    return ran.returncode == 0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir(mode=0o700)
    if os.geteuid() != 0 or not mount(where):
        pytest.skip("needs to mount a tmpfs (root with CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)


@pytest.fixture
def session(tmp_path: Path, disk: Path) -> Iterator[InProcess]:
    with InProcess(tmp_path / "paging", identity="nb.ipynb", checkpoint_dir=str(disk / "ck")) as s:
        yield s


def quiet(s: InProcess, seconds: float = checkpointing.QUIET_SECONDS) -> None:
    s.clock.advance(seconds)


def test_a_full_disk_fails_the_write_not_the_cell(session: InProcess, disk: Path) -> None:
    session.run("import numpy as np\nsmall = list(range(100))")
    quiet(session)
    assert [m["cell"] for m in session.service.checkpoints()] == [1]
    ran = session.run("big = np.ones(1 << 20)")  # 8 MiB: more than the disk holds
    assert ran.success
    quiet(session)
    problem = session.service.status()["checkpointProblem"]
    assert problem is not None and "No space left on device" in problem
    assert [m["cell"] for m in session.service.checkpoints()] == [1]
    assert session.ns["big"].sum() == 1 << 20  # the cell's value, untouched
    session.run("del big\nsmall.append(100)")  # room again: the next try succeeds
    quiet(session, checkpointing.RETRY_SECONDS)
    assert session.service.status()["checkpointProblem"] is None
    assert [m["cell"] for m in session.service.checkpoints()] == [1, 3]
    got = session.service.resume(None)
    assert got["bound"] == ["np", "small"] and not got["failed"]
    assert session.ns["small"] == [*range(100), 100]


def test_a_read_only_disk_fails_the_write_not_the_cell(session: InProcess, disk: Path) -> None:
    session.run("a = [1, 2]")
    quiet(session)
    subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
    ran = session.run("a.append(3)")
    assert ran.success and session.ns["a"] == [1, 2, 3]
    quiet(session)
    problem = session.service.status()["checkpointProblem"]
    assert problem is not None and "Read-only file system" in problem
    got = session.service.resume(None)  # the checkpoint before is whole
    assert got["bound"] == ["a"] and not got["failed"] and session.ns["a"] == [1, 2]
    assert not session.errors.records
