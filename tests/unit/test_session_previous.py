"""greed_kernel.session.previous: the previous kernel of a notebook read back from its
record, why it died, and pruning; on records in tmp_path, with a fake liveness and fake
cgroup files."""

from __future__ import annotations

import json
import os
import stat
import time
import typing as t
from pathlib import Path

import pytest
from protocol_schema import validator

from greed_kernel.session import files
from greed_kernel.session.previous import PreviousKernel, previous, prune
from greed_kernel.session.record import KernelRecord

NOTEBOOK = "work/train.ipynb"
GiB = 1 << 30
LIMIT = 3 * GiB // 2
NOW = 1.9e9


class Processes:
    """A fake liveness: the (pid, start ticks) pairs that run."""

    def __init__(self) -> None:
        self.running: set[tuple[int, int]] = set()

    def __call__(self, pid: int, ticks: int) -> bool:
        return (pid, ticks) in self.running


@pytest.fixture
def alive() -> Processes:
    return Processes()


def dead_kernel(
    runtime: Path,
    pid: int,
    *,
    identity: str = NOTEBOOK,
    ticks: int = 1000,
    cgroup: Path | None = None,
    fault: str | None = None,
    **update: t.Any,
) -> KernelRecord:
    """The record a kernel left when it died (created, updated, never done)."""
    r = KernelRecord.create(
        str(runtime),
        identity,
        limit=LIMIT,
        pid=pid,
        ticks=ticks,
        cgroup=lambda: None if cgroup is None else str(cgroup),
    )
    assert r is not None
    update.setdefault("sampled_at", NOW - 60)
    r.update(**update)
    r.close()
    if fault is not None:
        Path(r.path + ".fault").write_text(fault)
        os.chmod(r.path + ".fault", 0o600)
    return r


def look(runtime: Path, alive: Processes, identity: str = NOTEBOOK) -> PreviousKernel | None:
    return previous(str(runtime), identity, now=NOW, is_alive=alive)


def names(runtime: Path) -> list[str]:
    return sorted(os.listdir(runtime / "greed"))


def oom_cgroup(tmp_path: Path, kills: int) -> Path:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir(exist_ok=True)
    (cgroup / "memory.events").write_text(f"oom 0\noom_kill {kills}\n")
    return cgroup


# -- the causes ------------------------------------------------------------------------
def test_an_oom_kill_counted_by_the_cgroup(tmp_path: Path, alive: Processes) -> None:
    cgroup = oom_cgroup(tmp_path, 2)
    dead_kernel(tmp_path, 4242, cgroup=cgroup, cell=57, used=int(1.49 * GiB), peak=LIMIT)
    (cgroup / "memory.events").write_text("oom 1\noom_kill 3\n")
    found = look(tmp_path, alive)
    assert found is not None
    assert found.message == (
        "Greed: the previous kernel of this notebook was killed at cell 57, "
        "out of memory (1.49 of its 1.50 GiB)."
    )
    assert (found.cause, found.signal, found.execution_count) == ("oom", None, 57)
    assert (found.unreclaimable_bytes, found.limit_bytes) == (int(1.49 * GiB), LIMIT)
    assert (found.pid, found.in_one_call, found.last_seen_at) == (4242, False, NOW - 60)
    assert found.started_at == pytest.approx(files.started_at(1000), abs=0.01)
    assert names(tmp_path) == []  # reported once
    assert look(tmp_path, alive) is None


def test_a_fatal_signal_named_by_the_sidecar(tmp_path: Path, alive: Processes) -> None:
    fault = (
        "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
    )
    dead_kernel(tmp_path, 4242, cell=57, used=GiB, fault=fault)
    found = look(tmp_path, alive)
    assert found is not None
    assert (
        found.message == "Greed: the previous kernel of this notebook died at cell 57 (signal 11)."
    )
    assert (found.cause, found.signal) == ("signal", 11)
    assert names(tmp_path) == []  # the sidecar too


@pytest.mark.parametrize(
    ("text", "number"),
    [("Bus error", 7), ("Floating point exception", 8), ("Aborted", 6), ("Illegal instruction", 4)],
)
def test_each_fatal_signal(tmp_path: Path, alive: Processes, text: str, number: int) -> None:
    dead_kernel(tmp_path, 4242, cell=3, fault=f"Fatal Python error: {text}\n\n")
    found = look(tmp_path, alive)
    assert found is not None and (found.cause, found.signal) == ("signal", number)


def test_near_the_limit_is_probably_out_of_memory(tmp_path: Path, alive: Processes) -> None:
    dead_kernel(tmp_path, 4242, cell=12, used=int(0.96 * LIMIT), fault="")
    found = look(tmp_path, alive)
    assert found is not None and found.cause == "oom"
    assert found.message == (
        "Greed: the previous kernel of this notebook died at cell 12, "
        "probably out of memory (1.44 of its 1.50 GiB)."
    )


