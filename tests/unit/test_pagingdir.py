"""The paging directory: refused directories are named with a reason, never swapped
silently, and choosing one creates nothing outside it (issue 30, item 6)."""

from __future__ import annotations

import errno
import functools
import os
import sys
import tempfile
from pathlib import Path

import pytest

from greed_kernel.memory import pagingdir
from greed_kernel.memory.pagingdir import Choice, Mount, choose, is_removable, read_mounts, refusal

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mounts")


@pytest.fixture
def fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three fallback directories of our own (the third exists), instead of the system's."""
    dirs = [tmp_path / "fallback-a", tmp_path / "fallback-b", tmp_path / "fallback-c"]
    dirs[0].mkdir()
    dirs[2].mkdir()
    monkeypatch.setattr(pagingdir, "_fallbacks", lambda: [str(d) for d in dirs])
    return dirs


def local(*extra: Mount) -> functools.partial[list[Mount]]:
    """A mount table: the root on a local disk, then *extra*."""
    return functools.partial(list, [Mount("/", "ext4", "254:0", "/dev/vda"), *extra])


# -- real paths --------------------------------------------------------------------------
def test_a_usable_directory_is_used_without_notice_and_left_empty(tmp_path: Path) -> None:
    assert choose(str(tmp_path)) == Choice(tmp_path, "")
    assert os.listdir(tmp_path) == []


def test_the_probe_without_o_tmpfile_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    assert choose(str(tmp_path)).path == tmp_path
    assert os.listdir(tmp_path) == []


def test_a_missing_directory_is_refused_with_the_fallback_named(
    tmp_path: Path, fallbacks: list[Path]
) -> None:
    missing = tmp_path / "missing"
    choice = choose(str(missing))
    assert choice.path == fallbacks[0]
    assert choice.notice == (
        f"paging_dir {str(missing)!r} is refused: it does not exist; using {fallbacks[0]} instead"
    )
    assert not missing.exists()


def test_a_regular_file_is_refused(tmp_path: Path, fallbacks: list[Path]) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    choice = choose(str(file), setting="paging_dir")
    assert choice.notice.startswith(f"paging_dir {str(file)!r} is refused: it is not a directory")
    assert file.read_text() == "x"


def test_a_directory_without_write_permission(tmp_path: Path, fallbacks: list[Path]) -> None:
    # Writable means "this process can create a file there": root can in a 0o555
    # directory (it overrides permissions), so as root it is accepted.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        choice = choose(str(locked))
        if os.geteuid() == 0:
            assert choice == Choice(locked, "")
        else:
            assert choice.path == fallbacks[0]
            assert "is refused: it is not writable" in choice.notice
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)


@linux_only
def test_proc_is_refused_as_a_pseudo_filesystem(fallbacks: list[Path]) -> None:
    choice = choose("/proc")
    assert choice.path == fallbacks[0]
    assert "'/proc' is refused: it is on proc, a pseudo filesystem" in choice.notice


@linux_only
def test_cgroupfs_is_refused_and_no_cgroup_is_created(fallbacks: list[Path]) -> None:
    cgroups = [m.point for m in read_mounts() if m.fstype in ("cgroup", "cgroup2")]
    if not cgroups:
        pytest.skip("no cgroup filesystem is mounted here")
    for point in ["/sys/fs/cgroup", *cgroups]:
        before = sorted(os.listdir(point))
        choice = choose(point)
        assert choice.path == fallbacks[0]
        assert f"{point!r} is refused: it is on " in choice.notice
        assert sorted(os.listdir(point)) == before


@linux_only
def test_dev_shm_is_refused_as_ram(fallbacks: list[Path]) -> None:
    if not any(m.point == "/dev/shm" and m.fstype == "tmpfs" for m in read_mounts()):
        pytest.skip("/dev/shm is not a tmpfs here")
    notice = choose("/dev/shm").notice
    assert "is refused: it is on tmpfs, in RAM: paging there frees nothing" in notice


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "pages").mkdir()
    assert choose("~/pages") == Choice(tmp_path / "pages", "")


def test_an_unknown_users_tilde_is_refused(fallbacks: list[Path]) -> None:
    notice = choose("~no-such-user-greed/pages").notice
    assert "is refused: its ~ cannot be expanded" in notice


def test_a_relative_path_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallbacks: list[Path]
) -> None:
    (tmp_path / "rel").mkdir()
    monkeypatch.chdir(tmp_path)
    assert choose("rel") == Choice(tmp_path / "rel", "")
    notice = choose("nope").notice  # a refusal names the path as given and as taken
    assert notice.startswith(f"paging_dir 'nope' ({tmp_path / 'nope'}) is refused: it does not")


def test_no_request_takes_the_temporary_directory_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert choose("") == Choice(tmp_path, "")


