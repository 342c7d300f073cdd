"""greed_kernel.session.record: the record a kernel keeps of itself, in a private
directory, updated in place through a shared mapping."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
import typing as t
from pathlib import Path

import pytest

from greed_kernel.session import faults, files, record
from greed_kernel.session.identity import identity_key
from greed_kernel.session.record import KernelRecord

NOTEBOOK = "work/train.ipynb"
GiB = 1 << 30


def create(runtime: Path, identity: str = NOTEBOOK, **kwargs: t.Any) -> KernelRecord:
    kwargs.setdefault("cgroup", lambda: None)
    made = KernelRecord.create(str(runtime), identity, **kwargs)
    assert made is not None
    return made


def content(r: KernelRecord) -> dict[str, t.Any]:
    """The file as another process reads it: through the page cache, not the mapping."""
    with open(r.path, "rb") as f:
        data = f.read()
    assert len(data) % record.SIZE_STEP == 0
    return json.loads(data)


def test_create_writes_a_private_record(tmp_path: Path) -> None:
    r = create(tmp_path, limit=3 * GiB // 2)
    try:
        path = Path(r.path)
        assert path.parent == tmp_path / "greed"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        name = files.RecordName.parse(path.name)
        assert name == (path.name, identity_key(NOTEBOOK), os.getpid(), name.ticks)
        assert name.ticks == files.start_ticks(os.getpid())
        data = content(r)
        assert data["identity"] == NOTEBOOK
        assert data["pid"] == os.getpid()
        assert abs(data["startedAt"] - files.started_at(name.ticks)) < 0.01
        assert data["startedAt"] <= time.time()
        assert data["limitBytes"] == 3 * GiB // 2
        assert data["cell"] == data["usedBytes"] == data["peakBytes"] == 0
        assert (data["stopping"], data["done"]) == (0, 0)
        assert data["cgroup"] is None and data["oomKillsAtStart"] is None
    finally:
        r.close()


def test_the_cgroup_and_its_oom_count_at_start(tmp_path: Path) -> None:
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    (cgroup / "memory.events").write_text("oom 4\noom_kill 3\n")
    r = create(tmp_path / "rt", cgroup=lambda: str(cgroup))
    try:
        data = content(r)
        assert (data["cgroup"], data["oomKillsAtStart"]) == (str(cgroup), 3)
    finally:
        r.close()


def test_every_update_leaves_valid_json(tmp_path: Path) -> None:
    r = create(tmp_path)
    try:
        before = Path(r.path).read_bytes()
        for i in range(0, 300, 7):
            r.update(cell=i, used=i * 12345678, peak=i * 98765432, sampled_at=1e9 + i / 3)
            r.update(stopping=i % 2 == 0)
            data = content(r)
            assert (data["cell"], data["usedBytes"], data["peakBytes"]) == (
                i,
                i * 12345678,
                i * 98765432,
            )
            assert data["sampledAt"] == pytest.approx(1e9 + i / 3, abs=1e-3)
            assert data["stopping"] == (i % 2 == 0)
        r.update(limit=2 * GiB)
        assert content(r)["limitBytes"] == 2 * GiB
        assert len(Path(r.path).read_bytes()) == len(before)
    finally:
        r.close()


def test_update_never_raises_and_stores_nothing_bad(tmp_path: Path) -> None:
    r = create(tmp_path)
    try:
        r.update(cell=5, used=100)
        r.update(used=10**40)  # too wide for its field
        r.update(sampled_at=float("nan"))
        r.update(sampled_at=float("inf"))
        r.update(cell="x")  # type: ignore[arg-type]
        data = content(r)
        assert (data["cell"], data["usedBytes"]) == (5, 100)
    finally:
        r.close()
    r.update(cell=6)  # after close: nothing, no error
    assert content(r)["cell"] == 5


def test_done_removes_the_record_and_close_keeps_it(tmp_path: Path) -> None:
    r = create(tmp_path)
    r.done()
    assert os.listdir(tmp_path / "greed") == []
    r.done()  # twice: nothing
    r.update(cell=3)
    kept = create(tmp_path)
    kept.update(cell=9)
    kept.close()
    kept.close()
    assert json.loads(Path(kept.path).read_bytes())["cell"] == 9


def test_a_second_record_of_the_same_process_is_refused(tmp_path: Path) -> None:
    first = create(tmp_path)
    try:
        assert KernelRecord.create(str(tmp_path), NOTEBOOK, cgroup=lambda: None) is None
        assert Path(first.path).exists()  # the refusal left the first alone
    finally:
        first.close()


def test_a_long_name_and_non_ascii(tmp_path: Path) -> None:
    long = "é" * 1500 + ".ipynb"  # 6 bytes each, escaped: a record of 3 pages
    r = create(tmp_path, identity=long)
    try:
        assert content(r)["identity"] == long
        r.update(cell=2)
        assert content(r)["cell"] == 2
    finally:
        r.close()
    assert KernelRecord.create(str(tmp_path), "x" * 20000, cgroup=lambda: None) is None


# -- refusals ----------------------------------------------------------------------------
def test_an_existing_directory_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "greed").mkdir(mode=0o700)
    r = create(tmp_path)
    r.close()


@pytest.mark.parametrize("mode", [0o770, 0o750, 0o705, 0o701])
def test_a_directory_open_to_others_is_refused_and_left_alone(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    greed = tmp_path / "greed"
    greed.mkdir()
    greed.chmod(mode)
    with caplog.at_level(logging.WARNING):
        assert KernelRecord.create(str(tmp_path), NOTEBOOK, cgroup=lambda: None) is None
    assert "0700 expected" in caplog.text
    assert stat.S_IMODE(greed.stat().st_mode) == mode
    assert os.listdir(greed) == []


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "greed").symlink_to(target)
    assert KernelRecord.create(str(tmp_path / "rt"), NOTEBOOK, cgroup=lambda: None) is None
    assert os.listdir(target) == []


def test_a_file_in_its_place_is_refused(tmp_path: Path) -> None:
    (tmp_path / "greed").write_text("")
    assert KernelRecord.create(str(tmp_path), NOTEBOOK, cgroup=lambda: None) is None


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory away takes root")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    greed = tmp_path / "greed"
    greed.mkdir(mode=0o700)
    os.chown(greed, 12345, 12345)
    assert KernelRecord.create(str(tmp_path), NOTEBOOK, cgroup=lambda: None) is None


def test_a_runtime_dir_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    runtime = tmp_path / "file" / "runtime"
    assert KernelRecord.create(str(runtime), NOTEBOOK, cgroup=lambda: None) is None


def test_a_full_disk_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: t.Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(record.os, "write", full)
    made = KernelRecord.create(str(tmp_path), NOTEBOOK, cgroup=lambda: None)
    monkeypatch.undo()
    assert made is None
    assert os.listdir(tmp_path / "greed") == []


def test_the_mode_is_exact_under_any_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        r = create(tmp_path)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE((tmp_path / "greed").stat().st_mode) == 0o700
        assert stat.S_IMODE(Path(r.path).stat().st_mode) == 0o600
    finally:
        r.close()


# -- the fatal signal sidecar --------------------------------------------------------------
class FakeFaultHandler:
    """faulthandler as the record drives it (pytest's own stays enabled meanwhile)."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.file: t.Any = None

    def is_enabled(self) -> bool:
        return self.enabled

    def enable(self, file: t.Any, all_threads: bool) -> None:
        assert all_threads
        self.enabled, self.file = True, file

    def disable(self) -> None:
        self.enabled = False


def test_the_sidecar_is_made_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFaultHandler()
    monkeypatch.setattr(faults, "faulthandler", fake)
    plain = create(tmp_path / "a")
    assert not fake.enabled and os.listdir(tmp_path / "a" / "greed") == [Path(plain.path).name]
    plain.close()
    r = create(tmp_path / "b", fault_handler=True)
    sidecar = Path(r.path + ".fault")
    assert fake.enabled and not fake.file.closed
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    r.done()
    assert not fake.enabled and fake.file.closed
    assert os.listdir(tmp_path / "b" / "greed") == []


def test_a_faulthandler_already_enabled_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFaultHandler(enabled=True)
    monkeypatch.setattr(faults, "faulthandler", fake)
    r = create(tmp_path, fault_handler=True)
    assert fake.file is None and not Path(r.path + ".fault").exists()
    r.done()
    assert fake.enabled  # not ours to turn off