def test_unknown(tmp_path: Path, alive: Processes) -> None:
    cgroup = oom_cgroup(tmp_path, 5)  # no kill since it started
    dead_kernel(tmp_path, 4242, cgroup=cgroup, cell=57, used=GiB // 2, fault="garbage\n")
    found = look(tmp_path, alive)
    assert found is not None and (found.cause, found.signal) == ("unknown", None)
    assert (
        found.message
        == "Greed: the previous kernel of this notebook stopped unexpectedly at cell 57."
    )


def test_stopping_a_cell_inside_one_call(tmp_path: Path, alive: Processes) -> None:
    dead_kernel(tmp_path, 4242, cell=8, used=GiB // 4, stopping=True)
    found = look(tmp_path, alive)
    assert found is not None and found.in_one_call and found.cause == "oom"
    assert found.message.startswith(
        "Greed: the previous kernel of this notebook died at cell 8, probably out of memory"
        " (0.25 of its 1.50 GiB). Greed had asked that cell to stop, but it was inside a single"
        " operation (such as one allocation larger than the memory left) that cannot be"
    )


def test_before_its_first_cell_and_a_small_limit(tmp_path: Path, alive: Processes) -> None:
    r = KernelRecord.create(
        str(tmp_path), NOTEBOOK, limit=512 << 20, pid=7, ticks=1, cgroup=lambda: None
    )
    assert r is not None
    r.update(used=500 << 20, sampled_at=NOW)
    r.close()
    found = look(tmp_path, alive)
    assert found is not None and found.execution_count == 0
    assert found.message == (
        "Greed: the previous kernel of this notebook died before its first cell, "
        "probably out of memory (500 of its 512 MiB)."
    )


def test_to_json_is_the_schemas(tmp_path: Path, alive: Processes) -> None:
    dead_kernel(tmp_path, 4242, cell=57, used=GiB, stopping=True)
    found = look(tmp_path, alive)
    assert found is not None
    validator("/$defs/PreviousKernel").validate(found.to_json())
    assert json.loads(json.dumps(found.to_json())) == found.to_json()


# -- which record ------------------------------------------------------------------------
def test_live_kernels_done_ones_and_other_notebooks_are_not_reported(
    tmp_path: Path, alive: Processes
) -> None:
    dead_kernel(tmp_path, 100, cell=1)
    alive.running.add((100, 1000))  # it still runs
    done = KernelRecord.create(str(tmp_path), NOTEBOOK, pid=101, ticks=5, cgroup=lambda: None)
    assert done is not None
    done._map[done._done] = 49  # type: ignore[index]  # marked done, not yet removed
    done.close()
    dead_kernel(tmp_path, 102, identity="other.ipynb", cell=2)
    assert look(tmp_path, alive) is None
    assert len(names(tmp_path)) == 3
    found = look(tmp_path, alive, identity="other.ipynb")
    assert found is not None and found.execution_count == 2


def test_a_reused_pid_is_a_dead_kernel(tmp_path: Path) -> None:
    # this very process's pid, with another start: the kernel that had the pid is gone
    ticks = files.start_ticks(os.getpid())
    assert ticks is not None
    dead_kernel(tmp_path, os.getpid(), ticks=ticks - 1, cell=4)
    found = previous(str(tmp_path), NOTEBOOK, now=NOW)
    assert found is not None and found.execution_count == 4
    # and with the same start, it is alive (a kernel does not report itself)
    dead_kernel(tmp_path, os.getpid(), ticks=ticks, cell=5)
    assert previous(str(tmp_path), NOTEBOOK, now=NOW) is None
    assert len(names(tmp_path)) == 1


def test_the_latest_dead_kernel_is_reported_and_all_are_removed(
    tmp_path: Path, alive: Processes
) -> None:
    dead_kernel(tmp_path, 100, ticks=10, cell=3)
    dead_kernel(tmp_path, 200, ticks=20, cell=9)
    dead_kernel(tmp_path, 150, ticks=15, cell=6)
    found = look(tmp_path, alive)
    assert found is not None and found.pid == 200 and found.execution_count == 9
    assert names(tmp_path) == []


def test_a_record_too_old_is_removed_unsaid(tmp_path: Path, alive: Processes) -> None:
    dead_kernel(tmp_path, 100, sampled_at=NOW - 8 * 86400)
    assert look(tmp_path, alive) is None
    assert names(tmp_path) == []


def test_no_directory_no_answer(tmp_path: Path, alive: Processes) -> None:
    assert look(tmp_path / "absent", alive) is None
    assert not (tmp_path / "absent").exists()
    assert prune(str(tmp_path / "absent"), now=NOW, is_alive=alive) == 0


# -- corrupt and hostile files ---------------------------------------------------------------
def _own(path: Path, data: bytes | str) -> None:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)


def hostile_files(greed: Path, record: str) -> list[str]:
    """Files a dead kernel 300's record could be confused with; all of its name."""
    made = []
    for i, data in enumerate(
        [
            b"{not json",
            b"",
            b"[1, 2]",
            json.dumps({"pid": "300", "cell": -1}).encode(),
            b"\xff\xfe" * 100,
            b" " * (files.MAX_READ + 1),
        ]
    ):
        name = f"kernel-{record}-300-{i + 1}.json"
        _own(greed / name, data)
        made.append(name)
    os.mkfifo(greed / f"kernel-{record}-300-90.json", 0o600)
    (greed / f"kernel-{record}-300-91.json").symlink_to(greed / made[0])
    loose = greed / f"kernel-{record}-300-92.json"
    _own(loose, b"{}")
    loose.chmod(0o644)
    return made


def test_corrupt_and_hostile_records_are_skipped(tmp_path: Path, alive: Processes) -> None:
    from greed_kernel.session.identity import identity_key

    dead_kernel(tmp_path, 4242, cell=57)
    greed = tmp_path / "greed"
    hostile_files(greed, identity_key(NOTEBOOK))
    _own(greed / "notes.txt", "mine")
    start = time.monotonic()
    found = look(tmp_path, alive)
    assert time.monotonic() - start < 5  # the FIFO never blocked
    assert found is not None and found.execution_count == 57
    assert "notes.txt" in names(tmp_path) and len(names(tmp_path)) == 10


def test_a_torn_number_is_repaired(tmp_path: Path, alive: Processes) -> None:
    r = dead_kernel(tmp_path, 4242, cell=57, used=999)
    data = Path(r.path).read_bytes()
    torn = data.replace(b'"usedBytes":                  999', b'"usedBytes":             1 0 099')
    assert torn != data
    _own(Path(r.path), torn)
    found = look(tmp_path, alive)
    assert found is not None and found.unreclaimable_bytes == 10099


@pytest.mark.skipif(os.getuid() != 0, reason="a file of another user takes root")
def test_a_record_of_another_user_is_neither_read_nor_removed(
    tmp_path: Path, alive: Processes
) -> None:
    r = dead_kernel(tmp_path, 4242, cell=57)
    os.chown(r.path, 12345, 12345)
    assert look(tmp_path, alive) is None
    assert prune(str(tmp_path), now=NOW + 30 * 86400, is_alive=alive) == 0
    assert names(tmp_path) == [Path(r.path).name]


def test_a_directory_open_to_others_is_not_read(tmp_path: Path, alive: Processes) -> None:
    dead_kernel(tmp_path, 4242, cell=57)
    (tmp_path / "greed").chmod(0o755)
    assert look(tmp_path, alive) is None
    assert prune(str(tmp_path), now=NOW, is_alive=alive) == 0
    assert len(names(tmp_path)) == 1


# -- prune -----------------------------------------------------------------------------------
def test_prune(tmp_path: Path, alive: Processes) -> None:
    from greed_kernel.session.identity import identity_key

    old = NOW - 8 * 86400
    gone_old = dead_kernel(tmp_path, 1, identity="a.ipynb", sampled_at=old)
    os.utime(gone_old.path, (old, old))
    gone_recent = dead_kernel(tmp_path, 2, identity="b.ipynb")
    alive_old = dead_kernel(tmp_path, 3, identity="c.ipynb", sampled_at=old)
    os.utime(alive_old.path, (old, old))
    alive.running.add((3, 1000))
    done = KernelRecord.create(str(tmp_path), "d.ipynb", pid=4, ticks=1000, cgroup=lambda: None)
    assert done is not None
    done._map[done._done] = 49  # type: ignore[index]
    done.close()
    greed = tmp_path / "greed"
    key = identity_key("e.ipynb")
    _own(greed / f"kernel-{key}-5-1000.json", "{broken")  # a dead kernel's, corrupt
    _own(greed / f"kernel-{key}-6-1000.json", "")  # a live one's, being written
    alive.running.add((6, 1000))
    _own(greed / f"kernel-{key}-7-1000.json.fault", "")  # an orphan sidecar, gone
    _own(greed / f"kernel-{key}-6-1000.json.fault", "")  # the live one's sidecar
    _own(greed / "notes.txt", "not ours by name")
    hostile = hostile_files(greed, identity_key("f.ipynb"))
    # a gone kernel's own unreadable records are pruned; the rest is not ours to touch
    expected_removed = {
        Path(gone_old.path).name,
        Path(done.path).name,
        f"kernel-{key}-5-1000.json",
        f"kernel-{key}-7-1000.json.fault",
        *hostile,
    }
    hostile_left = {f"kernel-{identity_key('f.ipynb')}-300-{i}.json" for i in (90, 91, 92)}
    before = set(names(tmp_path))
    assert prune(str(tmp_path), now=NOW, is_alive=alive) == len(expected_removed)
    assert set(names(tmp_path)) == before - expected_removed
    assert hostile_left <= set(names(tmp_path))
    assert Path(gone_recent.path).exists() and Path(alive_old.path).exists()
    assert stat.S_ISFIFO(os.lstat(greed / f"kernel-{identity_key('f.ipynb')}-300-90.json").st_mode)