# -- simulated mounts --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fstype", "reason"),
    [
        ("nfs4", "it is on nfs4, a network or FUSE filesystem: a failed read from it would"),
        ("cifs", "it is on cifs, a network or FUSE filesystem"),
        ("fuse.sshfs", "it is on fuse.sshfs, a network or FUSE filesystem"),
        ("fuseblk", "it is on fuseblk, a network or FUSE filesystem"),
        ("9p", "it is on 9p, a network"),
        ("cgroup2", "it is on cgroup2, a pseudo filesystem"),
        ("sysfs", "it is on sysfs, a pseudo filesystem"),
        ("ramfs", "it is on ramfs, in RAM"),
    ],
)
def test_refused_filesystems_are_never_probed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fstype: str, reason: str
) -> None:
    monkeypatch.setattr(pagingdir, "_probe", lambda path: pytest.fail("probed"))
    assert refusal(str(tmp_path), local(Mount(str(tmp_path), fstype))).startswith(reason)


def test_the_deepest_and_latest_mount_decides(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    mounts = local(
        Mount(str(tmp_path), "nfs"), Mount(str(inner), "tmpfs"), Mount(str(inner), "xfs")
    )
    assert refusal(str(inner), mounts) == ""
    assert refusal(str(tmp_path), mounts).startswith("it is on nfs")


def test_a_read_only_mount_is_refused(tmp_path: Path) -> None:
    mounts = local(Mount(str(tmp_path), "ext4", "8:2", "/dev/sda2", read_only=True))
    assert refusal(str(tmp_path), mounts) == "it is on a read-only mount"


def fake_sysfs(root: Path) -> str:
    """/sys/dev/block for a removable disk 8:16 with partition 8:17, and a fixed 8:0."""
    for disk, flag in (("sda", "0"), ("sdb", "1")):
        (root / "devices" / disk / f"{disk}1").mkdir(parents=True)
        (root / "devices" / disk / "removable").write_text(flag + "\n")
        (root / "devices" / disk / f"{disk}1" / "partition").write_text("1\n")
    block = root / "dev" / "block"
    block.mkdir(parents=True)
    for device, target in (("8:0", "sda"), ("8:16", "sdb"), ("8:17", "sdb/sdb1")):
        (block / device).symlink_to(f"../../devices/{target}")
    return str(block)


def test_removable_devices_and_their_partitions(tmp_path: Path) -> None:
    block = fake_sysfs(tmp_path / "sys")
    assert is_removable("8:16", block) and is_removable("8:17", block)
    assert not is_removable("8:0", block) and not is_removable("0:42", block)
    removable = functools.partial(is_removable, sys_block=block)
    usb = Mount(str(tmp_path), "vfat", "8:17", "/dev/sdb1")
    assert refusal(str(tmp_path), local(usb), removable) == (
        "it is on a removable device (/dev/sdb1): a failed read from it would kill the kernel"
        " (SIGBUS)"
    )
    fixed = Mount(str(tmp_path), "ext4", "8:0", "/dev/sda")
    assert refusal(str(tmp_path), local(fixed), removable) == ""


def test_refused_fallbacks_are_skipped_silently(
    tmp_path: Path, fallbacks: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts = local(Mount(str(fallbacks[0]), "nfs"))
    assert choose("", mounts=mounts) == Choice(fallbacks[2], "")
    wanted = tmp_path / "wanted"
    wanted.mkdir()
    mounts = local(Mount(str(fallbacks[0]), "nfs"), Mount(str(wanted), "fuse"))
    choice = choose(str(wanted), mounts=mounts)
    assert choice.path == fallbacks[2]
    assert choice.notice.startswith(f"paging_dir {str(wanted)!r} is refused: it is on fuse,")
    assert choice.notice.endswith(f"; using {fallbacks[2]} instead")
    assert "fallback-a" not in choice.notice and "fallback-b" not in choice.notice


def test_nothing_usable_is_an_error_listing_every_refusal(
    tmp_path: Path, fallbacks: list[Path]
) -> None:
    fallbacks[2].rmdir()
    with pytest.raises(OSError) as raised:
        choose(str(fallbacks[0]), mounts=local(Mount(str(fallbacks[0]), "nfs")))
    assert raised.value.errno == errno.ENOENT
    message = str(raised.value)
    assert "no usable disk directory for paging: paging_dir" in message
    assert message.count("fallback-a") == 1  # the request is not tried twice
    assert f"{fallbacks[1]}: it does not exist" in message
    assert f"{fallbacks[2]}: it does not exist" in message


def test_read_mounts_parses_escapes_options_and_optional_fields(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 27 0:50 / /mnt/my\\040share rw - nfs4 server:/export rw,vers=4.2\n"
        "41 27 8:17 / /media/usb ro,nosuid master:3 - vfat /dev/sdb1 rw\n"
        "42 27 7:0 / /snap/x rw - squashfs /dev/loop0 ro\n"
    )
    assert read_mounts(str(info)) == [
        Mount("/", "ext4", "254:0", "/dev/vda", False),
        Mount("/mnt/my share", "nfs4", "0:50", "server:/export", False),
        Mount("/media/usb", "vfat", "8:17", "/dev/sdb1", True),
        Mount("/snap/x", "squashfs", "7:0", "/dev/loop0", True),
    ]
    assert read_mounts(str(tmp_path / "absent")) == []
